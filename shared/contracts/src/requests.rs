//! Internal request/reply payloads (MessagePack, named fields). Which request goes to
//! which subject, and what it is answered with, is [`crate::rpc::Rpc`]; every error is
//! a [`crate::rpc::RpcError`].

use serde::{Deserialize, Serialize};

/// `deploy.submit`: check and publish a bundle that the gateway staged in the object store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploySubmit {
    /// Object-store key of the staged upload; deploy deletes it when done.
    pub staging_key: String,
    /// File name the author uploaded (`notes.zip`): the bundle's name.
    pub file_name: String,
    /// Who deploys: the user or API token's name, recorded in the `app.updated` event.
    #[serde(default)]
    pub actor: Option<String>,
    /// The stable id of that user or token (`sub`).
    #[serde(default)]
    pub actor_id: Option<String>,
    /// How long the caller waits for the answer, in milliseconds from when it sent the
    /// request (the gateway's `NR_DEPLOY_TIMEOUT_S`). Deploy makes no change once that
    /// time is nearly up, and bounds its wait for the runners to answer within it.
    #[serde(default)]
    pub deadline_ms: Option<u64>,
}

/// One finding about a bundle: which rule, where, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub rule: String,
    #[serde(default)]
    pub file: Option<String>,
    #[serde(default)]
    pub line: Option<u32>,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeployReport {
    pub app_name: String,
    pub version: String,
    pub sha256: String,
    pub previous_version: Option<String>,
    /// Stream sequence of the published `app.updated` event.
    pub rev: u64,
    pub warnings: Vec<Finding>,
    /// The runners that loaded the version before the answer (ids, in report order).
    #[serde(default)]
    pub loaded_by: Vec<String>,
}

/// Reply to `deploy.submit` and `deploy.rollback`, tagged `outcome: "deployed"` as it
/// always was. A refusal is the reply's [`crate::rpc::RpcError`] (tagged `refused`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum DeployReply {
    Deployed(DeployReport),
}

/// One app as the registry projects it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppSummary {
    pub app_name: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub version: String,
    pub sha256: String,
    pub rev: u64,
    pub updated_at: String,
    /// A deleted app that was never served: deploy deleted it because the runners
    /// refused its only version(s). Why they refused the last one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// `registry.apps.list`: every deployed app. Nothing to say (an empty body is `{}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppListRequest {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppList {
    pub apps: Vec<AppSummary>,
    /// Deleted apps, by name: `version` is the one current when it was deleted and
    /// `updated_at` when. A rollback to any of their versions brings them back.
    #[serde(default)]
    pub deleted: Vec<AppSummary>,
}

/// `deploy.rollback`: make an earlier version of an app current again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollbackRequest {
    pub app_name: String,
    /// The version to make current, as listed by `registry.apps.versions`.
    pub version: String,
    /// Which bundle of that version, when it was deployed more than once with different
    /// contents; the most recent one otherwise.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Who rolls back: the user or API token's name.
    #[serde(default)]
    pub actor: Option<String>,
    /// The stable id of that user or token (`sub`).
    #[serde(default)]
    pub actor_id: Option<String>,
    /// How long the caller waits for the answer, in milliseconds from when it sent the
    /// request (the gateway's `NR_DEPLOY_TIMEOUT_S`). Deploy makes no change once that
    /// time is nearly up, and bounds its wait for the runners to answer within it.
    #[serde(default)]
    pub deadline_ms: Option<u64>,
}

/// `deploy.delete`: remove an app from service. Its bundles and versions are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeleteRequest {
    pub app_name: String,
    /// Who deletes: the user or API token's name.
    #[serde(default)]
    pub actor: Option<String>,
    /// The stable id of that user or token (`sub`).
    #[serde(default)]
    pub actor_id: Option<String>,
    /// How long the caller waits for the answer, in milliseconds from when it sent the
    /// request (the gateway's `NR_DEPLOY_TIMEOUT_S`). Deploy makes no change once that
    /// time is nearly up, and bounds its wait for the runners to answer within it.
    #[serde(default)]
    pub deadline_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeleteReport {
    pub app_name: String,
    /// The version that was current when the app was deleted.
    pub version: String,
    /// Stream sequence of the published `app.updated` (change `deleted`) event.
    pub rev: u64,
}

/// Reply to `deploy.delete`, tagged `outcome: "deleted"`. (`deploy.rollback` answers
/// with a [`DeployReply`].)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum DeleteReply {
    Deleted(DeleteReport),
}

/// `registry.apps.versions`: every version of one app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppVersionsRequest {
    pub app_name: String,
}

/// One version of an app as the registry keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppVersion {
    pub version: String,
    pub sha256: String,
    /// RFC 3339 time of the event that first made this bundle current.
    pub deployed_at: String,
    /// Stream sequence of the first and of the latest event that made it current.
    pub first_rev: u64,
    pub last_rev: u64,
    /// True for the version serving now (never for a deleted app).
    pub current: bool,
    /// Who first deployed this bundle (user or token name); none for versions deployed
    /// before deploys recorded it.
    #[serde(default)]
    pub deployed_by: Option<String>,
    /// The stable id of that user or token (`sub`).
    #[serde(default)]
    pub deployed_by_id: Option<String>,
    /// Why the platform refused this version after publishing it (a runner could not
    /// load it, and the change was undone); none for a version that loaded, and none
    /// again once a later change makes it current.
    #[serde(default)]
    pub refused: Option<String>,
}

/// Reply to `registry.apps.versions`; `found` is false for an app never deployed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppVersions {
    pub app_name: String,
    pub found: bool,
    pub deleted: bool,
    pub current_version: Option<String>,
    /// Newest first (by the revision that first deployed each bundle).
    pub versions: Vec<AppVersion>,
}

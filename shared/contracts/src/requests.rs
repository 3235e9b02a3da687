//! Internal request/reply payloads (MessagePack, named fields).

use serde::{Deserialize, Serialize};

/// `deploy.submit`: check and publish a bundle that the gateway staged in the object store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploySubmit {
    /// Object-store key of the staged upload; deploy deletes it when done.
    pub staging_key: String,
    /// File name the author uploaded (`notes.zip`): the bundle's name.
    pub file_name: String,
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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeployRefusal {
    /// HTTP status that fits: 400, 409, 413 or 422.
    pub status: u16,
    pub error: String,
    pub details: Vec<Finding>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum DeployReply {
    Deployed(DeployReport),
    Refused(DeployRefusal),
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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppList {
    pub apps: Vec<AppSummary>,
}

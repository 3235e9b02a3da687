//! Event payloads carried in [`crate::Envelope::data`].

use serde::{Deserialize, Serialize};

pub const APP_UPDATED: &str = "app.updated";

/// Why an app's current version changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppChange {
    Deployed,
    RolledBack,
    Deleted,
}

/// `app.updated.<app>`: a version of an app became current, or the app was deleted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppUpdated {
    pub app_name: String,
    pub change: AppChange,
    /// Semver of the current version (of the deleted one for `deleted`).
    pub version: String,
    /// SHA-256 of the bundle zip, hex.
    pub sha256: String,
    /// Object-store key of the bundle.
    pub bundle_key: String,
    /// The manifest as deployed, unknown fields included.
    pub manifest: serde_json::Value,
    #[serde(default)]
    pub previous_version: Option<String>,
    /// Who deployed, rolled back or deleted: the user or API token's name. Absent from
    /// events published before the field existed.
    #[serde(default)]
    pub actor: Option<String>,
    /// The stable id of that user or token (`sub`).
    #[serde(default)]
    pub actor_id: Option<String>,
    /// Set only on the change deploy makes by itself to undo a version the runners
    /// could not load for its code (a rollback to what served before it, or a delete
    /// after a first deploy): that version and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undoes: Option<Undone>,
}

/// A version deploy published and then undid because a runner could not load it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Undone {
    pub version: String,
    /// SHA-256 of its bundle zip, hex.
    pub sha256: String,
    /// The runner and the first line of its error (the app's secret values masked).
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode, encode, Envelope};

    fn sample() -> Envelope<AppUpdated> {
        Envelope {
            id: "0190b6a4-0000-7000-8000-000000000000".into(),
            kind: APP_UPDATED.into(),
            source: "deploy/test".into(),
            time: "2026-01-01T00:00:00Z".into(),
            data: AppUpdated {
                app_name: "notes".into(),
                change: AppChange::Deployed,
                version: "1.0.0".into(),
                sha256: "ab".into(),
                bundle_key: "bundles/notes/ab.zip".into(),
                manifest: serde_json::json!({"app_name": "notes", "version": "1.0.0"}),
                previous_version: None,
                actor: Some("ann".into()),
                actor_id: Some("u-1".into()),
                undoes: None,
            },
        }
    }

    #[test]
    fn app_updated_round_trips_through_named_msgpack() {
        let env = sample();
        let bytes = encode(&env).unwrap();
        let back: Envelope<AppUpdated> = decode(&bytes).unwrap();
        assert_eq!(back, env);
    }

    #[test]
    fn app_updated_is_a_map_with_field_names_readable_as_generic_value() {
        let bytes = encode(&sample()).unwrap();
        // A consumer in another language sees a map keyed by names, not a positional array.
        let generic: serde_json::Value = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(generic["type"], "app.updated");
        assert_eq!(generic["data"]["app_name"], "notes");
        assert_eq!(generic["data"]["change"], "deployed");
        assert_eq!(generic["data"]["manifest"]["version"], "1.0.0");
    }
}

pub const ACTION_TRIGGERED: &str = "action.triggered";

/// `action.triggered.<app>.<action>`: an entry of an app's `_actions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionTriggered {
    pub app_name: String,
    pub action_name: String,
    /// What the app put in the entry's `payload` (null when absent).
    pub payload: serde_json::Value,
    /// False when the manifest does not declare the action (delivered all the same).
    pub declared: bool,
    #[serde(default)]
    pub request_id: Option<String>,
    #[serde(default)]
    pub job_id: Option<String>,
}

pub const JOB_SUBMITTED: &str = "job.submitted";
pub const JOB_PROGRESS: &str = "job.progress";

/// `job.submitted.<app>`: a work item. The job row in `noderouter_core.job_queue` is
/// authoritative; this only says there is one to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSubmitted {
    pub job_id: String,
    pub app_name: String,
    /// Revision of the app the job was submitted against (runs at it or later).
    pub app_rev: u64,
}

/// Job states, as stored in `job_queue.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Pending,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

/// `job.progress.<app>.<job_id>`: progress 0–99 while running, then the final state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobProgress {
    pub job_id: String,
    pub app_name: String,
    pub status: JobStatus,
    pub progress: i32,
    #[serde(default)]
    pub message: Option<String>,
    /// Who submitted the job (`sub` of the caller), so a hub can route it.
    #[serde(default)]
    pub submitted_by: Option<String>,
}

pub const JOB_LOG: &str = "job.log";

/// `job.log.<app>.<job_id>`: one line a running job printed or logged, live (core NATS,
/// not stored; the whole log is kept with the job). At most 50 lines a second per job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobLog {
    pub job_id: String,
    pub app_name: String,
    /// The line, prefixed with `[<request id>]` (the submit's; the job id without one).
    pub line: String,
    /// Who submitted the job, so a hub can route it.
    #[serde(default)]
    pub submitted_by: Option<String>,
}

/// `runner.loaded.<app>`: a runner loaded an app revision from `NR_APPS` (its host is
/// up, `main.py` imported) or could not (core NATS, not stored). Deploy waits for the
/// live runners' reports before it answers, and undoes a version a runner cannot load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppLoaded {
    pub runner: String,
    pub app_name: String,
    pub version: String,
    /// The `NR_APPS` sequence of the event loaded.
    pub rev: u64,
    /// Why the load failed (import error and traceback, cut); `None` when it loaded.
    #[serde(default)]
    pub error: Option<String>,
    /// Whose the failure is: the app's code (`app`), or the platform's (`platform`: the
    /// bundle or the app's variables could not be read, a process could not start).
    #[serde(default)]
    pub fault: LoadFault,
}

/// Whose a failed load is ([`AppLoaded::fault`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadFault {
    /// `main.py` did not import, or the app's processes broke the runner's protocol: the
    /// version cannot be served, and deploy undoes it.
    #[default]
    App,
    /// The runner could not read what the load needs or start its processes; the runner
    /// tries again, and deploy keeps the version with a warning.
    Platform,
}

pub const RBAC_CHANGED: &str = "rbac.changed";

/// One change to identity or access, appended to `rbac.log` (stream `NR_RBAC`) and
/// projected into Postgres by the registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum RbacChange {
    /// The first user, holding the `admin` role; published once on `rbac.bootstrap`.
    Bootstrap {
        id: String,
        username: String,
        password_hash: String,
    },
    UserCreated {
        id: String,
        username: String,
        password_hash: String,
    },
    UserDisabled {
        id: String,
        disabled: bool,
    },
    PasswordSet {
        id: String,
        password_hash: String,
    },
    UserRolesSet {
        id: String,
        roles: Vec<String>,
    },
    RoleCreated {
        name: String,
        description: String,
    },
    RoleDeleted {
        name: String,
    },
    PermissionGranted {
        role: String,
        permission: String,
    },
    PermissionRevoked {
        role: String,
        permission: String,
    },
    TokenIssued {
        id: String,
        name: String,
        owner: String,
        roles: Vec<String>,
        secret_hash: String,
        #[serde(default)]
        expires_at: Option<String>,
    },
    TokenRevoked {
        id: String,
    },
    SessionRevoked {
        jti: String,
        expires_at: String,
    },
    Subscribed {
        user_id: String,
        app_name: String,
        action_name: String,
    },
    Unsubscribed {
        user_id: String,
        app_name: String,
        action_name: String,
    },
}

/// An [`RbacChange`] with who made it, as the gateway appends it to `rbac.log`: the
/// change's fields and `op`, plus `actor` and `actor_id` (a MessagePack map). Readers of
/// [`RbacChange`] ignore the two; events appended before they existed lack them, and
/// the bootstrap event has none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RbacEvent {
    #[serde(flatten)]
    pub change: RbacChange,
    /// Who made the change: the user or API token's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The stable id of that user or token (`sub`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_id: Option<String>,
}

pub const APP_ENV_CHANGED: &str = "app.env";

/// What happened to an app's variable or secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnvChange {
    Set,
    Unset,
}

/// `app.env.<app>` (stream `NR_APP_ENV`): an operator set or removed one of an app's
/// variables or secrets; runners reload the app. Never carries the value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppEnvChanged {
    pub app_name: String,
    /// The variable's name.
    pub name: String,
    pub change: EnvChange,
    /// Whether the name holds (or held) a secret.
    pub secret: bool,
    /// Who made the change: the user or API token's name.
    pub actor: String,
    /// The stable id of that user or token (`sub`).
    pub actor_id: String,
}

/// Envelope type of [`ScheduleChanged`].
pub const SCHEDULE_CHANGED: &str = "schedule.changed";

/// What an operator did to a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleChange {
    Paused,
    Resumed,
}

/// `schedule.changed.<app>` (stream `NR_SCHEDULES`): an operator paused or resumed one
/// of an app's schedules. The audit trail reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleChanged {
    pub app_name: String,
    /// The schedule's name in the manifest.
    pub schedule: String,
    pub change: ScheduleChange,
    /// Who made the change: the user or API token's name.
    pub actor: String,
    /// The stable id of that user or token (`sub`).
    pub actor_id: String,
}

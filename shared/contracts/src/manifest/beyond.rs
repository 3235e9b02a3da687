//! The manifest's schedules and routes: when the platform runs an app by itself, and
//! which HTTP routes under `/apps/<app>/api` call it. Shapes only; the rules (cron
//! syntax, time zones, paths, conflicts) are deploy's.

use serde::{Deserialize, Serialize};

/// The fields of one `schedules[]` entry.
pub const SCHEDULE_FIELDS: &[&str] = &[
    "name", "cron", "action", "payload", "timezone", "overlap", "catch_up",
];
/// The fields of one `routes[]` entry.
pub const ROUTE_FIELDS: &[&str] = &[
    "method",
    "path",
    "action",
    "permission",
    "webhook",
    "upload",
];
/// The fields of a route's `webhook`.
/// Request headers that carry a caller's credential: never passed to an app, so never
/// a webhook's delivery header.
pub const CREDENTIAL_HEADERS: &[&str] = &["authorization", "cookie", "proxy-authorization"];

pub const WEBHOOK_FIELDS: &[&str] = &["secret_name", "header", "algorithm", "delivery_header"];
/// The fields of a route's `upload`.
pub const UPLOAD_FIELDS: &[&str] = &["max_bytes"];

/// The header a webhook's signature comes in when the route names none (GitHub's).
pub const DEFAULT_SIGNATURE_HEADER: &str = "X-Hub-Signature-256";
/// The header naming a webhook delivery when the route names none (GitHub's).
pub const DEFAULT_DELIVERY_HEADER: &str = "X-GitHub-Delivery";

/// One schedule (`schedules[]`): the app runs as a job at every tick of `cron`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ScheduleDecl {
    pub name: String,
    /// A standard five-field cron expression (minute hour day-of-month month weekday).
    pub cron: String,
    /// Sent as `data["action"]` when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The job's `data` (an object); `action` and `_schedule` are added to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<serde_json::Map<String, serde_json::Value>>,
    /// An IANA time zone the cron expression is read in; UTC when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default)]
    pub overlap: Overlap,
    #[serde(default)]
    pub catch_up: CatchUp,
}

/// What a tick does while the schedule's last run is still pending or running.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Overlap {
    /// No new run; the tick is recorded as skipped.
    #[default]
    Skip,
    /// The tick waits and runs once the last run has finished.
    Queue,
    /// The tick runs at once, beside the last run.
    Allow,
}

/// What happens to ticks missed while no scheduler ran.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CatchUp {
    /// None of them runs; each is recorded as missed.
    #[default]
    None,
    /// The latest of them runs; the others are recorded as missed.
    Last,
    /// All of them run, oldest first.
    All,
}

impl Overlap {
    pub fn as_str(self) -> &'static str {
        match self {
            Overlap::Skip => "skip",
            Overlap::Queue => "queue",
            Overlap::Allow => "allow",
        }
    }
}

impl CatchUp {
    pub fn as_str(self) -> &'static str {
        match self {
            CatchUp::None => "none",
            CatchUp::Last => "last",
            CatchUp::All => "all",
        }
    }
}

/// An HTTP method a route answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RouteMethod {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
}

impl RouteMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteMethod::Get => "GET",
            RouteMethod::Head => "HEAD",
            RouteMethod::Post => "POST",
            RouteMethod::Put => "PUT",
            RouteMethod::Patch => "PATCH",
            RouteMethod::Delete => "DELETE",
        }
    }

    /// Whether a request with `method` is served by a route of this method (a GET
    /// route also answers HEAD).
    pub fn answers(self, method: &str) -> bool {
        method == self.as_str() || (self == RouteMethod::Get && method == "HEAD")
    }
}

/// One route (`routes[]`): `method path` under `/apps/<app>/api` calls `execute` with
/// `data["action"] = action`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RouteDecl {
    pub method: RouteMethod,
    /// Relative to `/apps/<app>/api`, starting with `/`; `:name` segments are params.
    pub path: String,
    pub action: String,
    /// Empty or absent: any signed-in user (after the app's own `required_permission`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission: Option<String>,
    /// A webhook route: callers are outside systems proving the body with an HMAC
    /// instead of signing in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookDecl>,
    /// The route takes `multipart/form-data` uploads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<UploadDecl>,
}

/// How a webhook route checks its caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WebhookDecl {
    /// The app secret holding the shared key.
    pub secret_name: String,
    /// The header with `sha256=<hex>`; `X-Hub-Signature-256` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// `sha256` (the one supported) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
    /// The header naming the delivery, refused when seen again; `X-GitHub-Delivery`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_header: Option<String>,
}

impl WebhookDecl {
    pub fn signature_header(&self) -> &str {
        self.header.as_deref().unwrap_or(DEFAULT_SIGNATURE_HEADER)
    }

    pub fn delivery_header(&self) -> &str {
        self.delivery_header
            .as_deref()
            .unwrap_or(DEFAULT_DELIVERY_HEADER)
    }
}

/// Limits of a route's uploads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UploadDecl {
    /// The largest request body, all files together, in bytes.
    pub max_bytes: u64,
}

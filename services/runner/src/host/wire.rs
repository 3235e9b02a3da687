//! The headers of the frames and control lines the Python host and its workers send.

use serde::Deserialize;

use super::FiredAction;

#[derive(Deserialize)]
pub(super) struct ReplyHeader {
    /// Present on a progress frame; the final reply has none.
    #[serde(default)]
    pub(super) progress: Option<i32>,
    #[serde(default)]
    pub(super) message: Option<String>,
    #[serde(default)]
    pub(super) ok: bool,
    /// A file request mid-call (`noderouter.read_upload`, `noderouter.download`).
    #[serde(default)]
    pub(super) file: Option<serde_json::Value>,
    /// Set when the call failed before `execute` because the worker could not open the
    /// app's database connection (Postgres away): not the app's fault.
    #[serde(default)]
    pub(super) unavailable: bool,
    /// The worker stopped the call at its CPU limit and is not to be used again.
    #[serde(default)]
    pub(super) retire: bool,
    #[serde(default)]
    pub(super) error: Option<String>,
    #[serde(default)]
    pub(super) traceback: Option<String>,
    #[serde(default)]
    pub(super) actions: Vec<FiredAction>,
    /// `_actions` entries that are not actions (no name, not a dict), each said why.
    #[serde(default)]
    pub(super) dropped_actions: Vec<String>,
    /// A line of the call's output (a frame of its own, like progress).
    #[serde(default)]
    pub(super) log: Option<String>,
    /// Where that line came from: `stdout`, `stderr` or `logging`.
    #[serde(default)]
    pub(super) stream: Option<String>,
    /// The job's captured output, on the final reply.
    #[serde(default)]
    pub(super) logs: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct LoadReply {
    pub(super) ok: bool,
    #[serde(default)]
    pub(super) error: Option<String>,
    #[serde(default)]
    pub(super) traceback: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct ForkReply {
    /// The token of the `fork` command this answers.
    #[serde(default)]
    pub(super) token: Option<String>,
    #[serde(default)]
    pub(super) pid: Option<i32>,
    #[serde(default)]
    pub(super) error: Option<String>,
}

//! NATS header names used on request/reply subjects.

/// Stream sequence of the `app.updated` event the caller has seen for the app: a runner
/// behind that revision loads it before serving, so a call made after a deploy
/// returned is always served by the new version.
pub const APP_REV: &str = "Nr-App-Rev";
/// Request id, propagated from the HTTP edge into every log line.
pub const REQUEST_ID: &str = "Nr-Request-Id";
/// Status of a runner reply, an HTTP status code as decimal text.
pub const STATUS: &str = "Nr-Status";
/// JetStream dedup id for published events.
pub const MSG_ID: &str = "Nats-Msg-Id";

//! The console's own pages (dashboard, jobs, run an app, users, roles, tokens, profile,
//! audit, app variables, notification history, schedules) and the JSON endpoints only they need
//! (`series`: per-minute metrics for the dashboard; `audit`: the event log read newest
//! first). Each page is the shell's layout around a small container and one script
//! file of its own under `/assets/console/`; the pages use the public API for the rest.
//! See `docs/admin-shell.md`.

pub(crate) mod audit;
mod pages;
pub(crate) mod series;

use std::sync::Arc;

use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::AppState;

/// Read the audit trail (`GET /admin/api/audit`); the `admin` role holds every permission.
pub(crate) const AUDIT_READ: &str = "audit:read";

/// The console's routes; starts the dashboard's sampler (once per process).
pub(crate) fn routes(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    series::start(state);
    Router::new()
        .merge(pages::routes())
        .merge(audit::routes())
        .merge(series::routes())
        .route("/assets/console/{file}", get(asset))
}

/// The pages' scripts, compiled in. Served revalidated with an ETag of their bytes.
const SCRIPTS: &[(&str, &str)] = &[
    (
        "common.js",
        include_str!("../../assets/shell/console-common.js"),
    ),
    (
        "dashboard.js",
        include_str!("../../assets/shell/console-dashboard.js"),
    ),
    (
        "jobs.js",
        include_str!("../../assets/shell/console-jobs.js"),
    ),
    ("run.js", include_str!("../../assets/shell/console-run.js")),
    (
        "users.js",
        include_str!("../../assets/shell/console-users.js"),
    ),
    (
        "roles.js",
        include_str!("../../assets/shell/console-roles.js"),
    ),
    (
        "tokens.js",
        include_str!("../../assets/shell/console-tokens.js"),
    ),
    (
        "profile.js",
        include_str!("../../assets/shell/console-profile.js"),
    ),
    (
        "audit.js",
        include_str!("../../assets/shell/console-audit.js"),
    ),
    ("env.js", include_str!("../../assets/shell/console-env.js")),
    (
        "inbox.js",
        include_str!("../../assets/shell/console-inbox.js"),
    ),
    (
        "history.js",
        include_str!("../../assets/shell/console-history.js"),
    ),
    (
        "schedules.js",
        include_str!("../../assets/shell/console-schedules.js"),
    ),
];

async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let Some((_, text)) = SCRIPTS.iter().find(|(name, _)| *name == file) else {
        return (StatusCode::NOT_FOUND, "no such file\n").into_response();
    };
    let etag = format!("\"{:016x}\"", fnv(text));
    crate::shell::cached_asset(
        &headers,
        axum::body::Body::from(*text),
        crate::shell::JS,
        &etag,
        "no-cache",
    )
}

fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

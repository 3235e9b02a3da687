//! What a call made straight to `POST /api/sync/<app>` or `POST /api/async/<app>` may
//! carry. A route hands `execute` the same `{"action", …}` a caller could send
//! directly, so the route's gate must hold on the direct path too: an action bound to a
//! webhook route is served through that route only (it checks the sender's signature),
//! one bound to a route with a `permission` takes that permission here as well, and
//! `_schedule` and `_job_id` are the platform's to set (the scheduler's and the job
//! queue's), never a caller's.

use serde::Deserialize;
use serde_json::Value;

use crate::apps::AppEntry;
use crate::auth::Caller;
use crate::error::ApiError;

/// The keys of a direct call's body this check reads; the rest is skipped.
#[derive(Deserialize, Default)]
pub(crate) struct Direct {
    action: Option<Value>,
    #[serde(rename = "_schedule")]
    schedule: Option<serde::de::IgnoredAny>,
    #[serde(rename = "_job_id")]
    job_id: Option<serde::de::IgnoredAny>,
}

impl Direct {
    /// The keys of `data`, a JSON object.
    pub(crate) fn of(data: &Value) -> Direct {
        Direct::deserialize(data).unwrap_or_default()
    }
}

/// Refuses a direct call that a route, a webhook or the scheduler would have gated.
pub(crate) fn check(
    app: &str,
    entry: &AppEntry,
    caller: &Caller,
    data: &Direct,
) -> Result<(), ApiError> {
    for (key, set) in [
        ("_schedule", data.schedule.is_some()),
        ("_job_id", data.job_id.is_some()),
    ] {
        if set {
            return Err(ApiError::BadRequest(format!(
                "request body field {key}: set by the platform, not by a caller"
            )));
        }
    }
    let Some(Value::String(action)) = &data.action else {
        return Ok(());
    };
    may_run_action(app, entry, caller, action)
}

/// Refuses `action` to a caller its routes would not let through: one bound to a
/// webhook route (served there only), or to a route whose permission the caller lacks.
pub(crate) fn may_run_action(
    app: &str,
    entry: &AppEntry,
    caller: &Caller,
    action: &str,
) -> Result<(), ApiError> {
    for route in entry.manifest.routes.iter().filter(|r| r.action == action) {
        if route.webhook.is_some() {
            return Err(ApiError::Forbidden(format!(
                "action '{action}' of app '{app}' is served by its webhook route ({} /apps/{app}/api{}) only, which checks the sender's signature",
                route.method.as_str(),
                route.path
            )));
        }
        caller.require(route.permission.as_deref().unwrap_or(""))?;
    }
    Ok(())
}

/// The actions of the app `caller` may not run ([`may_run_action`]).
pub(crate) fn barred_actions(app: &str, entry: &AppEntry, caller: &Caller) -> Vec<String> {
    let mut barred: Vec<String> = entry
        .manifest
        .routes
        .iter()
        .map(|r| r.action.clone())
        .filter(|a| may_run_action(app, entry, caller, a).is_err())
        .collect();
    barred.sort();
    barred.dedup();
    barred
}

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
    if entry.manifest.routes.is_empty() {
        return Ok(());
    }
    let Some(action) = data.action.as_ref().and_then(as_text) else {
        return Ok(());
    };
    may_run_action(app, entry, caller, &action)
}

/// The text an app's `str(data.get("action"))` makes of a scalar `action`; none for a
/// list or an object, whose text no slug can equal.
fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "True" } else { "False" }.to_owned()),
        Value::Null => Some("None".to_owned()),
        _ => None,
    }
}

/// `action` as an app may read it before it dispatches: the author guide's
/// `str(data.get("action", "")).strip()`, perhaps with `.lower()` or `.upper()`.
/// Python's `strip()` takes Unicode whitespace and the separators U+001C-U+001F; the
/// case is folded through upper then lower, so `ß`, `ſ` or the Kelvin sign fold where
/// Python's case mappings take them. A gate holds for every spelling that folds to its
/// action: `"wipe "`, `"\tWIPE"` and `"wipe"` are one action.
pub(crate) fn fold(action: &str) -> String {
    action
        .trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
        .chars()
        .flat_map(char::to_uppercase)
        .flat_map(char::to_lowercase)
        .collect()
}

/// Whether `action` folds to `folded` ([`fold`]). A route's action is an ASCII slug
/// (deploy refuses others), whose fold is its ASCII lowercase: compared without
/// allocating, for each route on every direct call.
fn folds_to(action: &str, folded: &str) -> bool {
    if action.is_ascii() {
        action.eq_ignore_ascii_case(folded)
    } else {
        fold(action) == folded
    }
}

/// Refuses `action` to a caller its routes would not let through: one bound to a
/// webhook route (served there only), or to a route whose permission the caller lacks.
pub(crate) fn may_run_action(
    app: &str,
    entry: &AppEntry,
    caller: &Caller,
    action: &str,
) -> Result<(), ApiError> {
    if entry.manifest.routes.is_empty() {
        return Ok(());
    }
    let folded = fold(action);
    for route in entry
        .manifest
        .routes
        .iter()
        .filter(|r| folds_to(&r.action, &folded))
    {
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

/// The actions of the app `caller` may not run ([`may_run_action`]), folded
/// ([`fold`]): a job whose folded action is one of them is barred.
pub(crate) fn barred_actions(app: &str, entry: &AppEntry, caller: &Caller) -> Vec<String> {
    let mut barred: Vec<String> = entry
        .manifest
        .routes
        .iter()
        .filter(|r| may_run_action(app, entry, caller, &r.action).is_err())
        .map(|r| fold(&r.action))
        .collect();
    barred.sort();
    barred.dedup();
    barred
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_an_app_may_strip_or_fold_reads_as_its_action() {
        // What Python's `str(x).strip().lower()` (or `.upper()`) makes of each.
        for (spelled, action) in [
            ("wipe", "wipe"),
            (" wipe\t\n", "wipe"),
            ("\u{1c}\u{1f}WIPE\u{a0}\u{3000}", "wipe"),
            ("\u{85}Wipe\u{2029}", "wipe"),
            ("\u{212a}ill", "kill"),
            ("\u{17f}tart", "start"),
            ("stra\u{df}e", "strasse"),
        ] {
            assert_eq!(fold(spelled), fold(action), "{spelled:?}");
        }
        // Inside the text nothing is stripped: another action.
        assert_ne!(fold("wi pe"), fold("wipe"));
        assert_ne!(fold("wipe\u{200b}"), fold("wipe"));
        assert_eq!(as_text(&serde_json::json!(7)).as_deref(), Some("7"));
        assert_eq!(as_text(&serde_json::json!(true)).as_deref(), Some("True"));
        assert_eq!(as_text(&serde_json::json!(["wipe"])), None);
    }
}

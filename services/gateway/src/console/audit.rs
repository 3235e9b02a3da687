//! `GET /admin/api/audit`: who deployed, rolled back and deleted apps, changed users,
//! roles, grants and tokens, set app variables and paused or resumed schedules, read
//! from the event log itself (streams `NR_APPS`, `NR_RBAC`, `NR_APP_ENV`,
//! `NR_SCHEDULES`) newest first. Each stream is read
//! backwards by sequence with direct message gets, bounded per request; the three are
//! merged by time. The cursor (`before`) holds one position per stream, so a page never
//! skips an entry of one stream because another had newer ones. Hashes, secrets and
//! manifests never leave: an entry carries names, versions and ids only.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use nr_contracts::subjects;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::AppState;

/// Messages read from one stream for one request, at most.
const SCAN: u64 = 500;

/// (short name used in the cursor, stream, kind shown)
const STREAMS: &[(&str, &str, &str)] = &[
    ("a", subjects::STREAM_APPS, "apps"),
    ("r", subjects::STREAM_RBAC, "access"),
    ("e", subjects::STREAM_APP_ENV, "env"),
    ("s", subjects::STREAM_SCHEDULES, "schedules"),
];

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/admin/api/audit", get(audit))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditQuery {
    /// `apps`, `access`, `env` or `schedules`: one kind only.
    #[serde(default)]
    #[param(pattern = "^(apps|access|env|schedules)$")]
    kind: Option<String>,
    /// Entries whose action, target or actor contains this text (case-insensitive).
    #[serde(default)]
    q: Option<String>,
    /// 1-200, default 50.
    #[serde(default)]
    limit: Option<usize>,
    /// The `next_before` of the previous page.
    #[serde(default)]
    before: Option<String>,
}

#[derive(Serialize, Clone)]
struct Entry {
    kind: &'static str,
    /// Stream sequence of the event.
    seq: u64,
    time: String,
    /// `deployed`, `rolled_back`, `deleted`, `user_created`, `set`, …
    action: String,
    /// The app, user, role or token the change is about: a user or token by name while
    /// it exists (the events of some changes carry only its id), by id otherwise.
    target: String,
    /// Who made it (user or token name), when the event names them.
    actor: Option<String>,
    /// The stable id of that user or token.
    actor_id: Option<String>,
    source: String,
    details: Map<String, Value>,
}

fn parse_cursor(text: Option<&str>) -> Result<HashMap<String, u64>, ApiError> {
    let mut out = HashMap::new();
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return Ok(out);
    };
    for part in text.split(',') {
        let parsed = part
            .split_once(':')
            .and_then(|(k, v)| Some((k, v.parse::<u64>().ok()?)))
            .filter(|(k, _)| STREAMS.iter().any(|(s, _, _)| s == k));
        let Some((k, v)) = parsed else {
            return Err(ApiError::BadRequest(format!(
                "before {text:?} must be the next_before of the previous page (like \"a:12,r:40,e:3,s:0\")"
            )));
        };
        out.insert(k.to_owned(), v);
    }
    Ok(out)
}

/// The audit trail: app, access, variable and schedule changes read from the event log,
/// newest first.
#[utoipa::path(
    get,
    path = "/admin/api/audit",
    tag = "admin",
    params(AuditQuery),
    responses(
        (status = 200, description = "`{entries: [{kind, seq, time, action, target, actor, actor_id, source, details}], next_before}`; `actor` is who made the change (null for events recorded before changes named their author); hashes, secrets and manifests are never included", body = Object),
        (status = 400, description = "A bad `kind` or `before`", body = ErrorBody),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "The `audit:read` permission is missing", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn audit(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(super::AUDIT_READ)?;
    if let Some(k) = &q.kind {
        if !STREAMS.iter().any(|(_, _, kind)| kind == k) {
            return Err(ApiError::BadRequest(format!(
                "kind {k:?} must be one of apps, access, env, schedules"
            )));
        }
    }
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    let cursor = parse_cursor(q.before.as_deref())?;
    let needle =
        q.q.as_deref()
            .map(str::to_lowercase)
            .filter(|s| !s.is_empty());
    let names = if q.kind.as_deref().is_none_or(|k| k == "access") {
        names(&state).await
    } else {
        Names::new()
    };
    let mut found: Vec<(&str, Vec<Entry>, u64)> = Vec::new();
    for (short, stream, kind) in STREAMS {
        if q.kind.as_deref().is_some_and(|k| k != *kind) {
            continue;
        }
        let start = cursor.get(*short).copied();
        if start == Some(0) {
            continue;
        }
        let (entries, stopped) = scan(
            &state,
            stream,
            kind,
            start,
            limit,
            needle.as_deref(),
            &names,
        )
        .await?;
        found.push((short, entries, stopped));
    }
    // Merge newest first; an entry not taken keeps its stream's cursor at it.
    let mut all: Vec<(&str, Entry)> = found
        .iter()
        .flat_map(|(s, es, _)| es.iter().map(move |e| (*s, e.clone())))
        .collect();
    all.sort_by(|x, y| y.1.time.cmp(&x.1.time).then(y.1.seq.cmp(&x.1.seq)));
    let taken: Vec<(&str, Entry)> = all.into_iter().take(limit).collect();
    let mut next = Vec::new();
    let mut more = false;
    for (short, entries, stopped) in &found {
        let last_taken = taken
            .iter()
            .filter(|(s, _)| s == short)
            .map(|(_, e)| e.seq)
            .min();
        let untaken = entries.iter().any(|e| last_taken.is_none_or(|t| e.seq < t));
        let pos = match (untaken, last_taken) {
            (true, Some(t)) => t - 1,
            (true, None) => entries.first().map(|e| e.seq).unwrap_or(*stopped),
            (false, _) => *stopped,
        };
        more |= pos > 0;
        next.push(format!("{short}:{pos}"));
    }
    for (short, _, _) in STREAMS {
        if cursor.get(*short) == Some(&0) {
            next.push(format!("{short}:0"));
        }
    }
    let entries: Vec<Entry> = taken.into_iter().map(|(_, e)| e).collect();
    Ok(Json(serde_json::json!({
        "entries": entries,
        "next_before": if more { Some(next.join(",")) } else { None },
    })))
}

/// User and API token names by id.
type Names = HashMap<String, String>;

/// The names of the users and API tokens that exist, for the changes whose events carry
/// only an id (disabling a user, setting their password or roles, revoking a token).
/// Without the database the entries name them by id.
async fn names(state: &AppState) -> Names {
    let rows: Result<Vec<(String, String)>, _> = sqlx::query_as(
        "SELECT id::text, username FROM noderouter_core.users \
         UNION ALL SELECT id::text, name FROM noderouter_core.api_tokens",
    )
    .fetch_all(&state.db)
    .await;
    match rows {
        Ok(rows) => rows.into_iter().collect(),
        Err(e) => {
            tracing::warn!(error = %e, "audit: cannot read user and token names; naming them by id");
            Names::new()
        }
    }
}

/// Reads `stream` backwards from `start` (inclusive; default its last message) until
/// `limit` entries match or [`SCAN`] messages were read. Returns the matches and the
/// sequence to continue from (0: the stream's start was reached).
async fn scan(
    state: &AppState,
    stream: &str,
    kind: &'static str,
    start: Option<u64>,
    limit: usize,
    needle: Option<&str>,
    names: &Names,
) -> Result<(Vec<Entry>, u64), ApiError> {
    let mut handle = match state.js.get_stream(stream).await {
        Ok(s) => s,
        Err(e) => {
            return Err(ApiError::Internal(anyhow::anyhow!(
                "cannot open stream {stream}: {e}"
            )))
        }
    };
    let info = handle
        .info()
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("cannot read stream {stream}: {e}")))?;
    let (first, last) = (info.state.first_sequence, info.state.last_sequence);
    let mut seq = start.map_or(last, |s| s.min(last));
    let mut out = Vec::new();
    let mut read = 0;
    while seq >= first.max(1) && read < SCAN && out.len() < limit {
        read += 1;
        // A deleted or purged sequence has no message: step over it.
        if let Ok(msg) = handle.get_raw_message(seq).await {
            if let Some(e) = entry(kind, seq, &msg.payload, names) {
                if needle.is_none_or(|n| matches(&e, n)) {
                    out.push(e);
                }
            }
        }
        seq -= 1;
    }
    let stopped = if seq < first.max(1) { 0 } else { seq };
    Ok((out, stopped))
}

fn matches(e: &Entry, needle: &str) -> bool {
    [&e.action, &e.target]
        .iter()
        .any(|s| s.to_lowercase().contains(needle))
        || e.actor
            .as_deref()
            .is_some_and(|a| a.to_lowercase().contains(needle))
}

/// The entry of one event, without what must not be shown.
fn entry(kind: &'static str, seq: u64, payload: &[u8], names: &Names) -> Option<Entry> {
    let env: Value = nr_contracts::decode(payload).ok()?;
    let data = env.get("data")?.as_object()?.clone();
    let text = |k: &str| data.get(k).and_then(Value::as_str).map(str::to_owned);
    let (action, target) = match kind {
        "apps" => (text("change")?, text("app_name")?),
        "env" => (
            text("change")?,
            format!("{}:{}", text("app_name")?, text("name")?),
        ),
        "schedules" => (
            text("change")?,
            format!("{}:{}", text("app_name")?, text("schedule")?),
        ),
        _ => {
            let mut op = text("op")?;
            // One event both disables and enables a user: name what it did.
            if op == "user_disabled" && data.get("disabled") == Some(&Value::Bool(false)) {
                op = "user_enabled".into();
            }
            let target = ["username", "name", "role", "app_name"]
                .iter()
                .find_map(|k| text(k))
                .or_else(|| text("id").map(|id| names.get(&id).cloned().unwrap_or(id)))
                .or_else(|| text("jti"))
                .unwrap_or_default();
            (op, target)
        }
    };
    let actor = text("actor");
    let actor_id = text("actor_id");
    let mut details: Map<String, Value> = data
        .into_iter()
        .filter(|(k, v)| {
            let k = k.to_lowercase();
            !(k.contains("hash")
                || k == "manifest"
                || k == "bundle_key"
                || k == "sha256"
                || k == "actor"
                || k == "actor_id")
                && (!k.contains("secret") || v.is_boolean())
        })
        .collect();
    // An undo names the version it refused and why, not its bundle's hash.
    if let Some(Value::Object(undone)) = details.get_mut("undoes") {
        undone.remove("sha256");
    }
    Some(Entry {
        kind,
        seq,
        time: env
            .get("time")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        action,
        target,
        actor,
        actor_id,
        source: env
            .get("source")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        details,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nr_contracts::events::RbacChange;
    use nr_contracts::{encode, Envelope};

    #[test]
    fn an_entry_never_carries_a_password_hash() {
        let ev = Envelope::new(
            "rbac.changed",
            "gateway/x",
            RbacChange::UserCreated {
                id: "u1".into(),
                username: "ann".into(),
                password_hash: "$argon2id$secret".into(),
            },
        );
        let bytes = encode(&ev).unwrap();
        let e = entry("access", 7, &bytes, &Names::new()).unwrap();
        assert_eq!(
            (e.action.as_str(), e.target.as_str()),
            ("user_created", "ann")
        );
        let shown = serde_json::to_string(&e).unwrap();
        assert!(!shown.contains("argon2"), "{shown}");
    }

    #[test]
    fn enabling_a_user_again_reads_as_enabled_not_disabled() {
        for (disabled, action) in [(true, "user_disabled"), (false, "user_enabled")] {
            let ev = Envelope::new(
                "rbac.changed",
                "gateway/x",
                RbacChange::UserDisabled {
                    id: "u1".into(),
                    disabled,
                },
            );
            let e = entry("access", 9, &encode(&ev).unwrap(), &Names::new()).unwrap();
            assert_eq!(e.action, action);
        }
    }

    #[test]
    fn an_access_entry_names_who_made_it_and_an_old_one_reads_as_unrecorded() {
        let ev = Envelope::new(
            "rbac.changed",
            "gateway/x",
            nr_contracts::events::RbacEvent {
                change: RbacChange::RoleDeleted {
                    name: "sales".into(),
                },
                actor: Some("ann".into()),
                actor_id: Some("u-1".into()),
            },
        );
        let e = entry("access", 3, &encode(&ev).unwrap(), &Names::new()).unwrap();
        assert_eq!(
            (e.action.as_str(), e.target.as_str()),
            ("role_deleted", "sales")
        );
        assert_eq!(
            (e.actor.as_deref(), e.actor_id.as_deref()),
            (Some("ann"), Some("u-1"))
        );
        assert!(!e.details.contains_key("actor"), "{:?}", e.details);
        let old = Envelope::new(
            "rbac.changed",
            "gateway/x",
            RbacChange::RoleDeleted {
                name: "sales".into(),
            },
        );
        let e = entry("access", 2, &encode(&old).unwrap(), &Names::new()).unwrap();
        assert_eq!(e.actor, None);
        // The registry still reads the change itself from an event that names its author.
        let back: Envelope<RbacChange> = nr_contracts::decode(&encode(&ev).unwrap()).unwrap();
        assert_eq!(
            back.data,
            RbacChange::RoleDeleted {
                name: "sales".into()
            }
        );
    }

    #[test]
    fn a_user_or_token_known_by_id_only_is_named_while_it_exists() {
        let names = Names::from([
            ("u1".to_owned(), "ann".to_owned()),
            ("t1".to_owned(), "ci".to_owned()),
        ]);
        let cases = [
            (
                RbacChange::UserDisabled {
                    id: "u1".into(),
                    disabled: true,
                },
                "ann",
            ),
            (
                RbacChange::UserRolesSet {
                    id: "u1".into(),
                    roles: vec!["viewer".into()],
                },
                "ann",
            ),
            (RbacChange::TokenRevoked { id: "t1".into() }, "ci"),
            // Gone since: its id.
            (RbacChange::TokenRevoked { id: "t9".into() }, "t9"),
        ];
        for (change, target) in cases {
            let ev = Envelope::new("rbac.changed", "gateway/x", change);
            let e = entry("access", 4, &encode(&ev).unwrap(), &names).unwrap();
            assert_eq!(e.target, target);
            // The id stays in the details, and searching by name finds the entry.
            assert!(e.details.contains_key("id"), "{:?}", e.details);
            assert!(matches(&e, target));
        }
    }

    #[test]
    fn a_cursor_names_known_streams_only() {
        assert_eq!(parse_cursor(Some("a:3,r:0")).unwrap()["a"], 3);
        assert!(parse_cursor(Some("x:3")).is_err());
        assert!(parse_cursor(Some("a:-1")).is_err());
    }
}

//! The rules of `routes[]`: actions that exist, route paths, duplicate routes, and
//! webhook and upload settings; and what `schedules[]` ([`super::schedules`]) shares.

use std::collections::BTreeMap;

use nr_contracts::manifest::{ROUTE_FIELDS, UPLOAD_FIELDS, WEBHOOK_FIELDS};
use serde_json::{Map, Value};

use super::{display_path, kind, Ctx};

/// Routes one app may declare.
pub const MAX_ROUTES: usize = 200;
/// The largest upload a route may declare (1 GiB).
pub const MAX_UPLOAD_BYTES: u64 = 1 << 30;

const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

/// The names in `actions[]`, which schedules and routes must name.
pub(super) fn declared_actions(obj: &Map<String, Value>) -> Vec<String> {
    obj.get("actions")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.get("name").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn list<'v>(c: &mut Ctx, obj: &'v Map<String, Value>, key: &str) -> &'v [Value] {
    match obj.get(key) {
        None | Some(Value::Null) => &[],
        Some(Value::Array(a)) => a,
        Some(other) => {
            c.error(
                &format!("manifest.{key}"),
                &format!("/{key}"),
                format!("{key} must be an array of objects, not {}", kind(other)),
            );
            &[]
        }
    }
}

pub(super) fn action_ref(
    c: &mut Ctx,
    rule: &str,
    o: &Map<String, Value>,
    p: &str,
    actions: &[String],
    required: bool,
) {
    let at = display_path(&format!("{p}/action"));
    match o.get("action") {
        None | Some(Value::Null) if !required => {}
        None | Some(Value::Null) => c.error(
            rule,
            p,
            format!("{at} is required: one of the app's actions[] names"),
        ),
        Some(Value::String(a)) if actions.iter().any(|x| x == a) => {}
        Some(Value::String(a)) => c.error(
            rule,
            &format!("{p}/action"),
            format!(
                "{at} {a:?} is not declared in actions[] (declared: {})",
                if actions.is_empty() {
                    "none".to_owned()
                } else {
                    actions.join(", ")
                }
            ),
        ),
        Some(other) => c.error(
            rule,
            &format!("{p}/action"),
            format!("{at} must be a string, not {}", kind(other)),
        ),
    }
}

/// A route path: `/`, or `/`-separated segments, each a literal
/// (`[A-Za-z0-9._~-]`, not `.` or `..`) or a `:name` parameter.
pub fn check_route_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err("must start with \"/\" (it is relative to /apps/<app>/api)".into());
    }
    if path.len() > 256 {
        return Err("is longer than 256 characters".into());
    }
    if path == "/" {
        return Ok(());
    }
    let mut params: Vec<&str> = Vec::new();
    for seg in path[1..].split('/') {
        if seg.is_empty() {
            return Err("has an empty segment (\"//\" or a trailing \"/\")".into());
        }
        if let Some(name) = seg.strip_prefix(':') {
            let ok = name
                .chars()
                .next()
                .is_some_and(|ch| ch.is_ascii_alphabetic() || ch == '_')
                && name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
            if !ok {
                return Err(format!("parameter {seg:?} must be \":\" then a name of letters, digits and _ (such as \":id\")"));
            }
            if params.contains(&name) {
                return Err(format!("names the parameter {seg:?} twice"));
            }
            params.push(name);
        } else if seg == "." || seg == ".." {
            return Err(format!("has a {seg:?} segment"));
        } else if !seg
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "._~-".contains(ch))
        {
            return Err(format!(
                "segment {seg:?} may hold only letters, digits and . _ ~ -"
            ));
        }
    }
    Ok(())
}

/// The shape two routes collide on: parameters are all alike.
fn route_shape(path: &str) -> String {
    path.split('/')
        .map(|s| if s.starts_with(':') { ":" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

pub(super) fn check_routes(c: &mut Ctx, obj: &Map<String, Value>) {
    const RULE: &str = "manifest.routes";
    let actions = declared_actions(obj);
    // (method, shape) -> index; a GET also takes HEAD.
    // (method, path shape) -> the first route answering it, and its path as written.
    let mut seen: BTreeMap<(String, String), (usize, String)> = BTreeMap::new();
    let items = list(c, obj, "routes");
    if items.len() > MAX_ROUTES {
        c.error(RULE, "/routes", format!("routes: {} declared, at most {MAX_ROUTES} per app (every call matches against them)", items.len()));
    }
    for (i, item) in items.iter().enumerate() {
        let p = format!("/routes/{i}");
        let at = display_path(&p);
        let Some(o) = item.as_object() else {
            c.error(
                RULE,
                &p,
                format!(
                    "{at} must be an object {{\"method\", \"path\", \"action\"}}, not {}",
                    kind(item)
                ),
            );
            continue;
        };
        c.unknown_fields(o, &p, ROUTE_FIELDS);
        let method = match o.get("method") {
            Some(Value::String(m)) if METHODS.contains(&m.as_str()) => Some(m.clone()),
            Some(m) => {
                c.error(
                    RULE,
                    &format!("{p}/method"),
                    format!("{at}.method must be one of {}, not {m}", METHODS.join(" ")),
                );
                None
            }
            None => {
                c.error(
                    RULE,
                    &p,
                    format!("{at}.method is required: one of {}", METHODS.join(" ")),
                );
                None
            }
        };
        let path = match o.get("path") {
            Some(Value::String(path)) => match check_route_path(path) {
                Ok(()) => Some(path.clone()),
                Err(m) => {
                    c.error(
                        RULE,
                        &format!("{p}/path"),
                        format!("{at}.path {path:?} {m}"),
                    );
                    None
                }
            },
            Some(other) => {
                c.error(
                    RULE,
                    &format!("{p}/path"),
                    format!("{at}.path must be a string, not {}", kind(other)),
                );
                None
            }
            None => {
                c.error(
                    RULE,
                    &p,
                    format!("{at}.path is required, such as \"/items/:id\""),
                );
                None
            }
        };
        if let (Some(m), Some(path)) = (&method, &path) {
            let shape = route_shape(path);
            let mut keys = vec![m.clone()];
            if m == "GET" {
                keys.push("HEAD".into());
            }
            for k in keys {
                if let Some((first, first_path)) = seen.get(&(k.clone(), shape.clone())) {
                    c.error(RULE, &format!("{p}/path"), format!("routes[{first}] ({first_path}) and routes[{i}] ({path}) both answer {k} on the same paths: two routes may not share a method and path (a GET also answers HEAD; :params match alike)"));
                } else {
                    seen.insert((k, shape.clone()), (i, path.clone()));
                }
            }
        }
        action_ref(c, RULE, o, &p, &actions, true);
        c.permission(RULE, o, &p, "permission");
        let has_permission = o
            .get("permission")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty());
        match o.get("webhook") {
            None | Some(Value::Null) => {}
            Some(Value::Object(w)) => {
                let wp = format!("{p}/webhook");
                if has_permission {
                    c.error(RULE, &wp, format!("{at} declares both permission and webhook: a webhook route is called by an outside system proving the body with its secret, not by a signed-in user"));
                }
                c.unknown_fields(w, &wp, WEBHOOK_FIELDS);
                if matches!(method.as_deref(), Some("GET")) {
                    c.error(RULE, &wp, format!("{at} is a GET with a webhook: the signature covers the body only and a GET carries none, so one signature would open the route to any query and any delivery id; take webhooks on POST, PUT or PATCH"));
                }
                match w.get("secret_name") {
                    Some(Value::String(s)) => {
                        if let Err(e) = nr_infra::appenv::check_name(s) {
                            c.error(RULE, &format!("{wp}/secret_name"), format!("{at}.webhook.secret_name {s:?}: {e}"));
                        }
                    }
                    _ => c.error(RULE, &wp, format!("{at}.webhook.secret_name is required: the name of an app secret (`noderouter app env set <app> <NAME> --secret`)")),
                }
                for key in ["header", "delivery_header"] {
                    match w.get(key) {
                        None | Some(Value::Null) => {}
                        Some(Value::String(h)) if key == "delivery_header" && nr_contracts::manifest::CREDENTIAL_HEADERS.contains(&h.to_ascii_lowercase().as_str()) => {
                            c.error(RULE, &format!("{wp}/{key}"), format!("{at}.webhook.delivery_header {h:?} carries a credential: the delivery's id is passed to the app, a credential never is; name the sender's delivery id header (\"X-GitHub-Delivery\" by default)"));
                        }
                        Some(Value::String(h)) if axum_header_ok(h) => {}
                        Some(v) => c.error(RULE, &format!("{wp}/{key}"), format!("{at}.webhook.{key} must be an HTTP header name such as \"X-Hub-Signature-256\", not {v}")),
                    }
                }
                match w.get("algorithm") {
                    None | Some(Value::Null) => {}
                    Some(Value::String(a)) if a == "sha256" => {}
                    Some(v) => c.error(RULE, &format!("{wp}/algorithm"), format!("{at}.webhook.algorithm must be \"sha256\" (HMAC-SHA256), not {v}")),
                }
            }
            Some(other) => c.error(RULE, &format!("{p}/webhook"), format!("{at}.webhook must be an object {{\"secret_name\", \"header\", \"algorithm\"}}, not {}", kind(other))),
        }
        match o.get("upload") {
            None | Some(Value::Null) => {}
            Some(Value::Object(u)) => {
                let up = format!("{p}/upload");
                c.unknown_fields(u, &up, UPLOAD_FIELDS);
                if matches!(o.get("webhook"), Some(Value::Object(_))) {
                    c.error(RULE, &up, format!("{at} declares both webhook and upload: a webhook's body is read before its sender is proven, so it is at most NR_MAX_BODY_BYTES; take files on a route for signed-in callers"));
                }
                if !matches!(method.as_deref(), Some("POST" | "PUT" | "PATCH") | None) {
                    c.error(
                        RULE,
                        &up,
                        format!("{at}.upload needs a POST, PUT or PATCH route"),
                    );
                }
                match u.get("max_bytes").and_then(Value::as_u64) {
                    Some(n) if (1..=MAX_UPLOAD_BYTES).contains(&n) => {}
                    _ => c.error(RULE, &format!("{up}/max_bytes"), format!("{at}.upload.max_bytes must be a whole number of bytes from 1 to {MAX_UPLOAD_BYTES}")),
                }
            }
            Some(other) => c.error(
                RULE,
                &format!("{p}/upload"),
                format!(
                    "{at}.upload must be an object {{\"max_bytes\"}}, not {}",
                    kind(other)
                ),
            ),
        }
    }
}

fn axum_header_ok(h: &str) -> bool {
    !h.is_empty() && h.len() <= 64 && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_paths_are_checked_segment_by_segment() {
        assert!(check_route_path("/").is_ok());
        assert!(check_route_path("/items/:id").is_ok());
        assert!(check_route_path("/v1/report.csv").is_ok());
        assert!(check_route_path("items").is_err());
        assert!(check_route_path("/items/").is_err());
        assert!(check_route_path("/a//b").is_err());
        assert!(check_route_path("/a/../b").is_err());
        assert!(check_route_path("/a/:1x").is_err());
        assert!(check_route_path("/a/:id/b/:id").is_err());
        assert!(check_route_path("/a b").is_err());
        assert_eq!(route_shape("/a/:id/b"), route_shape("/a/:x/b"));
    }

    fn check(extra: serde_json::Value) -> Result<crate::manifest::ManifestOk, crate::Refused> {
        let mut m = serde_json::json!({"app_name": "sales", "version": "1.0.0", "api_version": "1.0.0",
            "actions": [{"name": "a", "display_name": "A"}]});
        for (k, v) in extra.as_object().into_iter().flatten() {
            m[k] = v.clone();
        }
        crate::manifest::check_manifest(
            serde_json::to_string_pretty(&m)
                .unwrap_or_default()
                .as_bytes(),
            "sales",
        )
    }

    fn refused_for(extra: serde_json::Value, says: &str) -> bool {
        check(extra).is_err_and(|r| r.details.iter().any(|d| d.message.contains(says)))
    }

    #[test]
    fn a_misspelt_gate_is_refused_where_other_unknown_fields_only_warn() {
        assert!(refused_for(
            serde_json::json!({"required_permision": "sales:read"}),
            "did you mean \"required_permission\""
        ));
        assert!(refused_for(
            serde_json::json!({"Required-Permission": "sales:read"}),
            "did you mean \"required_permission\""
        ));
        let route = |extra: serde_json::Value| {
            let mut r = serde_json::json!({"method": "POST", "path": "/x", "action": "a"});
            for (k, v) in extra.as_object().into_iter().flatten() {
                r[k] = v.clone();
            }
            serde_json::json!({"routes": [r]})
        };
        assert!(refused_for(
            route(serde_json::json!({"permision": "sales:x"})),
            "did you mean \"permission\""
        ));
        assert!(refused_for(
            route(serde_json::json!({"permissions": "sales:x"})),
            "did you mean \"permission\""
        ));
        assert!(refused_for(
            route(serde_json::json!({"webhok": {"secret_name": "K"}})),
            "did you mean \"webhook\""
        ));
        // The permission as another object spells it.
        assert!(refused_for(
            route(serde_json::json!({"required_permission": "sales:x"})),
            "did you mean \"permission\""
        ));
        assert!(refused_for(
            serde_json::json!({"permission": "sales:read"}),
            "did you mean \"required_permission\""
        ));
        assert!(check(serde_json::json!({"author": "me"})).is_ok_and(|ok| ok.warnings.len() == 1));
        assert!(check(route(serde_json::json!({"colour": "red"}))).is_ok());
    }

    #[test]
    fn a_webhook_needs_a_body_to_sign() {
        let hook = |method: &str| {
            serde_json::json!({"routes": [{"method": method, "path": "/h", "action": "a",
            "webhook": {"secret_name": "HOOK_SECRET"}}]})
        };
        assert!(refused_for(hook("GET"), "a GET with a webhook"));
        assert!(check(hook("POST")).is_ok());
        assert!(refused_for(
            serde_json::json!({"routes": [{"method": "POST", "path": "/h", "action": "a", "webhook": {}}]}),
            "noderouter app env set <app> <NAME> --secret"
        ));
    }
}

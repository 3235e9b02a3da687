//! `GET /api/apps`: the apps the caller may use, with the composed menu.

use super::*;

#[utoipa::path(
    get,
    path = "/api/apps",
    tag = "apps",
    responses(
        (status = 200, description = "`{apps, nav}`: the apps the caller may use (each with its declared `actions`: `{name, display_name, description, required_permission, allowed}`) and the admin menu filtered by the caller's permissions", body = Object),
        (status = 401, description = "No valid credential", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn my_apps(State(state): State<Arc<AppState>>, caller: Caller) -> Json<Value> {
    let mut apps = Vec::new();
    let mut nav = Vec::new();
    for (name, entry) in state.apps.all() {
        let required = entry
            .manifest
            .required_permission
            .clone()
            .unwrap_or_default();
        if !caller.0.has(&required) {
            continue;
        }
        apps.push(json!({
            "app_name": name,
            "display_name": entry.manifest.display_name.clone().unwrap_or_else(|| name.clone()),
            "description": entry.manifest.description,
            "version": entry.version,
            "href": format!("/apps/{name}/"),
            "actions": app_actions(&entry.manifest.actions, &entry.raw_manifest, &caller),
        }));
        if let Some(fragment) = entry.raw_manifest.get("nav").and_then(|n| n.as_array()) {
            nav.extend(fragment.iter().filter_map(|n| filter_nav(n, &caller)));
        } else {
            nav.push(json!({
                "id": format!("app:{name}"),
                "label": entry.manifest.display_name.clone().unwrap_or_else(|| name.clone()),
                "href": format!("/apps/{name}/"),
            }));
        }
    }
    Json(json!({"apps": apps, "nav": nav}))
}

/// The actions an app declares, as `GET /api/apps` lists them: `{name, display_name,
/// description, required_permission, allowed}`, `allowed` telling whether the caller
/// holds the action's permission (and so may subscribe to it). The description comes
/// from the raw manifest (the runtime view does not keep it).
fn app_actions(
    actions: &[nr_contracts::manifest::ActionDecl],
    raw: &Value,
    caller: &Caller,
) -> Vec<Value> {
    let raw_actions = raw.get("actions").and_then(|a| a.as_array());
    actions
        .iter()
        .filter(|a| !a.name.is_empty())
        .map(|a| {
            let description = raw_actions
                .and_then(|list| {
                    list.iter()
                        .find(|r| r.get("name").and_then(|n| n.as_str()) == Some(a.name.as_str()))
                })
                .and_then(|r| r.get("description"))
                .and_then(|d| d.as_str());
            let required = a.required_permission.as_deref().unwrap_or("");
            json!({
                "name": a.name,
                "display_name": a.display_name.clone().filter(|d| !d.trim().is_empty()).unwrap_or_else(|| a.name.clone()),
                "description": description,
                "required_permission": a.required_permission,
                "allowed": caller.0.has(required),
            })
        })
        .collect()
}

/// A nav node without the children the caller may not see; `None` when the node
/// itself is not permitted.
fn filter_nav(node: &Value, caller: &Caller) -> Option<Value> {
    let permission = node
        .get("permission")
        .and_then(|p| p.as_str())
        .unwrap_or("");
    if !caller.0.has(permission) {
        return None;
    }
    let mut out = node.clone();
    if let Some(children) = node.get("children").and_then(|c| c.as_array()) {
        let kept: Vec<Value> = children
            .iter()
            .filter_map(|c| filter_nav(c, caller))
            .collect();
        if kept.is_empty() && node.get("href").is_none() {
            return None;
        }
        out["children"] = Value::Array(kept);
    }
    Some(out)
}

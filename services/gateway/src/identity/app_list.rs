//! `GET /api/apps`: the apps the caller may use, with the composed menu.

use super::*;

/// An action an app declares, as the caller sees it.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ActionView {
    name: String,
    display_name: String,
    description: Option<String>,
    required_permission: Option<String>,
    /// Whether the caller may subscribe to it (it holds the app's permission, since the
    /// app is listed, and the action's).
    allowed: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct AppView {
    app_name: String,
    display_name: String,
    description: Option<String>,
    version: String,
    href: String,
    actions: Vec<ActionView>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct AppListing {
    apps: Vec<AppView>,
    /// Menu nodes `{id, label, href, permission?, children?}` as the manifests give
    /// them, without those the caller may not see.
    #[schema(value_type = Vec<Object>)]
    nav: Vec<Value>,
}

#[utoipa::path(
    get,
    path = "/api/apps",
    tag = "apps",
    responses(
        (status = 200, description = "The apps the caller may use, with their declared actions, and the admin menu filtered by the caller's permissions", body = AppListing),
        (status = 401, description = "No valid credential", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn my_apps(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Json<AppListing> {
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
        apps.push(AppView {
            app_name: name.clone(),
            display_name: entry
                .manifest
                .display_name
                .clone()
                .unwrap_or_else(|| name.clone()),
            description: entry.manifest.description.clone(),
            version: entry.version.clone(),
            href: format!("/apps/{name}/"),
            actions: app_actions(&entry.manifest.actions, &entry.raw_manifest, &caller),
        });
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
    Json(AppListing { apps, nav })
}

/// The actions an app declares, as `GET /api/apps` lists them: `{name, display_name,
/// description, required_permission, allowed}`, `allowed` telling whether the caller
/// holds the action's permission (and so may subscribe to it). The description comes
/// from the raw manifest (the runtime view does not keep it).
fn app_actions(
    actions: &[nr_contracts::manifest::ActionDecl],
    raw: &Value,
    caller: &Caller,
) -> Vec<ActionView> {
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
                .and_then(|d| d.as_str())
                .map(str::to_owned);
            let required = a.required_permission.as_deref().unwrap_or("");
            ActionView {
                name: a.name.clone(),
                display_name: a
                    .display_name
                    .clone()
                    .filter(|d| !d.trim().is_empty())
                    .unwrap_or_else(|| a.name.clone()),
                description,
                required_permission: a.required_permission.clone(),
                allowed: caller.0.has(required),
            }
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

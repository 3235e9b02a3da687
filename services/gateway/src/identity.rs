//! Login and logout, the RBAC admin API, notification subscriptions and the caller's
//! app list. Every change is an event on `rbac.log`; a handler answers once the
//! registry has applied it, so the caller reads its own write.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use nr_auth::{perms, ADMIN_ROLE};
use nr_contracts::events::{RbacChange, RBAC_CHANGED};
use nr_contracts::{subjects, Envelope};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::auth::{Caller, SESSION_COOKIE};
use crate::error::{ApiError, ErrorBody};
use crate::AppState;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/auth/login", post(login))
        .route("/api/auth/logout", post(logout))
        .route("/api/auth/me", get(me))
        .route("/api/apps", get(my_apps))
        .route("/api/notify/subscribe", post(subscribe))
        .route("/api/notify/unsubscribe", post(unsubscribe))
        .route("/api/notify/subscriptions", get(subscriptions))
        .route("/admin/api/users", get(list_users).post(create_user))
        .route("/admin/api/users/{id}", axum::routing::patch(update_user))
        .route("/admin/api/users/{id}/roles", put(set_roles))
        .route("/admin/api/roles", get(list_roles).post(create_role))
        .route("/admin/api/roles/{name}", delete(delete_role))
        .route("/admin/api/roles/{name}/permissions", post(grant))
        .route(
            "/admin/api/roles/{name}/permissions/{permission}",
            delete(revoke),
        )
        .route("/admin/api/permissions", get(list_permissions))
        .route("/admin/api/tokens", get(list_tokens).post(create_token))
        .route("/admin/api/tokens/{id}", delete(revoke_token))
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(anyhow::anyhow!("{e}"))
}

impl AppState {
    /// Appends an RBAC change and waits until the projection has applied it.
    pub(crate) async fn rbac_change(&self, change: RbacChange) -> Result<u64, ApiError> {
        let event = Envelope::new(RBAC_CHANGED, &self.node, change);
        let seq = nr_infra::bus::publish_event(&self.js, subjects::RBAC_LOG, &event, None)
            .await
            .map_err(internal)?;
        if !self.rbac.wait_applied(seq, Duration::from_secs(10)).await {
            return Err(ApiError::Unavailable(
                "the change was recorded but the registry has not applied it yet; is the registry running?".into(),
            ));
        }
        Ok(seq)
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct Login {
    username: String,
    password: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Session {
    /// A bearer token (also set as the `nr_session` cookie).
    token: String,
    #[schema(format = DateTime)]
    expires_at: String,
    /// `{id, username, roles}`.
    #[schema(value_type = Object)]
    user: Value,
}

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn session_cookie(state: &AppState, value: &str, max_age: i64) -> Result<HeaderValue, ApiError> {
    let secure = if state.auth_args.cookie_secure {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .map_err(internal)
}

#[utoipa::path(
    post,
    path = "/api/auth/login",
    tag = "auth",
    request_body = Login,
    responses(
        (status = 200, description = "Logged in; the token is also set as the HttpOnly `nr_session` cookie", body = Session),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Invalid username or password", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody),
        (status = 422, description = "Missing or mistyped fields", body = ErrorBody),
    ),
    security(())
)]
pub(crate) async fn login(
    State(state): State<Arc<AppState>>,
    Json(body): Json<Login>,
) -> Result<Response, ApiError> {
    let refused = || ApiError::Unauthorized("invalid username or password".into());
    if body.username.is_empty() || body.username.len() > 256 || body.username.contains('\0') {
        return Err(refused());
    }
    let creds = state
        .rbac
        .credentials(&body.username)
        .await
        .map_err(crate::auth::to_api)?;
    let Some((id, hash, disabled)) = creds else {
        // Same work as a real check, so timing does not tell which usernames exist.
        let _ = nr_auth::password::verify(&body.password, "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$ZmFrZWZha2VmYWtlZmFrZWZha2VmYWtlZmFrZWZha2U");
        return Err(refused());
    };
    if disabled || !nr_auth::password::verify(&body.password, &hash) {
        return Err(refused());
    }
    let user = state
        .rbac
        .user(&id)
        .await
        .map_err(crate::auth::to_api)?
        .ok_or_else(refused)?;
    let (token, claims) = state
        .jwt
        .issue(&id, &user.username, user.roles.clone())
        .map_err(internal)?;
    let max_age = claims.exp - claims.iat;
    let cookie = session_cookie(&state, &token, max_age)?;
    let body = Session {
        token,
        expires_at: rfc3339(claims.exp),
        user: json!({"id": id, "username": user.username, "roles": user.roles}),
    };
    Ok(([(header::SET_COOKIE, cookie)], Json(body)).into_response())
}

#[utoipa::path(
    post,
    path = "/api/auth/logout",
    tag = "auth",
    responses(
        (status = 200, description = "The session is revoked and the cookie cleared", body = Object),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 503, description = "The registry has not applied the change (is it running?)", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn logout(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Response, ApiError> {
    if let (Some(jti), Some(exp)) = (caller.0.jti.clone(), caller.0.exp) {
        state
            .rbac_change(RbacChange::SessionRevoked {
                jti,
                expires_at: rfc3339(exp),
            })
            .await?;
    }
    let cookie = session_cookie(&state, "", 0)?;
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(json!({"logged_out": true})),
    )
        .into_response())
}

#[utoipa::path(
    get,
    path = "/api/auth/me",
    tag = "auth",
    responses(
        (status = 200, description = "`{id, username, roles, permissions, admin}` of the caller", body = Object),
        (status = 401, description = "No valid credential", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn me(caller: Caller) -> Json<Value> {
    let p = caller.0;
    let mut permissions: Vec<&String> = p.permissions().iter().collect();
    permissions.sort();
    Json(json!({
        "id": p.sub,
        "username": p.name,
        "roles": p.roles,
        "permissions": permissions,
        "admin": p.is_admin(),
    }))
}

// ── Apps the caller may use, with the composed menu ─────────────────────────────

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

// ── Subscriptions ─────────────────────────────────────────────────────────────

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct ActionRef {
    app_name: String,
    action_name: String,
}

#[utoipa::path(
    post,
    path = "/api/notify/subscribe",
    tag = "notify",
    request_body = ActionRef,
    responses(
        (status = 200, description = "Subscribed", body = Object),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "The action's `required_permission` is missing", body = ErrorBody),
        (status = 404, description = "No such app or action", body = ErrorBody),
        (status = 422, description = "Missing or mistyped fields", body = ErrorBody),
        (status = 503, description = "The registry has not applied the change (is it running?)", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn subscribe(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Json(body): Json<ActionRef>,
) -> Result<Json<Value>, ApiError> {
    let entry = state
        .apps
        .get(&body.app_name)
        .ok_or_else(|| ApiError::NotFound(format!("app '{}' is not deployed", body.app_name)))?;
    let action = entry
        .manifest
        .actions
        .iter()
        .find(|a| a.name == body.action_name)
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "app '{}' declares no action '{}'",
                body.app_name, body.action_name
            ))
        })?;
    caller.require(action.required_permission.as_deref().unwrap_or(""))?;
    state
        .rbac_change(RbacChange::Subscribed {
            user_id: caller.0.sub.clone(),
            app_name: body.app_name.clone(),
            action_name: body.action_name.clone(),
        })
        .await?;
    Ok(Json(
        json!({"subscribed": true, "app_name": body.app_name, "action_name": body.action_name}),
    ))
}

#[utoipa::path(
    post,
    path = "/api/notify/unsubscribe",
    tag = "notify",
    request_body = ActionRef,
    responses(
        (status = 200, description = "Unsubscribed (also when there was no subscription)", body = Object),
        (status = 400, description = "Malformed JSON or names", body = ErrorBody),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 422, description = "Missing or mistyped fields", body = ErrorBody),
        (status = 503, description = "The registry has not applied the change (is it running?)", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn unsubscribe(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Json(body): Json<ActionRef>,
) -> Result<Json<Value>, ApiError> {
    if !crate::jobs::is_app_name(&body.app_name) || !crate::jobs::is_app_name(&body.action_name) {
        return Err(ApiError::BadRequest(
            "app_name and action_name must be names of letters, digits, _ and - (at most 64)"
                .into(),
        ));
    }
    state
        .rbac_change(RbacChange::Unsubscribed {
            user_id: caller.0.sub.clone(),
            app_name: body.app_name.clone(),
            action_name: body.action_name.clone(),
        })
        .await?;
    Ok(Json(
        json!({"subscribed": false, "app_name": body.app_name, "action_name": body.action_name}),
    ))
}

#[utoipa::path(
    get,
    path = "/api/notify/subscriptions",
    tag = "notify",
    responses(
        (status = 200, description = "`{subscriptions: [{app_name, action_name, created_at}]}`", body = Object),
        (status = 401, description = "No valid credential", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn subscriptions(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let rows: Vec<(String, String, time::OffsetDateTime)> = sqlx::query_as(
        "SELECT app_name, action_name, created_at FROM noderouter_core.subscriptions \
         WHERE user_id = $1 ORDER BY app_name, action_name",
    )
    .bind(&caller.0.sub)
    .fetch_all(&state.db)
    .await
    .map_err(internal)?;
    let list: Vec<Value> = rows
        .into_iter()
        .map(|(a, n, t)| json!({"app_name": a, "action_name": n, "created_at": rfc3339(t.unix_timestamp())}))
        .collect();
    Ok(Json(json!({"subscriptions": list})))
}

// ── Users ─────────────────────────────────────────────────────────────────────

#[utoipa::path(
    get,
    path = "/admin/api/users",
    tag = "admin",
    responses(
        (status = 200, description = "`{users: [{id, username, disabled, roles}]}`", body = Object),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "The `rbac:manage` permission is missing", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn list_users(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require(perms::RBAC_MANAGE)?;
    let rows: Vec<(String, String, bool, Vec<String>)> = sqlx::query_as(
        "SELECT u.id, u.username, u.disabled, COALESCE(array_agg(r.role ORDER BY r.role) FILTER (WHERE r.role IS NOT NULL), '{}') \
         FROM noderouter_core.users u LEFT JOIN noderouter_core.user_roles r ON r.user_id = u.id \
         GROUP BY u.id ORDER BY u.username",
    )
    .fetch_all(&state.db)
    .await
    .map_err(internal)?;
    let users: Vec<Value> = rows
        .into_iter()
        .map(|(id, username, disabled, roles)| json!({"id": id, "username": username, "disabled": disabled, "roles": roles}))
        .collect();
    Ok(Json(json!({"users": users})))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct NewUser {
    username: String,
    password: String,
    #[serde(default)]
    roles: Vec<String>,
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.@".contains(&b))
}

/// A user id as this gateway makes them (a UUID), or at least something that could be one.
fn plausible_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && !id.chars().any(char::is_control)
}

/// 400 when a free-text field cannot be stored (NUL) or is too long.
fn check_text(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.contains('\0') {
        return Err(ApiError::BadRequest(format!(
            "{field} must not contain NUL characters"
        )));
    }
    if value.chars().count() > max {
        return Err(ApiError::BadRequest(format!(
            "{field} must have at most {max} characters"
        )));
    }
    Ok(())
}

async fn check_roles_exist(state: &AppState, roles: &[String]) -> Result<(), ApiError> {
    if let Some(bad) = roles.iter().find(|r| !valid_name(r)) {
        return Err(ApiError::BadRequest(format!("role {bad:?} does not exist")));
    }
    let known: Vec<(String,)> =
        sqlx::query_as("SELECT name FROM noderouter_core.roles WHERE name = ANY($1)")
            .bind(roles)
            .fetch_all(&state.db)
            .await
            .map_err(internal)?;
    if let Some(missing) = roles.iter().find(|r| !known.iter().any(|k| &k.0 == *r)) {
        return Err(ApiError::BadRequest(format!(
            "role '{missing}' does not exist"
        )));
    }
    Ok(())
}

#[utoipa::path(
    post,
    path = "/admin/api/users",
    tag = "admin",
    request_body = NewUser,
    responses(
        (status = 201, description = "`{id, username, roles}` of the new user", body = Object),
        (status = 400, description = "A bad username or password, or an unknown role", body = ErrorBody),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "The `rbac:manage` permission is missing", body = ErrorBody),
        (status = 409, description = "The username is taken", body = ErrorBody),
        (status = 422, description = "Missing or mistyped fields", body = ErrorBody),
        (status = 503, description = "The registry has not applied the change (is it running?)", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn create_user(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Json(body): Json<NewUser>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(perms::RBAC_MANAGE)?;
    if !valid_name(&body.username) {
        return Err(ApiError::BadRequest(
            "username must be 1-64 characters of letters, digits, _ - . @".into(),
        ));
    }
    if body.password.chars().count() < 8 {
        return Err(ApiError::BadRequest(
            "password must have at least 8 characters".into(),
        ));
    }
    if state
        .rbac
        .credentials(&body.username)
        .await
        .map_err(crate::auth::to_api)?
        .is_some()
    {
        return Err(ApiError::Conflict(format!(
            "user '{}' already exists",
            body.username
        )));
    }
    check_roles_exist(&state, &body.roles).await?;
    let id = uuid::Uuid::now_v7().to_string();
    let password_hash = nr_auth::password::hash(&body.password).map_err(ApiError::Internal)?;
    state
        .rbac_change(RbacChange::UserCreated {
            id: id.clone(),
            username: body.username.clone(),
            password_hash,
        })
        .await?;
    if !body.roles.is_empty() {
        state
            .rbac_change(RbacChange::UserRolesSet {
                id: id.clone(),
                roles: body.roles.clone(),
            })
            .await?;
    }
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": id, "username": body.username, "roles": body.roles})),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct UserPatch {
    #[serde(default)]
    disabled: Option<bool>,
    #[serde(default)]
    password: Option<String>,
}

async fn existing_user(state: &AppState, id: &str) -> Result<(), ApiError> {
    if !plausible_id(id) {
        return Err(ApiError::NotFound(format!("user {id:?} not found")));
    }
    state
        .rbac
        .user(id)
        .await
        .map_err(crate::auth::to_api)?
        .map(|_| ())
        .ok_or_else(|| ApiError::NotFound(format!("user '{id}' not found")))
}

#[utoipa::path(
    patch,
    path = "/admin/api/users/{id}",
    tag = "admin",
    params(("id" = String, Path, description = "The user's id")),
    request_body = UserPatch,
    responses(
        (status = 200, description = "`{id, updated: true}`", body = Object),
        (status = 400, description = "A password shorter than 8 characters", body = ErrorBody),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "The `rbac:manage` permission is missing", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 422, description = "Mistyped fields", body = ErrorBody),
        (status = 503, description = "The registry has not applied the change (is it running?)", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn update_user(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<UserPatch>,
) -> Result<Json<Value>, ApiError> {
    caller.require(perms::RBAC_MANAGE)?;
    existing_user(&state, &id).await?;
    if let Some(password) = body.password {
        if password.chars().count() < 8 {
            return Err(ApiError::BadRequest(
                "password must have at least 8 characters".into(),
            ));
        }
        let password_hash = nr_auth::password::hash(&password).map_err(ApiError::Internal)?;
        state
            .rbac_change(RbacChange::PasswordSet {
                id: id.clone(),
                password_hash,
            })
            .await?;
    }
    if let Some(disabled) = body.disabled {
        state
            .rbac_change(RbacChange::UserDisabled {
                id: id.clone(),
                disabled,
            })
            .await?;
    }
    Ok(Json(json!({"id": id, "updated": true})))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct Roles {
    roles: Vec<String>,
}

#[utoipa::path(
    put,
    path = "/admin/api/users/{id}/roles",
    tag = "admin",
    params(("id" = String, Path, description = "The user's id")),
    request_body = Roles,
    responses(
        (status = 200, description = "`{id, roles}`", body = Object),
        (status = 400, description = "An unknown role", body = ErrorBody),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "The `rbac:manage` permission is missing", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 422, description = "Missing or mistyped fields", body = ErrorBody),
        (status = 503, description = "The registry has not applied the change (is it running?)", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn set_roles(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<Roles>,
) -> Result<Json<Value>, ApiError> {
    caller.require(perms::RBAC_MANAGE)?;
    existing_user(&state, &id).await?;
    check_roles_exist(&state, &body.roles).await?;
    state
        .rbac_change(RbacChange::UserRolesSet {
            id: id.clone(),
            roles: body.roles.clone(),
        })
        .await?;
    Ok(Json(json!({"id": id, "roles": body.roles})))
}

// ── Roles and grants ──────────────────────────────────────────────────────────

#[utoipa::path(
    get,
    path = "/admin/api/roles",
    tag = "admin",
    responses(
        (status = 200, description = "`{roles: [{name, description, builtin, permissions}]}`", body = Object),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "The `rbac:manage` permission is missing", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn list_roles(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require(perms::RBAC_MANAGE)?;
    let rows: Vec<(String, String, bool, Vec<String>)> = sqlx::query_as(
        "SELECT r.name, r.description, r.builtin, COALESCE(array_agg(p.permission ORDER BY p.permission) FILTER (WHERE p.permission IS NOT NULL), '{}') \
         FROM noderouter_core.roles r LEFT JOIN noderouter_core.role_permissions p ON p.role = r.name \
         GROUP BY r.name ORDER BY r.name",
    )
    .fetch_all(&state.db)
    .await
    .map_err(internal)?;
    let roles: Vec<Value> = rows
        .into_iter()
        .map(|(name, description, builtin, permissions)| {
            let permissions = if name == ADMIN_ROLE { vec!["*".to_owned()] } else { permissions };
            json!({"name": name, "description": description, "builtin": builtin, "permissions": permissions})
        })
        .collect();
    Ok(Json(json!({"roles": roles})))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct NewRole {
    name: String,
    #[serde(default)]
    description: String,
}

#[utoipa::path(
    post,
    path = "/admin/api/roles",
    tag = "admin",
    request_body = NewRole,
    responses(
        (status = 201, description = "`{name, description}`", body = Object),
        (status = 400, description = "A bad role name or description", body = ErrorBody),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "The `rbac:manage` permission is missing", body = ErrorBody),
        (status = 422, description = "Missing or mistyped fields", body = ErrorBody),
        (status = 503, description = "The registry has not applied the change (is it running?)", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn create_role(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Json(body): Json<NewRole>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(perms::RBAC_MANAGE)?;
    if !valid_name(&body.name) {
        return Err(ApiError::BadRequest(
            "role name must be 1-64 characters of letters, digits, _ - . @".into(),
        ));
    }
    check_text("description", &body.description, 500)?;
    state
        .rbac_change(RbacChange::RoleCreated {
            name: body.name.clone(),
            description: body.description.clone(),
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"name": body.name, "description": body.description})),
    ))
}

#[utoipa::path(
    delete,
    path = "/admin/api/roles/{name}",
    tag = "admin",
    params(("name" = String, Path, description = "The role's name")),
    responses(
        (status = 200, description = "`{deleted: name}`", body = Object),
        (status = 400, description = "The admin role cannot be deleted", body = ErrorBody),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "The `rbac:manage` permission is missing", body = ErrorBody),
        (status = 404, description = "No such role", body = ErrorBody),
        (status = 503, description = "The registry has not applied the change (is it running?)", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn delete_role(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(perms::RBAC_MANAGE)?;
    if name == ADMIN_ROLE {
        return Err(ApiError::BadRequest(
            "the admin role cannot be deleted".into(),
        ));
    }
    check_roles_exist(&state, std::slice::from_ref(&name))
        .await
        .map_err(|_| ApiError::NotFound(format!("role '{name}' not found")))?;
    state
        .rbac_change(RbacChange::RoleDeleted { name: name.clone() })
        .await?;
    Ok(Json(json!({"deleted": name})))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct Grant {
    permission: String,
}

fn valid_permission(p: &str) -> bool {
    match p.split_once(':') {
        Some((r, a)) => valid_name(r) && valid_name(a) && !a.contains(':'),
        None => false,
    }
}

#[utoipa::path(
    post,
    path = "/admin/api/roles/{name}/permissions",
    tag = "admin",
    params(("name" = String, Path, description = "The role's name")),
    request_body = Grant,
    responses(
        (status = 200, description = "`{role, granted}`", body = Object),
        (status = 400, description = "A permission that is not `<resource>:<action>`", body = ErrorBody),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "The `rbac:manage` permission is missing", body = ErrorBody),
        (status = 404, description = "No such role", body = ErrorBody),
        (status = 422, description = "Missing or mistyped fields", body = ErrorBody),
        (status = 503, description = "The registry has not applied the change (is it running?)", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn grant(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(role): Path<String>,
    Json(body): Json<Grant>,
) -> Result<Json<Value>, ApiError> {
    caller.require(perms::RBAC_MANAGE)?;
    if !valid_permission(&body.permission) {
        return Err(ApiError::BadRequest(format!(
            "permission {:?} must be a <resource>:<action> token such as sales:access",
            body.permission
        )));
    }
    check_roles_exist(&state, std::slice::from_ref(&role))
        .await
        .map_err(|_| ApiError::NotFound(format!("role '{role}' not found")))?;
    state
        .rbac_change(RbacChange::PermissionGranted {
            role: role.clone(),
            permission: body.permission.clone(),
        })
        .await?;
    Ok(Json(json!({"role": role, "granted": body.permission})))
}

#[utoipa::path(
    delete,
    path = "/admin/api/roles/{name}/permissions/{permission}",
    tag = "admin",
    params(
        ("name" = String, Path, description = "The role's name"),
        ("permission" = String, Path, description = "A `<resource>:<action>` permission"),
    ),
    responses(
        (status = 200, description = "`{role, revoked}` (also when the role did not hold it)", body = Object),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "The `rbac:manage` permission is missing", body = ErrorBody),
        (status = 404, description = "No such role, or not a permission", body = ErrorBody),
        (status = 503, description = "The registry has not applied the change (is it running?)", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn revoke(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((role, permission)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require(perms::RBAC_MANAGE)?;
    if !valid_name(&role) {
        return Err(ApiError::NotFound(format!("role {role:?} not found")));
    }
    if !valid_permission(&permission) {
        return Err(ApiError::NotFound(format!(
            "{permission:?} is not a permission (<resource>:<action>)"
        )));
    }
    state
        .rbac_change(RbacChange::PermissionRevoked {
            role: role.clone(),
            permission: permission.clone(),
        })
        .await?;
    Ok(Json(json!({"role": role, "revoked": permission})))
}

#[utoipa::path(
    get,
    path = "/admin/api/permissions",
    tag = "admin",
    responses(
        (status = 200, description = "`{permissions: [{name, description, source}]}`: the catalogue", body = Object),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "The `rbac:manage` permission is missing", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn list_permissions(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require(perms::RBAC_MANAGE)?;
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT name, description, source FROM noderouter_core.permissions ORDER BY name",
    )
    .fetch_all(&state.db)
    .await
    .map_err(internal)?;
    let list: Vec<Value> = rows
        .into_iter()
        .map(|(n, d, s)| json!({"name": n, "description": d, "source": s}))
        .collect();
    Ok(Json(json!({"permissions": list})))
}

// ── API tokens ────────────────────────────────────────────────────────────────

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct NewToken {
    name: String,
    roles: Vec<String>,
    #[serde(default)]
    expires_in_s: Option<u64>,
}

type Stamp = time::OffsetDateTime;
type TokenListRow = (
    String,
    String,
    String,
    Vec<String>,
    Stamp,
    Option<Stamp>,
    Option<Stamp>,
);

#[utoipa::path(
    get,
    path = "/admin/api/tokens",
    tag = "admin",
    responses(
        (status = 200, description = "`{tokens: [{id, name, owner, roles, created_at, expires_at, revoked}]}`", body = Object),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "The `rbac:manage` permission is missing", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn list_tokens(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require(perms::RBAC_MANAGE)?;
    let rows: Vec<TokenListRow> =
        sqlx::query_as(
            "SELECT id, name, owner, roles, created_at, expires_at, revoked_at FROM noderouter_core.api_tokens ORDER BY created_at",
        )
        .fetch_all(&state.db)
        .await
        .map_err(internal)?;
    let list: Vec<Value> = rows
        .into_iter()
        .map(|(id, name, owner, roles, c, e, r)| {
            json!({"id": id, "name": name, "owner": owner, "roles": roles,
                   "created_at": rfc3339(c.unix_timestamp()),
                   "expires_at": e.map(|t| rfc3339(t.unix_timestamp())),
                   "revoked": r.is_some()})
        })
        .collect();
    Ok(Json(json!({"tokens": list})))
}

#[utoipa::path(
    post,
    path = "/admin/api/tokens",
    tag = "admin",
    request_body = NewToken,
    responses(
        (status = 201, description = "`{id, name, roles, expires_at, token}`: the token is shown once", body = Object),
        (status = 400, description = "A bad name or an unknown role", body = ErrorBody),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "`rbac:manage` is missing, or a role the caller does not hold", body = ErrorBody),
        (status = 422, description = "Missing or mistyped fields", body = ErrorBody),
        (status = 503, description = "The registry has not applied the change (is it running?)", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn create_token(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Json(body): Json<NewToken>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(perms::RBAC_MANAGE)?;
    if body.name.trim().is_empty() || body.name.len() > 100 {
        return Err(ApiError::BadRequest(
            "token name must be 1-100 characters".into(),
        ));
    }
    check_text("name", &body.name, 100)?;
    check_roles_exist(&state, &body.roles).await?;
    if !caller.0.is_admin() {
        if let Some(r) = body.roles.iter().find(|r| !caller.0.roles.contains(r)) {
            return Err(ApiError::Forbidden(format!(
                "you cannot give a token role '{r}', which you do not hold"
            )));
        }
    }
    let id = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
    let secret = nr_auth::password::random_secret();
    let expires_at = body.expires_in_s.map(|s| {
        rfc3339(time::OffsetDateTime::now_utc().unix_timestamp() + s.min(10 * 365 * 86400) as i64)
    });
    state
        .rbac_change(RbacChange::TokenIssued {
            id: id.clone(),
            name: body.name.clone(),
            owner: caller.0.sub.clone(),
            roles: body.roles.clone(),
            secret_hash: nr_auth::rbac::hash_secret(&secret),
            expires_at: expires_at.clone(),
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": id,
            "name": body.name,
            "roles": body.roles,
            "expires_at": expires_at,
            "token": format!("{}{id}.{secret}", nr_auth::rbac::TOKEN_PREFIX),
            "note": "this token is shown once; store it now",
        })),
    ))
}

#[utoipa::path(
    delete,
    path = "/admin/api/tokens/{id}",
    tag = "admin",
    params(("id" = String, Path, description = "The token's id")),
    responses(
        (status = 200, description = "`{id, revoked: true}`", body = Object),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "The `rbac:manage` permission is missing", body = ErrorBody),
        (status = 404, description = "Not a token id", body = ErrorBody),
        (status = 503, description = "The registry has not applied the change (is it running?)", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn revoke_token(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(perms::RBAC_MANAGE)?;
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ApiError::NotFound(format!("token {id:?} not found")));
    }
    state
        .rbac_change(RbacChange::TokenRevoked { id: id.clone() })
        .await?;
    Ok(Json(json!({"id": id, "revoked": true})))
}

/// Creates the first admin when there is no user at all. Returns the generated password
/// when one was made (to be shown once).
pub(crate) async fn bootstrap_admin(state: &AppState) -> anyhow::Result<Option<String>> {
    let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM noderouter_core.users")
        .fetch_one(&state.db)
        .await?;
    if count > 0 {
        return Ok(None);
    }
    let (password, generated) = match &state.auth_args.admin_password {
        Some(p) if !p.is_empty() => (p.clone(), false),
        _ => (nr_auth::password::random_secret()[..20].to_owned(), true),
    };
    let change = RbacChange::Bootstrap {
        id: uuid::Uuid::now_v7().to_string(),
        username: "admin".into(),
        password_hash: nr_auth::password::hash(&password)?,
    };
    let event = Envelope::new(RBAC_CHANGED, &state.node, change);
    match nr_infra::bus::publish_event(&state.js, subjects::RBAC_BOOTSTRAP, &event, Some(0)).await {
        Ok(seq) => {
            if !state.rbac.wait_applied(seq, Duration::from_secs(10)).await {
                tracing::warn!("the admin user is not projected yet; is the registry running?");
            }
            Ok(generated.then_some(password))
        }
        // Another gateway created the admin first.
        Err(nr_infra::bus::PublishFailure::Conflict) => Ok(None),
        Err(nr_infra::bus::PublishFailure::Other(e)) => Err(e),
    }
}

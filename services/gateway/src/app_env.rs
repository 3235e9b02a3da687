//! Admin API for an app's variables and secrets (`/admin/api/apps/{app}/env`), gated by
//! `apps:env`. Storage and sealing live in `nr_infra::appenv`; each change is recorded as
//! an `app.env.<app>` event (who changed which name, never the value), on which runners
//! reload the app. Values are never logged; secrets are never returned.

use std::sync::Arc;

use axum::extract::{Path as UrlPath, State};
use axum::routing::{delete, get};
use axum::{Json, Router};
use nr_auth::perms;
use nr_contracts::events::{AppEnvChanged, EnvChange, APP_ENV_CHANGED};
use nr_contracts::{subjects, Envelope};
use nr_infra::appenv::{self, EnvEntry, EnvError, SetEnv};
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::AppState;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/admin/api/apps/{app}/env",
            get(list_env).put(set_env).post(set_env),
        )
        .route("/admin/api/apps/{app}/env/{name}", delete(unset_env))
}

/// The body of a set.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Only describes the JSON that `set_env` reads field by field.
pub(crate) struct EnvSetBody {
    /// `^[A-Z_][A-Z0-9_]{0,127}$`, not one of the platform's (`DATABASE_URL`, `PATH`,
    /// `HOME`, `TMPDIR`, `LANG`, `PYTHON*`, `NR_*`, `LD_*`).
    #[schema(example = "PAYMENT_API_KEY")]
    name: String,
    /// At most 32 KiB of UTF-8, no NUL.
    value: String,
    /// A secret is sealed at rest and never returned; default false.
    #[schema(default = false)]
    secret: Option<bool>,
}

/// 422 naming the field, the way deploy names what it refuses.
fn unprocessable(field: &str, error: String) -> ApiError {
    ApiError::Refused {
        status: 422,
        error,
        details: json!({ "field": field }),
        warnings: Vec::new(),
    }
}

fn env_error(e: EnvError) -> ApiError {
    match e {
        EnvError::NoKey => ApiError::Unavailable(e.to_string()),
        EnvError::Internal(e) => ApiError::Internal(e),
        other => match other.field() {
            Some(field) => unprocessable(field, other.to_string()),
            None => ApiError::Internal(anyhow::anyhow!("{other}")),
        },
    }
}

/// 404 for a path segment no app can be named.
fn check_app(app: &str) -> Result<(), ApiError> {
    if crate::jobs::is_app_name(app) {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!(
            "{app:?} is not an app name (letters, digits, _ and -, at most 64)"
        )))
    }
}

/// Records the change on `app.env.<app>`; runners reload the app when they see it.
async fn publish(
    state: &AppState,
    caller: &Caller,
    app: &str,
    name: &str,
    change: EnvChange,
    secret: bool,
) -> Result<u64, ApiError> {
    let event = Envelope::new(
        APP_ENV_CHANGED,
        &state.node,
        AppEnvChanged {
            app_name: app.to_owned(),
            name: name.to_owned(),
            change,
            secret,
            actor: caller.0.name.clone(),
            actor_id: caller.0.sub.clone(),
        },
    );
    nr_infra::bus::publish_event(&state.js, &subjects::app_env(app), &event, None)
        .await
        .map_err(|e| {
            ApiError::Unavailable(format!(
                "the change of {name} was not made: its event could not be stored ({e}); try again"
            ))
        })
}

/// `GET /admin/api/apps/{app}/env`: every name, with the values of variables only.
#[utoipa::path(
    get,
    path = "/admin/api/apps/{app}/env",
    tag = "admin",
    params(("app" = String, Path, description = "The app's name")),
    responses(
        (status = 200, description = "`{app_name, env: [{name, secret, value, updated_at, updated_by}]}`; `value` is null for a secret", body = Object),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "The `apps:env` permission is missing", body = ErrorBody),
        (status = 404, description = "Not an app name", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn list_env(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    UrlPath(app): UrlPath<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(perms::APPS_ENV)?;
    check_app(&app)?;
    let env: Vec<EnvEntry> = appenv::list(&state.db, &app).await.map_err(env_error)?;
    Ok(Json(json!({ "app_name": app, "env": env })))
}

fn field<'a>(body: &'a Value, name: &str) -> Result<&'a str, ApiError> {
    match body.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(unprocessable(name, format!("{name}: must be a string"))),
        None => Err(unprocessable(name, format!("{name}: is required"))),
    }
}

/// `PUT` (or `POST`) `/admin/api/apps/{app}/env` with `{name, value, secret}`: sets a
/// variable or a secret; the app's runners reload it.
#[utoipa::path(
    method(put, post),
    path = "/admin/api/apps/{app}/env",
    tag = "admin",
    params(("app" = String, Path, description = "The app's name")),
    request_body = EnvSetBody,
    responses(
        (status = 200, description = "Set: `{app_name, name, secret, change: \"set\", seq, warnings}` (the value is not echoed); answered once every live runner has reloaded the app (15 s at most): `warnings` names each runner whose reload failed, and why (it serves on with the previous variables)", body = Object),
        (status = 400, description = "The body is not a JSON object", body = ErrorBody),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "The `apps:env` permission is missing", body = ErrorBody),
        (status = 404, description = "Not an app name", body = ErrorBody),
        (status = 415, description = "A body declared as something other than JSON", body = ErrorBody),
        (status = 422, description = "A bad or reserved `name`, a `value` over 32 KiB or with NUL, a `secret` that is not a boolean; `details.field` names the field", body = ErrorBody),
        (status = 503, description = "A secret, and this gateway has no `NR_SECRETS_KEY`; or the change's event could not be stored (nothing changed)", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn set_env(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    UrlPath(app): UrlPath<String>,
    headers: axum::http::HeaderMap,
    body: bytes::Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require(perms::APPS_ENV)?;
    check_app(&app)?;
    crate::sync::check_content_type(&headers)?;
    let body: Value = serde_json::from_slice(&body)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| {
            ApiError::BadRequest(
                "the body must be a JSON object such as {\"name\": \"API_KEY\", \"value\": \"...\", \"secret\": true}".into(),
            )
        })?;
    let name = field(&body, "name")?;
    let value = field(&body, "value")?;
    let secret = match body.get("secret") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(unprocessable(
                "secret",
                "secret: must be true or false".into(),
            ))
        }
    };
    let actor = caller.0.name.clone();
    let set = SetEnv {
        app: &app,
        name,
        value,
        secret,
        actor: &actor,
    };
    // Refused before the lock is taken: a bad change never makes the runners wait.
    appenv::check_set(state.secrets.as_deref(), &set).map_err(env_error)?;
    // The row and its event land together: the change commits only once the event is
    // stored, and runners reading on that event wait for the commit.
    let mut change = appenv::begin(&state.db, &app).await.map_err(env_error)?;
    change
        .set(state.secrets.as_deref(), set)
        .await
        .map_err(env_error)?;
    let reloads = crate::env_reload::watch(&state, &app).await;
    let seq = publish(&state, &caller, &app, name, EnvChange::Set, secret).await?;
    change.commit().await.map_err(env_error)?;
    tracing::info!(app = %app, name, secret, actor = %actor, "app variable set");
    let warnings = crate::env_reload::wait(&state, reloads, seq).await;
    Ok(Json(json!({
        "app_name": app,
        "name": name,
        "secret": secret,
        "change": "set",
        "seq": seq,
        "warnings": warnings,
    })))
}

/// `DELETE /admin/api/apps/{app}/env/{name}`: removes a variable or secret; the app's
/// runners reload it.
#[utoipa::path(
    delete,
    path = "/admin/api/apps/{app}/env/{name}",
    tag = "admin",
    params(
        ("app" = String, Path, description = "The app's name"),
        ("name" = String, Path, description = "The variable's name"),
    ),
    responses(
        (status = 200, description = "Removed: `{app_name, name, secret, change: \"unset\", seq, warnings}`; `warnings` as for a set", body = Object),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "The `apps:env` permission is missing", body = ErrorBody),
        (status = 404, description = "The app has no such variable", body = ErrorBody),
        (status = 422, description = "Not a valid variable name; `details.field` is `name`", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn unset_env(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    UrlPath((app, name)): UrlPath<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require(perms::APPS_ENV)?;
    check_app(&app)?;
    appenv::check_name(&name).map_err(env_error)?;
    let mut change = appenv::begin(&state.db, &app).await.map_err(env_error)?;
    let Some(secret) = change.unset(&name).await.map_err(env_error)? else {
        return Err(ApiError::NotFound(format!(
            "app {app:?} has no variable named {name}"
        )));
    };
    let reloads = crate::env_reload::watch(&state, &app).await;
    let seq = publish(&state, &caller, &app, &name, EnvChange::Unset, secret).await?;
    change.commit().await.map_err(env_error)?;
    tracing::info!(app = %app, name = %name, secret, actor = %caller.0.name, "app variable unset");
    let warnings = crate::env_reload::wait(&state, reloads, seq).await;
    Ok(Json(json!({
        "app_name": app,
        "name": name,
        "secret": secret,
        "change": "unset",
        "seq": seq,
        "warnings": warnings,
    })))
}

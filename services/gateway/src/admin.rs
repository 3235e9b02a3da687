//! Admin API: deploy a bundle, list apps, list an app's versions, roll back, delete.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Multipart, Path as UrlPath, State};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use nr_contracts::requests::{
    AppList, AppListRequest, AppVersions, AppVersionsRequest, DeleteReply, DeleteReport,
    DeleteRequest, DeployReply, DeployReport, DeploySubmit, RollbackRequest,
};
use nr_contracts::{Rpc, RpcError};
use nr_infra::rpc::{self, CallError};
use object_store::path::Path;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::AppState;
use nr_auth::perms;

/// The admin API routes (`/admin/api/...`).
pub(crate) fn routes(bundle_limit: usize) -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/admin/api/apps/deploy",
            post(deploy)
                .layer(DefaultBodyLimit::max(bundle_limit + 64 * 1024))
                // An app may be named `deploy`; this static path shadows `{app}`.
                .delete(delete_app_named_deploy),
        )
        .route("/admin/api/apps", get(list_apps))
        .route("/admin/api/apps/{app}", delete(delete_app))
        .route("/admin/api/apps/{app}/versions", get(versions))
        .route("/admin/api/apps/{app}/rollback", post(rollback))
}

/// The multipart form of a deploy.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Only describes the upload that `deploy` reads.
pub(crate) struct DeployUpload {
    /// The bundle: a zip with `manifest.json` and `main.py`.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// `POST /admin/api/apps/deploy`, multipart field `file` holding the bundle zip.
#[utoipa::path(
    post,
    path = "/admin/api/apps/deploy",
    tag = "admin",
    request_body(content = DeployUpload, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "Deployed: the deploy report (app_name, version, rev, ...)", body = Object),
        (status = 400, description = "No `file` field, or a malformed multipart body", body = ErrorBody),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "The `apps:deploy` permission is missing", body = ErrorBody),
        (status = 413, description = "The bundle exceeds the upload limit", body = ErrorBody),
        (status = 422, description = "The bundle is refused; `details` lists the findings", body = ErrorBody),
        (status = 503, description = "The deploy service is not running", body = ErrorBody),
        (status = 504, description = "The deploy service did not answer in time", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn deploy(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    headers: axum::http::HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Json<DeployReport>, ApiError> {
    caller.require(perms::APPS_DEPLOY)?;
    let mut multipart = multipart.map_err(|e| {
        let sent = headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none");
        // A form whose boundary is unreadable, or no form at all: say which.
        let what = if sent.to_ascii_lowercase().starts_with("multipart/form-data") {
            e.to_string()
        } else {
            format!("this request's Content-Type is {sent}")
        };
        ApiError::UnsupportedMediaType(format!(
            "a bundle is uploaded as multipart/form-data with the zip in the field `file` \
             (curl -F file=@my_app.zip …, or `noderouter app deploy`): {what}"
        ))
    })?;
    let limit = state.config.max_bundle_bytes;
    let too_large = || {
        ApiError::PayloadTooLarge(format!(
            "the bundle exceeds the upload limit of {limit} bytes (NR_MAX_BUNDLE_BYTES, set by the operator): leave out what the app does not need (tests, data files, caches)"
        ))
    };
    let mut upload = None;
    loop {
        let field = multipart.next_field().await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                too_large()
            } else {
                ApiError::BadRequest(format!("malformed multipart body: {e}"))
            }
        })?;
        let Some(field) = field else { break };
        if field.name() != Some("file") {
            continue;
        }
        // The file's name says which app it is (deploy checks it against app_name).
        let Some(file_name) = field.file_name().map(str::to_owned) else {
            return Err(ApiError::BadRequest(
                "the field `file` carries no file name, so the deploy cannot tell which app it is for (curl's -F 'file=<my_app.zip' sends the bytes as text): send it as a file, curl -F file=@my_app.zip".into(),
            ));
        };
        let bytes = field.bytes().await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                too_large()
            } else {
                ApiError::BadRequest(format!("cannot read the uploaded file: {e}"))
            }
        })?;
        upload = Some((file_name, bytes));
        break;
    }
    let (file_name, bytes) = upload.ok_or_else(|| {
        ApiError::BadRequest(
            "no bundle: send the zip as multipart field 'file' (curl -F file=@my_app.zip)".into(),
        )
    })?;
    if bytes.len() > limit {
        return Err(too_large());
    }
    let staging_key = format!("staging/{}.zip", uuid::Uuid::now_v7());
    state
        .store
        .put(&Path::from(staging_key.as_str()), bytes.into())
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "cannot stage an upload in the object store");
            ApiError::Unavailable(
                "the object store is unavailable: the bundle could not be stored; try again later"
                    .into(),
            )
        })?;
    let req = DeploySubmit {
        staging_key,
        file_name,
        actor: Some(caller.0.name.clone()),
        actor_id: Some(caller.0.sub.clone()),
        deadline_ms: Some(deploy_timeout(&state).as_millis() as u64),
    };
    let DeployReply::Deployed(report) = ask(&state, &req, deploy_timeout(&state), DEPLOY).await?;
    // Serve the new revision from here on: wait until this gateway has seen it.
    serve_from(&state, &report.app_name, report.rev).await;
    Ok(Json(report))
}

/// 404 for a name no app can have, before asking another service about it.
fn check_app_name(app: &str) -> Result<(), ApiError> {
    if crate::jobs::is_app_name(app) {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!(
            "no app named {app:?} has been deployed"
        )))
    }
}

/// Who answers a request, as an error message names it.
const DEPLOY: &str = "the deploy service";
const REGISTRY: &str = "the registry";

/// How long a deploy, rollback or delete may take.
fn deploy_timeout(state: &AppState) -> Duration {
    Duration::from_secs_f64(state.config.deploy_timeout_s)
}

/// How long a registry lookup may take (the NATS client's default request timeout).
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends a typed request (`nr_infra::rpc::call`) and answers its failure the one way:
/// nobody serving is 503, no answer in time 504, and the service's error goes out with
/// its status.
async fn ask<R: Rpc>(
    state: &AppState,
    req: &R,
    timeout: Duration,
    service: &'static str,
) -> Result<R::Reply, ApiError> {
    rpc::call(&state.nats, req, timeout)
        .await
        .map_err(|e| match e {
            CallError::Unavailable { .. } => {
                ApiError::Unavailable(format!("{service} is not running"))
            }
            CallError::TimedOut { .. } => {
                ApiError::Timeout(format!("{service} did not answer in time"))
            }
            CallError::Refused { error, .. } => api_error(error),
            failed @ CallError::Failed { .. } => ApiError::Internal(anyhow::Error::from(failed)),
        })
}

/// A service's error as the API answers it: a 5xx other than 503 never shows its text; a refusal
/// keeps its status and findings; the others become the error of their status.
fn api_error(e: RpcError) -> ApiError {
    // A service that could not reach what it needs says so in words meant for the
    // caller (nothing internal), and the caller may retry.
    if e.status == 503 {
        return ApiError::Unavailable(e.error);
    }
    if e.status >= 500 {
        return ApiError::Internal(anyhow::Error::from(e));
    }
    match (e.code(), e.status) {
        ("refused", _) => ApiError::Refused {
            status: e.status,
            details: serde_json::to_value(&e.details).unwrap_or_default(),
            warnings: e.warnings,
            error: e.error,
        },
        (_, 400) => ApiError::BadRequest(e.error),
        (_, 404) => ApiError::NotFound(e.error),
        (_, 409) => ApiError::Conflict(e.error),
        (_, 413) => ApiError::PayloadTooLarge(e.error),
        _ => ApiError::Refused {
            status: e.status,
            details: serde_json::to_value(&e.details).unwrap_or_default(),
            warnings: e.warnings,
            error: e.error,
        },
    }
}

/// Waits until this gateway serves revision `rev`, so the caller's next request sees
/// the change.
async fn serve_from(state: &AppState, app: &str, rev: u64) {
    if !state.apps.wait_for(rev, Duration::from_secs(10)).await {
        tracing::warn!(app, rev, "gateway has not seen the new revision yet");
    }
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
pub(crate) struct RollbackBody {
    version: String,
    #[serde(default)]
    sha256: Option<String>,
}

/// `POST /admin/api/apps/{app}/rollback` with `{"version": "1.0.0"}` (and `sha256` to
/// pick one bundle of a version deployed twice): that version becomes current again.
#[utoipa::path(
    post,
    path = "/admin/api/apps/{app}/rollback",
    tag = "admin",
    params(("app" = String, Path, description = "The app's name")),
    request_body = RollbackBody,
    responses(
        (status = 200, description = "Rolled back: the deploy report of the version now current", body = Object),
        (status = 400, description = "The body is not `{\"version\": ...}`", body = ErrorBody),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "The `apps:deploy` permission is missing", body = ErrorBody),
        (status = 404, description = "No such app or version", body = ErrorBody),
        (status = 415, description = "A body declared as something other than JSON", body = ErrorBody),
        (status = 503, description = "The deploy service is not running", body = ErrorBody),
        (status = 504, description = "The deploy service did not answer in time", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn rollback(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    UrlPath(app): UrlPath<String>,
    headers: axum::http::HeaderMap,
    body: bytes::Bytes,
) -> Result<Json<DeployReport>, ApiError> {
    caller.require(perms::APPS_DEPLOY)?;
    check_app_name(&app)?;
    crate::sync::check_content_type(&headers)?;
    let body: RollbackBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "the body must be JSON such as {{\"version\": \"1.0.0\"}}: {e}"
        ))
    })?;
    if body.version.is_empty()
        || body.version.len() > 128
        || body.version.contains('\0')
        || body
            .sha256
            .as_ref()
            .is_some_and(|h| h.len() > 128 || h.contains('\0'))
    {
        return Err(ApiError::BadRequest(
            "version must be 1-128 characters (and sha256 at most 128), without NUL".into(),
        ));
    }
    let req = RollbackRequest {
        app_name: app,
        version: body.version,
        sha256: body.sha256,
        actor: Some(caller.0.name.clone()),
        actor_id: Some(caller.0.sub.clone()),
        deadline_ms: Some(deploy_timeout(&state).as_millis() as u64),
    };
    let DeployReply::Deployed(report) = ask(&state, &req, deploy_timeout(&state), DEPLOY).await?;
    serve_from(&state, &report.app_name, report.rev).await;
    Ok(Json(report))
}

/// `DELETE /admin/api/apps/{app}`: the app stops being served; its versions are kept
/// (a rollback brings it back).
#[utoipa::path(
    delete,
    path = "/admin/api/apps/{app}",
    tag = "admin",
    params(("app" = String, Path, description = "The app's name")),
    responses(
        (status = 200, description = "The app is no longer served; the delete report", body = Object),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "The `apps:deploy` permission is missing", body = ErrorBody),
        (status = 404, description = "No such app", body = ErrorBody),
        (status = 503, description = "The deploy service is not running", body = ErrorBody),
        (status = 504, description = "The deploy service did not answer in time", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn delete_app(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    UrlPath(app): UrlPath<String>,
) -> Result<Json<DeleteReport>, ApiError> {
    caller.require(perms::APPS_DEPLOY)?;
    delete_named(&state, &caller, app).await
}

/// `DELETE /admin/api/apps/deploy`: deletes the app named `deploy` (the static path
/// shadows `/admin/api/apps/{app}`).
#[utoipa::path(
    delete,
    path = "/admin/api/apps/deploy",
    tag = "admin",
    responses(
        (status = 200, description = "The app `deploy` is no longer served; the delete report", body = Object),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "The `apps:deploy` permission is missing", body = ErrorBody),
        (status = 404, description = "No app named `deploy`", body = ErrorBody),
        (status = 503, description = "The deploy service is not running", body = ErrorBody),
        (status = 504, description = "The deploy service did not answer in time", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn delete_app_named_deploy(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<DeleteReport>, ApiError> {
    caller.require(perms::APPS_DEPLOY)?;
    delete_named(&state, &caller, "deploy".into()).await
}

async fn delete_named(
    state: &AppState,
    caller: &Caller,
    app: String,
) -> Result<Json<DeleteReport>, ApiError> {
    check_app_name(&app)?;
    let req = DeleteRequest {
        app_name: app,
        actor: Some(caller.0.name.clone()),
        actor_id: Some(caller.0.sub.clone()),
        deadline_ms: Some(deploy_timeout(state).as_millis() as u64),
    };
    let DeleteReply::Deleted(report) = ask(state, &req, deploy_timeout(state), DEPLOY).await?;
    serve_from(state, &report.app_name, report.rev).await;
    Ok(Json(report))
}

/// `GET /admin/api/apps/{app}/versions`: every version of the app, newest first, and
/// which one is current.
#[utoipa::path(
    get,
    path = "/admin/api/apps/{app}/versions",
    tag = "admin",
    params(("app" = String, Path, description = "The app's name")),
    responses(
        (status = 200, description = "`{app_name, found, deleted, current_version, versions}`: every version, newest first, each with `deployed_at`, `deployed_by` (who first deployed it; null before deploys recorded it) and `refused` (why the platform undid it when a runner could not load it; null otherwise)", body = Object),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "The `apps:read` permission is missing", body = ErrorBody),
        (status = 404, description = "No such app", body = ErrorBody),
        (status = 503, description = "The registry is not running", body = ErrorBody),
        (status = 504, description = "The registry did not answer in time", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn versions(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    UrlPath(app): UrlPath<String>,
) -> Result<Json<AppVersions>, ApiError> {
    caller.require(perms::APPS_READ)?;
    check_app_name(&app)?;
    let req = AppVersionsRequest {
        app_name: app.clone(),
    };
    let versions = ask(&state, &req, LOOKUP_TIMEOUT, REGISTRY).await?;
    if !versions.found {
        return Err(ApiError::NotFound(format!(
            "no app named {app:?} has been deployed"
        )));
    }
    Ok(Json(versions))
}

/// `GET /admin/api/apps`: deployed apps with their current version, and deleted apps
/// with the version they had (a rollback brings one back).
#[utoipa::path(
    get,
    path = "/admin/api/apps",
    tag = "admin",
    responses(
        (status = 200, description = "`{apps, deleted}`: deployed apps with their current version; deleted apps with the version current when they were deleted and `updated_at` the time of the delete", body = Object),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "The `apps:read` permission is missing", body = ErrorBody),
        (status = 503, description = "The registry is not running", body = ErrorBody),
        (status = 504, description = "The registry did not answer in time", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn list_apps(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<AppList>, ApiError> {
    caller.require(perms::APPS_READ)?;
    let list = ask(&state, &AppListRequest {}, LOOKUP_TIMEOUT, REGISTRY).await?;
    Ok(Json(list))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_services_503_reaches_the_caller_in_its_words_and_other_5xx_do_not() {
        let busy = RpcError::new(
            503,
            "internal",
            "the app event log did not answer; retry shortly",
        );
        match api_error(busy) {
            ApiError::Unavailable(m) => assert!(m.contains("retry shortly"), "{m}"),
            other => panic!("expected 503 unavailable, got {other:?}"),
        }
        let broken = RpcError::new(500, "internal", "secret internals");
        assert!(matches!(api_error(broken), ApiError::Internal(_)));
    }
}

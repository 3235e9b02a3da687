//! Admin API: deploy a bundle, list apps.

use std::sync::Arc;
use std::time::Duration;

use async_nats::client::RequestErrorKind;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use nr_contracts::requests::{AppList, DeployReply, DeployReport, DeploySubmit};
use nr_contracts::{decode, encode, subjects};
use object_store::path::Path;

use crate::error::ApiError;
use crate::AppState;

/// The admin API routes (`/admin/api/...`).
pub(crate) fn routes(bundle_limit: usize) -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/admin/api/apps/deploy",
            post(deploy).layer(DefaultBodyLimit::max(bundle_limit + 64 * 1024)),
        )
        .route("/admin/api/apps", get(list_apps))
}

/// `POST /admin/api/apps/deploy`, multipart field `file` holding the bundle zip.
pub(crate) async fn deploy(
    State(state): State<Arc<AppState>>,
    mut multipart: Multipart,
) -> Result<Json<DeployReport>, ApiError> {
    let limit = state.config.max_bundle_bytes;
    let too_large = || {
        ApiError::PayloadTooLarge(format!(
            "the bundle exceeds the upload limit of {limit} bytes"
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
        let file_name = field.file_name().unwrap_or("bundle.zip").to_owned();
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
        .map_err(|e| anyhow::anyhow!("cannot stage upload: {e}"))?;
    let request = async_nats::Request::new()
        .payload(
            encode(&DeploySubmit {
                staging_key,
                file_name,
            })
            .map_err(anyhow::Error::from)?
            .into(),
        )
        .timeout(Some(Duration::from_secs_f64(state.config.deploy_timeout_s)));
    let reply = state
        .nats
        .send_request(subjects::DEPLOY_SUBMIT, request)
        .await
        .map_err(|e| match e.kind() {
            RequestErrorKind::NoResponders => {
                ApiError::Unavailable("the deploy service is not running".into())
            }
            RequestErrorKind::TimedOut => {
                ApiError::Timeout("the deploy did not finish in time".into())
            }
            _ => ApiError::Internal(anyhow::anyhow!("deploy request failed: {e}")),
        })?;
    match decode::<DeployReply>(&reply.payload).map_err(anyhow::Error::from)? {
        DeployReply::Deployed(report) => {
            // Serve the new revision from here on: wait until this gateway has seen it.
            if !state
                .apps
                .wait_for(report.rev, Duration::from_secs(10))
                .await
            {
                tracing::warn!(app = %report.app_name, rev = report.rev, "gateway has not seen the new revision yet");
            }
            Ok(Json(report))
        }
        DeployReply::Refused(r) if r.status >= 500 => {
            Err(ApiError::Internal(anyhow::anyhow!(r.error)))
        }
        DeployReply::Refused(r) => Err(ApiError::Refused {
            status: r.status,
            error: r.error,
            details: serde_json::to_value(&r.details).unwrap_or_default(),
        }),
    }
}

/// `GET /admin/api/apps`: deployed apps with their current version.
pub(crate) async fn list_apps(
    State(state): State<Arc<AppState>>,
) -> Result<Json<AppList>, ApiError> {
    let reply = state
        .nats
        .request(subjects::REGISTRY_APPS_LIST, bytes::Bytes::new())
        .await
        .map_err(|e| match e.kind() {
            RequestErrorKind::NoResponders => {
                ApiError::Unavailable("the registry is not running".into())
            }
            _ => ApiError::Internal(anyhow::anyhow!("registry request failed: {e}")),
        })?;
    let list: AppList = decode(&reply.payload).map_err(anyhow::Error::from)?;
    Ok(Json(list))
}

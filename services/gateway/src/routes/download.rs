//! Files out: a route answering `{"download": {"name", "content_type", "data"}}` (what
//! `noderouter.download(...)` returns) gets its bytes stored in the object store and
//! answers with a short-lived link, `GET /files/<token>`, served with
//! `Content-Disposition: attachment` until it expires (410 after; 404 for an unknown
//! link). The token is 256 random bits: the link is the credential, like a presigned URL.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine as _;
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::AppState;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/files/{token}", get(fetch))
}

fn object_path(key: &str) -> Result<object_store::path::Path, ApiError> {
    object_store::path::Path::parse(key)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("bad object key {key}: {e}")))
}

/// A name safe in a `Content-Disposition` header: no quotes, slashes or controls.
fn safe_name(name: &str) -> String {
    let n: String = name
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '"' | '\\' | '/' | ';'))
        .take(200)
        .collect();
    if n.trim().is_empty() {
        "download".to_owned()
    } else {
        n
    }
}

/// Stores the file of a `download` answer and returns the JSON the caller gets.
pub(crate) async fn store(state: &AppState, app: &str, d: &Value) -> Result<Value, ApiError> {
    let bad =
        |m: &str| ApiError::Internal(anyhow::anyhow!("app {app} returned a bad download: {m}"));
    let name = safe_name(
        d.get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("no name"))?,
    );
    let content_type = d
        .get("content_type")
        .and_then(Value::as_str)
        .filter(|c| HeaderValue::from_str(c).is_ok())
        .unwrap_or("application/octet-stream")
        .to_owned();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(
            d.get("data")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("no data"))?,
        )
        .map_err(|_| bad("data is not base64"))?;
    let token = {
        let mut b = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
            .map_err(|_| ApiError::Internal(anyhow::anyhow!("no randomness")))?;
        hex::encode(b)
    };
    let key = format!("files/{app}/{token}");
    let size = bytes.len();
    state
        .store
        .put(&object_path(&key)?, bytes.into())
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("cannot store the download: {e}")))?;
    let ttl = state.config.download_ttl_s.clamp(1, 7 * 86_400) as i64;
    let expires = OffsetDateTime::now_utc() + time::Duration::seconds(ttl);
    sqlx::query(
        "INSERT INTO noderouter_core.app_files (token, app_name, name, content_type, size, object_key, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&token)
    .bind(app)
    .bind(&name)
    .bind(&content_type)
    .bind(size as i64)
    .bind(&key)
    .bind(expires)
    .execute(&state.db)
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("cannot record the download: {e}")))?;
    Ok(json!({
        "download_url": format!("/files/{token}"),
        "name": name,
        "size": size,
        "content_type": content_type,
        "expires_at": expires.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
    }))
}

async fn fetch(
    State(state): State<Arc<AppState>>,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::NotFound("no such download".into()));
    }
    let row: Option<(String, String, String, bool)> = sqlx::query_as(
        "SELECT name, content_type, object_key, expires_at <= NOW() FROM noderouter_core.app_files WHERE token = $1",
    )
    .bind(&token)
    .fetch_optional(&state.db)
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("cannot read the download: {e}")))?;
    let Some((name, content_type, key, expired)) = row else {
        return Err(ApiError::NotFound("no such download".into()));
    };
    if expired {
        return Ok(ApiError::Refused {
            status: 410,
            error: "this download link has expired; ask the app for a new one".into(),
            details: Value::Null,
        }
        .into_response());
    }
    let bytes = state
        .store
        .get(&object_path(&key)?)
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("cannot read the stored download: {e}")))?
        .bytes()
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("cannot read the stored download: {e}")))?;
    let disposition = format!("attachment; filename=\"{name}\"");
    let mut res = (StatusCode::OK, bytes).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(res)
}

/// Removes expired downloads (rows and objects), a batch at a time.
pub(crate) async fn prune(state: &AppState) -> anyhow::Result<()> {
    let gone: Vec<(String, String)> = sqlx::query_as(
        "DELETE FROM noderouter_core.app_files WHERE token IN \
           (SELECT token FROM noderouter_core.app_files WHERE expires_at < NOW() - INTERVAL '1 hour' LIMIT 100) \
         RETURNING token, object_key",
    )
    .fetch_all(&state.db)
    .await?;
    for (_, key) in gone {
        if let Ok(p) = object_store::path::Path::parse(&key) {
            let _ = state.store.delete(&p).await;
        }
    }
    Ok(())
}

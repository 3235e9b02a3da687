//! Files out: `noderouter.download(...)` in an app (a route, a sync call or an async
//! job) hands the bytes to its runner, which stores them in the object store and gives
//! the app a short-lived link, `GET /files/<token>`, served here with
//! `Content-Disposition: attachment` until it expires (410 after; 404 for an unknown
//! link). The token is 256 random bits: the link is the credential, like a presigned
//! URL. Rows and objects belong to `nr_infra::files`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use nr_infra::files::{self, FileError};

use crate::error::{ApiError, ErrorBody};
use crate::AppState;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/files/{token}", get(fetch))
}

fn internal(e: FileError) -> ApiError {
    ApiError::Internal(anyhow::anyhow!("{e}"))
}

/// Serves a file an app returned, as an attachment, while its link is valid.
///
/// `GET /files/{token}`: the link in `download_url` of an app's answer (a route, a sync
/// call or a job's result). No credential: the unguessable token is one.
#[utoipa::path(
    get,
    path = "/files/{token}",
    tag = "files",
    params(("token" = String, Path, description = "The 64 hex digits of a `download_url`")),
    responses(
        (status = 200, description = "The file, with `Content-Disposition: attachment` and its content type", content_type = "application/octet-stream"),
        (status = 404, description = "No such link (never issued, or its file was removed)", body = ErrorBody),
        (status = 410, description = "The link has expired (ask the app for a new one), or its app was deleted", body = ErrorBody),
    )
)]
pub(crate) async fn fetch(
    State(state): State<Arc<AppState>>,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    let Some(file) = files::served(&state.db, &token).await.map_err(internal)? else {
        return Err(ApiError::NotFound("no such download".into()));
    };
    if file.expired {
        return Err(ApiError::Gone(
            "this download link has expired; ask the app for a new one".into(),
        ));
    }
    // An app an operator deleted serves nothing more, its links included (they serve
    // again, while valid, if it is restored).
    if state.apps.get(&file.app_name).is_none() {
        return Err(ApiError::Gone(format!(
            "the app that made this file, '{}', is not deployed any more",
            file.app_name
        )));
    }
    let bytes = files::bytes_of(&state.store, &file)
        .await
        .map_err(internal)?;
    let disposition = disposition(&files::safe_name(&file.name));
    let mut res = (StatusCode::OK, bytes).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&file.content_type)
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
        HeaderValue::from_static("sandbox; default-src 'none'; frame-ancestors 'self'"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(res)
}

/// `Content-Disposition` for `name` (already made safe): an ASCII `filename` every client
/// reads, and the exact UTF-8 name as `filename*` (RFC 6266) when it is not plain ASCII.
fn disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| if c.is_ascii() { c } else { '_' })
        .collect();
    if ascii == name {
        return format!("attachment; filename=\"{name}\"");
    }
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// Removes files past their age, expired links and files of pruned jobs.
pub(crate) async fn prune(state: &AppState) -> anyhow::Result<()> {
    let n = files::prune(&state.db, &state.store, state.config.files.files_max_age_s).await?;
    if n > 0 {
        tracing::info!(removed = n, "pruned app files");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_name_beyond_ascii_keeps_its_letters_in_filename_star() {
        assert_eq!(
            super::disposition("q3 report.csv"),
            "attachment; filename=\"q3 report.csv\""
        );
        assert_eq!(
            super::disposition("café ü.csv"),
            "attachment; filename=\"caf_ _.csv\"; filename*=UTF-8''caf%C3%A9%20%C3%BC.csv"
        );
    }
}

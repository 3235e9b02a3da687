//! Uploads on a route declaring `upload: {max_bytes}`: a `multipart/form-data` body of
//! at most `max_bytes` (413 past it). Each file goes to the object store
//! (`nr_infra::files`) and reaches the app as a handle `{"field", "id", "name", "size",
//! "content_type"}`; `noderouter.read_upload(handle)` asks the app's runner for the
//! bytes over the worker's channel. The app runs as its own user without platform
//! credentials: the runner reads only that app's own uploads for it. Text fields arrive
//! in `form`.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart};
use axum::http::request::Parts;
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::AppState;

/// Files one request may carry; each is a row and an object until it ages out.
pub(crate) const MAX_FILES: usize = 100;
/// Parts (files and text fields) one request may carry.
pub(crate) const MAX_PARTS: usize = 1000;

/// A file part read from the body, stored once the whole body has been read.
struct FilePart {
    field: String,
    name: String,
    content_type: String,
    bytes: Bytes,
}

/// The `body` the app receives: `{"files": [...], "form": {...}}`. The whole body is
/// read and checked before any file is stored, so a refused request leaves nothing.
pub(crate) async fn read(
    state: &AppState,
    app: &str,
    parts: &Parts,
    raw: Bytes,
) -> Result<Value, ApiError> {
    let given = super::media_type(parts);
    if given != "multipart/form-data" {
        let named = if given.is_empty() {
            "no Content-Type".to_owned()
        } else {
            format!("{given:?}")
        };
        return Err(ApiError::UnsupportedMediaType(format!(
            "an upload route takes a form with files (Content-Type: multipart/form-data), not {named}"
        )));
    }
    let req = axum::http::Request::from_parts(parts.clone(), Body::from(raw));
    let mut mp = Multipart::from_request(req, &()).await.map_err(|e| {
        ApiError::UnsupportedMediaType(format!("an upload route takes multipart/form-data: {e}"))
    })?;
    let mut pending = Vec::new();
    let mut form = Map::new();
    let mut count = 0;
    while let Some(field) = mp
        .next_field()
        .await
        .map_err(|e| ApiError::BadRequest(format!("the multipart body does not parse: {e}")))?
    {
        count += 1;
        if count > MAX_PARTS {
            return Err(ApiError::BadRequest(format!(
                "an upload carries at most {MAX_PARTS} parts (files and fields)"
            )));
        }
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = field.file_name().map(str::to_owned);
        let content_type = field
            .content_type()
            .unwrap_or("application/octet-stream")
            .to_owned();
        let bytes = field
            .bytes()
            .await
            .map_err(|e| ApiError::BadRequest(format!("field {name:?} does not read: {e}")))?;
        match file_name {
            Some(file_name) => {
                if pending.len() == MAX_FILES {
                    return Err(ApiError::BadRequest(format!(
                        "an upload carries at most {MAX_FILES} files; {file_name:?} is one more"
                    )));
                }
                pending.push(FilePart {
                    field: name,
                    name: file_name,
                    content_type,
                    bytes,
                });
            }
            None => {
                let text = String::from_utf8(bytes.to_vec()).map_err(|_| {
                    ApiError::BadRequest(format!("form field {name:?} is not UTF-8 text"))
                })?;
                form.insert(name, Value::String(text));
            }
        }
    }
    let mut files = Vec::with_capacity(pending.len());
    for part in pending {
        let mut handle = nr_infra::files::store_upload(
            &state.db,
            &state.store,
            &state.config.files,
            app,
            &part.name,
            &part.content_type,
            part.bytes,
        )
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("upload {:?}: {e}", part.name)))?;
        if let Some(h) = handle.as_object_mut() {
            h.insert("field".into(), Value::String(part.field));
        }
        files.push(handle);
    }
    Ok(json!({ "files": files, "form": form }))
}

//! Uploads on a route declaring `upload: {max_bytes}`: a `multipart/form-data` body of
//! at most `max_bytes` (413 past it). Each file reaches the app as a handle
//! `{"field", "name", "size", "content_type", "data"}` (the bytes, base64) inside the
//! signed runner request, which `noderouter.read_upload(handle)` decodes: the app runs
//! as its own user without platform credentials, so it is handed the bytes, never a
//! key to the object store. Text fields arrive in `form`.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart};
use axum::http::request::Parts;
use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::error::ApiError;

/// The `body` the app receives: `{"files": [...], "form": {...}}`.
pub(crate) async fn read(parts: &Parts, raw: Bytes) -> Result<Value, ApiError> {
    let req = axum::http::Request::from_parts(parts.clone(), Body::from(raw));
    let mut mp = Multipart::from_request(req, &()).await.map_err(|e| {
        ApiError::UnsupportedMediaType(format!("an upload route takes multipart/form-data: {e}"))
    })?;
    let mut files = Vec::new();
    let mut form = Map::new();
    while let Some(field) = mp
        .next_field()
        .await
        .map_err(|e| ApiError::BadRequest(format!("the multipart body does not parse: {e}")))?
    {
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
            Some(file_name) => files.push(json!({
                "field": name,
                "name": file_name,
                "size": bytes.len(),
                "content_type": content_type,
                "data": base64::engine::general_purpose::STANDARD.encode(&bytes),
            })),
            None => {
                let text = String::from_utf8(bytes.to_vec()).map_err(|_| {
                    ApiError::BadRequest(format!("form field {name:?} is not UTF-8 text"))
                })?;
                form.insert(name, Value::String(text));
            }
        }
    }
    Ok(json!({ "files": files, "form": form }))
}

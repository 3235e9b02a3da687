//! One error shape for the whole API: `{"error": "...", "code": "..."}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// The body of every error response, as the OpenAPI document describes it.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Only describes the JSON that `ApiError` writes.
pub struct ErrorBody {
    /// What went wrong, for a person.
    #[schema(example = "app 'sales' is not deployed")]
    pub error: String,
    /// A stable machine-readable code: `bad_request`, `unauthorized`, `forbidden`,
    /// `not_found`, `conflict`, `payload_too_large`, `unsupported_media_type`,
    /// `gone`, `unprocessable`, `refused`, `unavailable`, `timeout`, `internal`, ...
    #[schema(example = "not_found")]
    pub code: String,
    /// Findings of a refused deploy (only with `code: refused`).
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
    /// What a refused deploy would also have been warned of, in the shape of
    /// `details` (only with `code: refused`, and only when there is any).
    #[schema(value_type = Option<Vec<Object>>)]
    pub warnings: Option<serde_json::Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422: well-formed, but not a request this resource can take.
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Timeout(String),
    /// 502: the service that took the request failed before answering.
    #[error("{0}")]
    BadGateway(String),
    /// 410: it existed and is no longer served (an expired download link).
    #[error("{0}")]
    Gone(String),
    /// A refusal with findings (deploy), passed through with its status.
    #[error("{error}")]
    Refused {
        status: u16,
        error: String,
        details: serde_json::Value,
        /// A refused deploy's other findings; left out of the body when empty.
        warnings: Vec<nr_contracts::requests::Finding>,
    },
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
            ApiError::BadGateway(_) => (StatusCode::BAD_GATEWAY, "bad_gateway"),
            ApiError::Gone(_) => (StatusCode::GONE, "gone"),
            ApiError::Refused { status, .. } => (
                StatusCode::from_u16(*status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY),
                "refused",
            ),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        let body = match &self {
            ApiError::Internal(e) => {
                tracing::error!(error = %format!("{e:#}"), "internal error");
                serde_json::json!({"error": "internal error", "code": code})
            }
            ApiError::Refused {
                error,
                details,
                warnings,
                ..
            } => {
                let mut body =
                    serde_json::json!({"error": error, "code": code, "details": details});
                if !warnings.is_empty() {
                    body["warnings"] = serde_json::to_value(warnings).unwrap_or_default();
                }
                body
            }
            other => serde_json::json!({"error": other.to_string(), "code": code}),
        };
        (status, Json(body)).into_response()
    }
}

/// The `code` for an HTTP status, for errors produced outside the handlers.
pub fn code_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        409 => "conflict",
        410 => "gone",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        422 => "unprocessable",
        429 => "too_many_requests",
        502 => "bad_gateway",
        503 => "unavailable",
        504 => "timeout",
        s if s >= 500 => "internal",
        _ => "error",
    }
}

/// Marks a response as an app's own answer (a route's `RouteResult`): its status, type
/// and body are the app's, and [`uniform_errors`] leaves them as they are.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AppAnswer;

/// Gives every error response the `{"error", "code"}` shape: framework rejections
/// (plain text) are wrapped, and JSON errors without a `code` (from runners) get one.
/// An app's own answer ([`AppAnswer`]) is not the platform's error, and is left alone.
///
/// `body_limit` (`NR_MAX_BODY_BYTES`) names the limit in a 413 the framework gave (its
/// own words, "length limit exceeded", name none; a bundle upload's 413 is deploy's own).
pub async fn uniform_errors(
    axum::extract::State(body_limit): axum::extract::State<usize>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error())
        || res.extensions().get::<AppAnswer>().is_some()
    {
        return res;
    }
    let is_json = res
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let (mut parts, body) = res.into_parts();
    let bytes = match axum::body::to_bytes(body, 256 * 1024).await {
        Ok(b) => b,
        Err(_) => axum::body::Bytes::new(),
    };
    let mut value = if is_json {
        serde_json::from_slice::<serde_json::Value>(&bytes).unwrap_or(serde_json::Value::Null)
    } else {
        serde_json::Value::Null
    };
    match value.as_object_mut() {
        Some(obj) if obj.contains_key("error") => {
            if obj.contains_key("code") {
                return Response::from_parts(parts, axum::body::Body::from(bytes));
            }
            obj.insert("code".into(), code_for(status).into());
        }
        _ => {
            let text = String::from_utf8_lossy(&bytes).trim().to_owned();
            let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
                format!("the request body is over the limit of {body_limit} bytes (NR_MAX_BODY_BYTES, set by the operator)")
            } else if text.is_empty() {
                status.canonical_reason().unwrap_or("error").to_owned()
            } else {
                text
            };
            value = serde_json::json!({"error": message, "code": code_for(status)});
        }
    }
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    parts.headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    let body = serde_json::to_vec(&value).unwrap_or_default();
    Response::from_parts(parts, axum::body::Body::from(body))
}

//! Manifest routes: `/apps/<app>/api/<path>` answers the app's `routes[]`. The route's
//! gate runs first (a signed-in caller holding the app's `required_permission` and the
//! route's `permission`, or, on a webhook route, the body's HMAC signature); then
//! `execute` gets `{"action", "params", "query", "body", "headers"}` through the same
//! signed runner request as `POST /api/sync/<app>`, and its dict becomes the response
//! (`result`).

pub(crate) mod direct;
pub(crate) mod download;
mod matching;
mod result;
mod upload;
mod webhook;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::{AppState, RequestId};

/// Request headers passed on to the app; nothing that carries a credential. The
/// conditional ones let an app that sends `ETag` or `Last-Modified` answer 304 (or 412
/// to a stale `If-Match`). A webhook route also passes its own delivery header.
const PASSED_HEADERS: &[&str] = &[
    "accept",
    "accept-language",
    "content-type",
    "user-agent",
    "x-request-id",
    "x-github-event",
    "x-github-delivery",
    "if-none-match",
    "if-modified-since",
    "if-match",
    "if-unmodified-since",
];

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/apps/{app}/api", any(root))
        .route("/apps/{app}/api/", any(root))
        .route("/apps/{app}/api/{*path}", any(nested))
        .merge(download::routes())
}

async fn root(
    state: State<Arc<AppState>>,
    Path(app): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    call(state, app, "/".to_owned(), req).await
}

async fn nested(
    state: State<Arc<AppState>>,
    Path((app, _)): Path<(String, String)>,
    req: Request,
) -> Result<Response, ApiError> {
    // The path as sent, after `/apps/<app>/api`: its params are decoded one segment at a
    // time once it has matched, so `%2F` stays inside a param.
    let raw = req.uri().path().splitn(5, '/').nth(4).unwrap_or("");
    let path = format!("/{raw}");
    call(state, app, path, req).await
}

async fn call(
    State(state): State<Arc<AppState>>,
    app: String,
    path: String,
    req: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let method = parts.method.as_str().to_owned();
    let segments = matching::segments(&path)
        .ok_or_else(|| ApiError::BadRequest(format!("the path {path} does not decode to UTF-8")))?;
    // Given to the app and named in errors decoded, as before.
    let path = segments.join("/");
    let entry = state.apps.get(&app);
    let found = entry
        .as_ref()
        .map(|e| matching::find(&e.manifest.routes, &method, &segments));
    // Only a webhook route answers a caller without a credential: anyone else learns
    // which apps and routes exist only once signed in.
    let caller = match &found {
        Some(matching::Match::Found(r, _)) if r.webhook.is_some() => None,
        _ => Some(crate::auth::Caller(
            crate::auth::authenticate(&state, &parts).await?,
        )),
    };
    let (Some(entry), Some(found)) = (entry.as_ref(), found) else {
        return Err(ApiError::NotFound(format!("app '{app}' is not deployed")));
    };
    let (route, params) = match found {
        matching::Match::Found(r, p) => (r.clone(), p),
        matching::Match::WrongMethod(allow) => {
            let error = format!(
                "{method} {path} is not a route of app '{app}'; it answers {}",
                allow.join(", ")
            );
            let mut res = (
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                axum::Json(json!({
                    "error": error,
                    "code": crate::error::code_for(axum::http::StatusCode::METHOD_NOT_ALLOWED),
                    "details": { "allow": allow },
                })),
            )
                .into_response();
            if let Ok(v) = HeaderValue::from_str(&allow.join(", ")) {
                res.headers_mut().insert(header::ALLOW, v);
            }
            return Ok(res);
        }
        matching::Match::None => {
            return Err(ApiError::NotFound(format!(
                "app '{app}' has no route {method} {path}"
            )))
        }
    };
    if let Some(caller) = &caller {
        caller.require(entry.manifest.permission())?;
        caller.require(route.permission.as_deref().unwrap_or(""))?;
    }
    // A webhook's sender is proven by its body: what can be checked without it is
    // checked first, and the body is never larger than a call's (whatever upload a
    // bundle deployed before deploy refused the pair declares).
    let pending = match &route.webhook {
        Some(hook) => Some(webhook::precheck(&state, &app, hook, &parts.headers).await?),
        None => None,
    };
    let limit = match &route.upload {
        Some(u) if pending.is_none() => usize::try_from(u.max_bytes).unwrap_or(usize::MAX),
        _ => state.config.max_body_bytes,
    };
    let raw: Bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::PayloadTooLarge(format!(
            "the body exceeds the limit of {limit} bytes of {} {}",
            route.method.as_str(),
            route.path
        ))
    })?;
    let delivery = match (&route.webhook, pending) {
        (Some(hook), Some(pending)) => {
            Some(webhook::verify(&state, &app, hook, pending, &raw).await?)
        }
        _ => None,
    };
    // Whether a webhook delivery counts as received: once the app may have acted on it.
    let mut acted = false;
    let out: Result<Response, ApiError> = async {
        // The last of a repeated key wins.
        let query: BTreeMap<String, String> =
            axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
                .map(|q| q.0.into_iter().collect())
                .map_err(|e| ApiError::BadRequest(format!("the query string does not parse: {e}")))?;
        let ct = media_type(&parts);
        let is_json = ct == "application/json" || ct.ends_with("+json");
        let body_value = if route.upload.is_some() && raw.is_empty() {
            // Nothing sent: an empty form, so `data["body"]["files"]` holds for every call.
            json!({"files": [], "form": {}})
        } else if route.upload.is_some() {
            upload::read(&state, &app, &parts, raw.clone()).await?
        } else if raw.is_empty() {
            Value::Null
        } else if is_json {
            serde_json::from_slice(&raw)
                .map_err(|e| ApiError::BadRequest(format!("request body is not valid JSON: {e}")))?
        } else {
            match std::str::from_utf8(&raw) {
                Ok(s) => Value::String(s.to_owned()),
                Err(_) => {
                    return Err(ApiError::UnsupportedMediaType(
                        "the body must be JSON or text".into(),
                    ))
                }
            }
        };
        let mut headers = Map::new();
        let delivery_header = route
            .webhook
            .as_ref()
            .map(|w| w.delivery_header().to_ascii_lowercase())
            .filter(|h| !nr_contracts::manifest::CREDENTIAL_HEADERS.contains(&h.as_str()));
        for name in PASSED_HEADERS.iter().copied().chain(delivery_header.as_deref()) {
            if let Some(v) = parts.headers.get(name).and_then(|v| v.to_str().ok()) {
                headers.insert(name.to_owned(), Value::String(v.to_owned()));
            }
        }
        let data = json!({
            "action": route.action,
            "params": params,
            "query": query,
            "body": body_value,
            "headers": headers,
            "method": method,
            "path": path,
        });
        if nr_jobs::has_nul(&data) {
            return Err(ApiError::BadRequest(
                "the request must not contain the character \\u0000".into(),
            ));
        }
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default();
        let payload = Bytes::from(data.to_string());
        let (status, answer) = match crate::sync::exec(&state, &app, entry, &request_id, payload).await {
            Ok(done) => done,
            Err(e) => {
                // No runner took it; a timeout at the gateway may have run it all the same.
                acted = !matches!(e, ApiError::Unavailable(_));
                return Err(e);
            }
        };
        tracing::info!(app = %app, method = %method, route = %route.path, status = status.as_u16(), "route call");
        let res = result::respond(&app, status, &answer);
        // The app raised (500) or could not be served (503): it did nothing to keep. A
        // timeout (504) or a lost worker (502) may have come after its work; the app's own
        // 5xx answer says it failed.
        acted = match status.as_u16() {
            500 | 503 => false,
            _ => {
                let own = res.extensions().get::<crate::error::AppAnswer>().is_some();
                !(own && res.status().is_server_error())
            }
        };
        Ok(res)
    }
    .await;
    // A delivery the platform refused after its signature, or that the app failed, was
    // not handled: its sender may send it again under the same id (GitHub's
    // "Redeliver"). One the app may have acted on stays received.
    if let Some(delivery) = delivery {
        if !acted {
            webhook::release(&state, &app, &delivery).await;
        }
    }
    out
}

/// The media type of a request's body, in lower case and without its parameters (empty
/// when none is given).
pub(super) fn media_type(parts: &axum::http::request::Parts) -> String {
    parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| ct.split(';').next())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

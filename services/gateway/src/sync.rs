//! `POST /api/sync/<app>`: runs the app's `execute` and returns its dict.

use std::sync::Arc;
use std::time::Duration;

use async_nats::client::RequestErrorKind;
use async_nats::HeaderMap;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use nr_contracts::{headers, subjects};

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::routes::direct::Direct;
use crate::{AppState, RequestId};

/// Slack between the app's time limit (enforced by the runner) and the gateway's wait.
const MARGIN: Duration = Duration::from_secs(2);

/// 415 unless the body is declared JSON (`application/json` or `*/*+json`); a request
/// without a content type is read as JSON.
pub(crate) fn check_content_type(headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let ct = ct
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if ct == "application/json" || ct.ends_with("+json") {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(format!(
            "the body must be JSON: send Content-Type: application/json (got {ct:?})"
        )))
    }
}

/// Checks the body is one JSON object (an empty body counts as `{}`).
pub(crate) fn check_json_object(body: &Bytes) -> Result<Direct, ApiError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        None => Ok(Direct::default()),
        Some(b'{') => {
            // A key given twice is refused here (`duplicate field`): the gateway would
            // check one `action` and Python's `json.loads` keep the other.
            let direct = serde_json::from_slice::<Direct>(body).map_err(|e| {
                let text = e.to_string();
                ApiError::BadRequest(if text.starts_with("duplicate field") {
                    format!("the request body gives a key twice, and only one can count: {text}")
                } else {
                    format!("request body is not valid JSON: {text}")
                })
            })?;
            // What skipping the value does not check, and the app's `json.loads` (or the
            // job queue's `jsonb`) would refuse with an error of its own.
            if std::str::from_utf8(body).is_err() {
                return Err(ApiError::BadRequest(
                    "request body is not valid JSON: it is not UTF-8".into(),
                ));
            }
            if nesting(body) > MAX_NESTING {
                return Err(ApiError::BadRequest(format!(
                    "request body is not valid JSON: nested deeper than {MAX_NESTING} levels"
                )));
            }
            Ok(direct)
        }
        Some(_) => Err(ApiError::BadRequest(
            "request body must be a JSON object, e.g. {\"action\": \"list\"}".into(),
        )),
    }
}

/// Deepest nesting of objects and arrays a body may have: what serde_json parses (the
/// async path's limit), well inside what Python's `json.loads` can.
const MAX_NESTING: usize = 128;

/// How deeply the objects and arrays of `json` (valid JSON) nest.
fn nesting(json: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in json {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Runs the app's `execute(data)` with the JSON object as `data` and answers with the
/// dict it returns (status and body as the runner reports them).
#[utoipa::path(
    post,
    path = "/api/sync/{app}",
    tag = "apps",
    params(("app" = String, Path, description = "Name of a deployed app")),
    request_body(
        content = Object,
        content_type = "application/json",
        description = "Free-form JSON object passed to the app as `data`, e.g. `{\"action\": \"list\"}`; an empty body counts as `{}`"
    ),
    responses(
        (status = 200, description = "The dict the app returned", body = Object),
        (status = 400, description = "The body is not one JSON object (UTF-8, at most 128 levels deep, no key twice), or sets `_schedule` or `_job_id`", body = ErrorBody),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "The app's `required_permission` is missing, or the permission of a route bound to this `action`; or the action is served by its webhook route only", body = ErrorBody),
        (status = 404, description = "The app is not deployed", body = ErrorBody),
        (status = 413, description = "The body exceeds the limit", body = ErrorBody),
        (status = 415, description = "The body is not declared JSON", body = ErrorBody),
        (status = 503, description = "No runner is available", body = ErrorBody),
        (status = 502, description = "The runner's reply was missing or failed signature verification", body = ErrorBody),
        (status = 504, description = "The app did not answer within its time limit", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn sync_call(
    State(state): State<Arc<AppState>>,
    Path(app): Path<String>,
    axum::Extension(RequestId(request_id)): axum::Extension<RequestId>,
    caller: Caller,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let entry = state
        .apps
        .get(&app)
        .ok_or_else(|| ApiError::NotFound(format!("app '{app}' is not deployed")))?;
    caller.require(entry.manifest.required_permission.as_deref().unwrap_or(""))?;
    check_content_type(&headers)?;
    let direct = check_json_object(&body)?;
    crate::routes::direct::check(&app, &entry, &caller, &direct)?;
    let (status, payload) = exec(&state, &app, &entry, &request_id, body).await?;
    Ok((
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        payload,
    )
        .into_response())
}

/// Sends `body` (the JSON `data`) to a runner of `app`, signed, and returns the status
/// and body the runner answered with. Sync calls and manifest routes both go this way.
pub(crate) async fn exec(
    state: &AppState,
    app: &str,
    entry: &crate::apps::AppEntry,
    request_id: &str,
    body: Bytes,
) -> Result<(StatusCode, Bytes), ApiError> {
    if let Some(answer) = local_exec(state, app, entry, request_id, &body).await? {
        return Ok(answer);
    }
    let mut h = HeaderMap::new();
    h.insert(headers::APP_REV, entry.rev.to_string().as_str());
    h.insert(headers::REQUEST_ID, request_id);
    let subject = subjects::runner_exec(app);
    let stamp = nr_auth::signing::sign(&state.runner_keys, &subject, &h, &body);
    if let Some(stamp) = &stamp {
        h.insert(nr_auth::signing::HEADER_SIG, stamp.value());
    }
    let request = async_nats::Request::new()
        .payload(body)
        .headers(h)
        .timeout(Some(entry.timeout + MARGIN));
    // A reply routed through a NATS node that dies on the way is lost; the connection's
    // drop says so at once, where waiting would last the call's whole time limit.
    let dropped = state.bus_drops.next();
    tokio::pin!(dropped);
    dropped.as_mut().enable();
    // A runner that dies holding the call stops naming it in its heartbeats.
    let watch = entry.timeout > crate::alive::GRACE && !request_id.is_empty();
    let lost = state.runners.lost(request_id, std::time::Instant::now());
    tokio::pin!(lost);
    let sent = tokio::select! {
        r = state.nats.send_request(subject, request) => r,
        _ = dropped => return Err(ApiError::Unavailable(format!(
            "the gateway lost its connection to NATS during this call of app '{app}', so the answer cannot arrive; the call may have run: retry only if that is safe"
        ))),
        why = &mut lost, if watch => return Err(lost_call(app, request_id, why)),
    };
    let reply = sent.map_err(|e| match e.kind() {
        RequestErrorKind::NoResponders => ApiError::Unavailable(format!(
            "no runner is available to execute app '{app}'; start a runner and retry"
        )),
        RequestErrorKind::TimedOut => timed_out(app, entry),
        RequestErrorKind::MaxPayloadExceeded => too_large(),
        _ => ApiError::Internal(anyhow::anyhow!("runner request failed: {e}")),
    })?;
    let reply_header = |name: &str| {
        reply
            .headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str())
    };
    let status_text = reply_header(headers::STATUS).unwrap_or("");
    if let Some(nonce) = stamp.as_ref().map(|s| s.nonce()) {
        // Only a runner holding the key can answer: a reply from anyone else who got to
        // the reply subject first never reaches the caller.
        if let Err(e) = nr_auth::signing::verify_reply(
            &state.runner_keys,
            nonce,
            status_text,
            &reply.payload,
            reply_header(nr_auth::signing::HEADER_SIG),
        ) {
            // A runner refusing this gateway's signature answers unsigned: the keys differ.
            tracing::warn!(app = %app, request_id = %request_id, reply = %e, "runner reply refused: its signature does not verify; is RUNNER_SECRET the same on every gateway and runner?");
            return Err(ApiError::BadGateway(format!(
                "the reply to this call of app '{app}' failed verification and was dropped: the runner that answered does not hold this gateway's RUNNER_SECRET (or the reply was forged)"
            )));
        }
    }
    let status = status_text
        .parse::<u16>()
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::BAD_GATEWAY);
    Ok((status, reply.payload))
}

/// 502: the call's runner died holding it, or let it go and its reply never came.
fn lost_call(app: &str, request_id: &str, why: crate::alive::Lost) -> ApiError {
    tracing::warn!(app, request_id, ?why, "runner call lost");
    ApiError::BadGateway(match why {
        crate::alive::Lost::RunnerGone => format!(
            "the runner running this call of app '{app}' stopped before answering; the call may have run: retry only if that is safe"
        ),
        crate::alive::Lost::ReplyLost => format!(
            "the runner finished this call of app '{app}' but its answer was lost on the way; the call ran: retry only if that is safe"
        ),
    })
}

/// 504: the app's time limit and the margin passed without an answer.
fn timed_out(app: &str, entry: &crate::apps::AppEntry) -> ApiError {
    ApiError::Timeout(format!(
        "app '{app}' did not answer within {} s",
        entry.timeout.as_secs_f64()
    ))
}

/// 413: the body is over the bus's message limit (kept for calls in memory too, so an
/// app behaves the same on every topology).
fn too_large() -> ApiError {
    ApiError::PayloadTooLarge("request body exceeds the message size limit".into())
}

/// The call handed to a runner of this process, when there is one that takes it:
/// the same limits as on the bus (request size, the app's time limit and a margin).
async fn local_exec(
    state: &AppState,
    app: &str,
    entry: &crate::apps::AppEntry,
    request_id: &str,
    body: &Bytes,
) -> Result<Option<(StatusCode, Bytes)>, ApiError> {
    if state.local_runners.is_empty() {
        return Ok(None);
    }
    let max_payload = state.nats.server_info().max_payload;
    if max_payload > 0 && body.len() > max_payload {
        return Err(too_large());
    }
    let Some(call) = state
        .local_runners
        .call(app, entry.rev, request_id, body.clone())
    else {
        return Ok(None);
    };
    let (status, payload) = tokio::time::timeout(entry.timeout + MARGIN, call)
        .await
        .map_err(|_| timed_out(app, entry))?
        .ok_or_else(|| {
            ApiError::Unavailable(format!(
                "the runner stopped before app '{app}' answered; retry"
            ))
        })?;
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    Ok(Some((status, payload)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_objects_and_empty_bodies_pass_other_shapes_do_not() {
        assert!(check_json_object(&Bytes::from_static(b"")).is_ok());
        assert!(check_json_object(&Bytes::from_static(b" {\"a\":1}")).is_ok());
        assert!(check_json_object(&Bytes::from_static(b"[1]")).is_err());
        assert!(check_json_object(&Bytes::from_static(b"{\"a\":")).is_err());
        assert!(check_json_object(&Bytes::from_static(b"{} trailing")).is_err());
    }

    #[test]
    fn deep_nesting_and_invalid_utf8_are_refused() {
        let deep = |n: usize| format!("{{\"a\":{}1{}}}", "[".repeat(n), "]".repeat(n));
        assert!(check_json_object(&Bytes::from(deep(MAX_NESTING - 1))).is_ok());
        assert!(check_json_object(&Bytes::from(deep(5000))).is_err());
        // Brackets inside strings, escaped quotes included, are not nesting.
        let text = format!("{{\"a\":\"\\\"{}\"}}", "[".repeat(500));
        assert_eq!(nesting(text.as_bytes()), 1);
        assert!(check_json_object(&Bytes::from(text)).is_ok());
        assert!(check_json_object(&Bytes::from_static(b"{\"a\":\"\xff\"}")).is_err());
    }

    #[test]
    fn an_action_given_twice_is_refused_as_such_not_as_bad_json() {
        let e = check_json_object(&Bytes::from_static(
            b"{\"action\":\"list\",\"action\":\"drop\"}",
        ))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(e.contains("gives a key twice"), "{e}");
        assert!(e.contains("duplicate field `action`"), "{e}");
        assert!(!e.contains("not valid JSON"), "{e}");
    }
}

//! Typed request/reply on the bus: [`call`] on the caller's side, [`serve`] on the
//! service's, for every operation that implements [`nr_contracts::Rpc`].
//!
//! The convention (docs/events.md, "Internal request/reply subjects"): bodies are
//! MessagePack maps with field names, an empty request body counts as `{}`, and every
//! reply carries `Nr-Status`: `200` and the operation's reply, or another status and an
//! [`RpcError`] tagged `outcome: "refused"`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::client::RequestErrorKind;
use async_nats::HeaderMap;
use nr_contracts::rpc::{code_for_status, ErrorBody, STATUS_OK};
use nr_contracts::{decode, encode, headers, Rpc, RpcError};
use serde::de::DeserializeOwned;

use crate::consume::{consume, Order};
use crate::drain::Drain;

/// Why a call did not return the operation's reply.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Nobody serves the subject (no subscriber in its queue group): the service is
    /// not running. Reported by the server at once, not after the timeout.
    #[error("no service answers {subject}")]
    Unavailable { subject: &'static str },
    /// Served, but not answered within the caller's time limit.
    #[error("{subject} was not answered within {timeout:?}")]
    TimedOut {
        subject: &'static str,
        timeout: Duration,
    },
    /// The service answered with its error: status, code, message, findings.
    #[error("{subject}: {error}")]
    Refused {
        subject: &'static str,
        error: RpcError,
    },
    /// The request could not be sent or the reply could not be read.
    #[error("{subject}: {message}")]
    Failed {
        subject: &'static str,
        message: String,
    },
}

/// The empty MessagePack map: what an empty request body counts as.
const EMPTY_MAP: &[u8] = &[0x80];

/// Sends `request` to its subject and waits up to `timeout` for the reply.
pub async fn call<R: Rpc>(
    client: &async_nats::Client,
    request: &R,
    timeout: Duration,
) -> Result<R::Reply, CallError> {
    let subject = R::SUBJECT;
    let payload = encode(request).map_err(|e| CallError::Failed {
        subject,
        message: format!("cannot encode the request: {e}"),
    })?;
    let sent = async_nats::Request::new()
        .payload(payload.into())
        .timeout(Some(timeout));
    let reply = client
        .send_request(subject, sent)
        .await
        .map_err(|e| match e.kind() {
            RequestErrorKind::NoResponders => CallError::Unavailable { subject },
            RequestErrorKind::TimedOut => CallError::TimedOut { subject, timeout },
            _ => CallError::Failed {
                subject,
                message: format!("request failed: {e}"),
            },
        })?;
    let status = reply
        .headers
        .as_ref()
        .and_then(|h| h.get(headers::STATUS))
        .map(|v| v.as_str().trim().parse::<u16>());
    read_reply(subject, status, &reply.payload)
}

/// A reply body as its status says; a reply without `Nr-Status` (a service older than
/// the convention) is the reply, or else an error body.
fn read_reply<T: DeserializeOwned>(
    subject: &'static str,
    status: Option<Result<u16, std::num::ParseIntError>>,
    body: &[u8],
) -> Result<T, CallError> {
    let undecodable = |what: &str, e: &dyn std::fmt::Display| CallError::Failed {
        subject,
        message: format!("undecodable {what}: {e}"),
    };
    match status {
        Some(Ok(STATUS_OK)) => decode::<T>(body).map_err(|e| undecodable("reply", &e)),
        Some(Ok(status)) => Err(CallError::Refused {
            subject,
            error: match decode::<ErrorBody>(body) {
                Ok(ErrorBody::Refused(mut error)) => {
                    error.status = status;
                    if error.code.is_empty() {
                        error.code = code_for_status(status).to_owned();
                    }
                    error
                }
                Err(e) => RpcError::new(
                    status,
                    code_for_status(status),
                    format!("{subject} answered {status} with an undecodable error: {e}"),
                ),
            },
        }),
        Some(Err(e)) => Err(undecodable("Nr-Status header", &e)),
        None => match decode::<T>(body) {
            Ok(reply) => Ok(reply),
            Err(e) => match decode::<ErrorBody>(body) {
                Ok(ErrorBody::Refused(mut error)) => {
                    if error.code.is_empty() {
                        error.code = code_for_status(error.status).to_owned();
                    }
                    Err(CallError::Refused { subject, error })
                }
                Err(_) => Err(undecodable("reply", &e)),
            },
        },
    }
}

/// Answers `R` in its queue group until the drain stops: each request is decoded,
/// handed to `handler` on its own task (on the drain's tracker, so stopping lets the
/// requests in flight finish), and answered with the reply or the error. A request that
/// does not decode is answered 400 `bad_request` naming the subject and the field.
/// Returns once the subscription is sent to the server.
pub async fn serve<R, F, Fut>(
    client: async_nats::Client,
    drain: &Drain,
    handler: F,
) -> anyhow::Result<()>
where
    R: Rpc,
    F: Fn(R) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R::Reply, RpcError>> + Send + 'static,
{
    let subscription = client
        .queue_subscribe(R::SUBJECT, R::QUEUE_GROUP.into())
        .await
        .map_err(|e| anyhow::anyhow!("cannot subscribe to {}: {e}", R::SUBJECT))?;
    client
        .flush()
        .await
        .map_err(|e| anyhow::anyhow!("cannot subscribe to {}: {e}", R::SUBJECT))?;
    let handler = Arc::new(handler);
    consume(
        R::SUBJECT,
        subscription,
        drain,
        Order::Concurrent,
        move |msg: async_nats::Message| {
            let (client, handler) = (client.clone(), handler.clone());
            async move {
                let Some(reply_to) = msg.reply else {
                    anyhow::bail!("a request without a reply subject was dropped");
                };
                let body: &[u8] = if msg.payload.is_empty() {
                    EMPTY_MAP
                } else {
                    &msg.payload
                };
                let outcome = match decode::<R>(body) {
                    Ok(request) => handler(request).await,
                    Err(e) => Err(RpcError::bad_request(format!(
                        "malformed {} request: {e}",
                        R::SUBJECT
                    ))),
                };
                let (status, body) = answer::<R>(outcome);
                let mut headers = HeaderMap::new();
                headers.insert(nr_contracts::headers::STATUS, status.to_string().as_str());
                client
                    .publish_with_headers(reply_to, headers, body.into())
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot send the reply: {e}"))?;
                // Out on the wire before the request counts as answered: a service
                // stopping once its requests are answered must not exit with the reply
                // still in the client's buffer (the caller would wait its whole time).
                client
                    .flush()
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot send the reply: {e}"))
            }
        },
    );
    Ok(())
}

/// The status and body of a reply.
fn answer<R: Rpc>(outcome: Result<R::Reply, RpcError>) -> (u16, Vec<u8>) {
    let mut error = match outcome.map(|reply| encode(&reply)) {
        Ok(Ok(body)) => return (STATUS_OK, body),
        Ok(Err(e)) => RpcError::internal(format!("cannot encode the {} reply: {e}", R::SUBJECT)),
        Err(error) => error,
    };
    if !(400..=599).contains(&error.status) {
        // A status that is not an error's would read as a reply at the caller.
        error.status = 500;
    }
    if error.status >= 500 {
        tracing::warn!(subject = R::SUBJECT, status = error.status, error = %error.error, "answered with an error");
    } else {
        tracing::debug!(subject = R::SUBJECT, status = error.status, error = %error.error, "answered with a refusal");
    }
    let status = error.status;
    // An RpcError always encodes (strings, integers, findings).
    (
        status,
        encode(&ErrorBody::Refused(error)).unwrap_or_default(),
    )
}

#[cfg(test)]
#[path = "rpc_tests.rs"]
mod tests;

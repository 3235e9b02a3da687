//! `runner.exec.<app>`: sync calls from the gateway, served by one runner of the queue
//! group. The reply carries `Nr-Status` (an HTTP status) and a JSON body.

use std::sync::Arc;

use async_nats::{HeaderMap, Message};
use futures::future::BoxFuture;
use futures::StreamExt;
use nr_config::nats_auth::RUNNER_NONCE;
use nr_contracts::events::{ActionTriggered, ACTION_TRIGGERED};
use nr_contracts::{headers, subjects, Envelope};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::host::{AppHost, CallError, FiredAction};
use crate::text::{clean, MAX_LINE, MAX_TRACEBACK};
use crate::{HostError, Inner};

pub(crate) async fn start(inner: Arc<Inner>, shutdown: CancellationToken) -> anyhow::Result<()> {
    let nonces = share_nonces(inner.clone(), shutdown.clone()).await?;
    let mut sub = inner
        .nats
        .queue_subscribe(
            subjects::RUNNER_EXEC_ALL,
            subjects::RUNNER_QUEUE_GROUP.into(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("cannot subscribe to {}: {e}", subjects::RUNNER_EXEC_ALL))?;
    tokio::spawn(async move {
        loop {
            let msg = tokio::select! {
                _ = shutdown.cancelled() => break,
                m = sub.next() => m,
            };
            let Some(msg) = msg else { break };
            let task_inner = inner.clone();
            let nonces = nonces.clone();
            inner.calls.spawn(async move {
                let inner = task_inner;
                let span = tracing::info_span!("exec", subject = %msg.subject, request_id = tracing::field::Empty);
                if let Some(rid) = msg
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(headers::REQUEST_ID))
                {
                    span.record("request_id", rid.as_str());
                }
                tracing::Instrument::instrument(handle(inner, msg, nonces), span).await
            });
        }
        let _ = sub.unsubscribe().await;
    });
    Ok(())
}

fn error_body(message: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "error": message })).unwrap_or_default()
}

/// Room kept for the reply's headers (status, signature) under the bus limit.
const HEADER_ROOM: usize = 1024;

/// A reply the bus cannot carry becomes a 413 naming the size and the limit, sent at
/// once instead of failing to publish (which would leave the caller waiting for the
/// whole time limit).
fn fit_reply(app: &str, status: u16, body: Vec<u8>, max_payload: usize) -> (u16, Vec<u8>) {
    if max_payload == 0 || body.len() + HEADER_ROOM <= max_payload {
        return (status, body);
    }
    tracing::warn!(
        app,
        bytes = body.len(),
        max_payload,
        "app result over the bus limit"
    );
    let message = format!(
        "the result of app '{app}' is {} bytes, over the message limit of {} bytes (the NATS server's max_payload); return less, or store large data and return a reference",
        body.len(),
        max_payload.saturating_sub(HEADER_ROOM)
    );
    let body =
        serde_json::to_vec(&serde_json::json!({"error": message, "code": "payload_too_large"}))
            .unwrap_or_default();
    (413, body)
}

/// How long accepted nonces gather before they are broadcast together. Every batch is
/// one more message through nats-server and every runner; at 2 ms (500 batches a second
/// under load) they cost the split services 5-10 % of their sync throughput
/// (`load-tests/ab-split.sh`), at 20 ms about 1 %. The window shrinks nothing an attacker
/// needs: a replay sent as soon as the request is captured beats either.
const GOSSIP_EVERY: std::time::Duration = std::time::Duration::from_millis(20);
/// Nonces in one broadcast at most (33 bytes each, well under any payload limit).
const GOSSIP_MAX: usize = 4096;

/// Shares the nonces of the signed requests this runner accepted with every other
/// runner, and remembers theirs, so a captured request is served once across all
/// runners. Core NATS, batched: whatever accumulated while the last batch was sent goes
/// in the next message, so the sync path never waits for it. Residual: a replay that
/// reaches another runner before the broadcast (at most `GOSSIP_EVERY` and a hop) is
/// served twice.
async fn share_nonces(
    inner: Arc<Inner>,
    shutdown: CancellationToken,
) -> anyhow::Result<mpsc::UnboundedSender<String>> {
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    if !inner.signatures.enabled() {
        return Ok(tx);
    }
    let mut sub = inner
        .nats
        .subscribe(RUNNER_NONCE)
        .await
        .map_err(|e| anyhow::anyhow!("cannot subscribe to {RUNNER_NONCE}: {e}"))?;
    let listener = inner.clone();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        loop {
            let msg = tokio::select! {
                _ = stop.cancelled() => break,
                m = sub.next() => m,
            };
            let Some(msg) = msg else { break };
            let text = String::from_utf8_lossy(&msg.payload);
            let mut lines = text.lines();
            if lines.next() == Some(listener.id.as_str()) {
                continue; // our own batch
            }
            for nonce in lines {
                listener.signatures.remember(nonce);
            }
        }
    });
    tokio::spawn(async move {
        loop {
            let first = tokio::select! {
                _ = shutdown.cancelled() => break,
                n = rx.recv() => n,
            };
            let Some(first) = first else { break };
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(GOSSIP_EVERY) => {}
            }
            let mut batch = format!("{}\n{first}", inner.id);
            let mut count = 1;
            while count < GOSSIP_MAX {
                let Ok(next) = rx.try_recv() else { break };
                batch.push('\n');
                batch.push_str(&next);
                count += 1;
            }
            if let Err(e) = inner.nats.publish(RUNNER_NONCE, batch.into()).await {
                tracing::warn!(error = %e, "cannot share accepted nonces");
            }
        }
    });
    Ok(tx)
}

async fn handle(inner: Arc<Inner>, msg: Message, nonces: mpsc::UnboundedSender<String>) {
    let Some(reply_to) = msg.reply.clone() else {
        return;
    };
    let app = subjects::app_of_runner_exec(&msg.subject).unwrap_or_default();
    let header = |name: &str| {
        msg.headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_owned())
    };
    let min_rev = header(headers::APP_REV)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let request_id = header(headers::REQUEST_ID).unwrap_or_default();
    // Named in the heartbeats until the reply is sent (the guard drops at the end).
    let _holding = inner.held.hold(&request_id);
    let accepted = match inner
        .signatures
        .verify(&msg.subject, &msg.payload, msg.headers.as_ref())
    {
        Ok(accepted) => accepted,
        Err(e) => {
            tracing::warn!(app, request_id = %request_id, error = %e, "runner request refused");
            let mut h = HeaderMap::new();
            h.insert(headers::STATUS, "401");
            let body = serde_json::to_vec(&serde_json::json!({"error": format!("runner refused the request: {e}"), "code": "unauthorized"}))
            .unwrap_or_default();
            let _ = inner
                .nats
                .publish_with_headers(reply_to, h, body.into())
                .await;
            return;
        }
    };
    if let Some(accepted) = &accepted {
        let _ = nonces.send(accepted.nonce.clone());
    }

    let (status, body, after) = answer(&inner, app, min_rev, &request_id, &msg.payload).await;
    let mut reply_headers = HeaderMap::new();
    let status_text = status.to_string();
    reply_headers.insert(headers::STATUS, status_text.as_str());
    if let Some(sig) = accepted
        .as_ref()
        .and_then(|a| inner.signatures.sign_reply(a, &status_text, &body))
    {
        reply_headers.insert(nr_auth::signing::HEADER_SIG, sig.as_str());
    }
    if let Err(e) = inner
        .nats
        .publish_with_headers(reply_to, reply_headers, body.into())
        .await
    {
        tracing::warn!(app, error = %e, "cannot send runner reply");
    }
    if let Some((host, actions)) = after {
        publish_actions(&inner, app, &host.manifest, actions, Some(request_id), None).await;
    }
}

/// What a call returned besides its reply: the `_actions` to publish once the reply is
/// sent, with the host whose manifest declares them.
type After = Option<(Arc<AppHost>, Vec<FiredAction>)>;

/// Answers one sync call, however it arrived: finds the app's host (at least
/// `min_rev`), runs `execute`, turns each failure into its status and message, fits
/// the reply under the bus limit (the same limit for a call made in this process, so
/// an app behaves the same on every topology), and counts it.
pub(crate) async fn answer(
    inner: &Arc<Inner>,
    app: &str,
    min_rev: u64,
    request_id: &str,
    payload: &[u8],
) -> (u16, Vec<u8>, After) {
    let started = std::time::Instant::now();
    let (status, body, after) = match inner.host_for_call(app, min_rev).await {
        Err(e @ HostError::NotFound(_)) => (404, error_body(&e.to_string()), None),
        Err(e @ HostError::LoadFailed { platform: true, .. }) => {
            // The platform's trouble (the bundle store away, say): not the app's error.
            tracing::error!(app, error = %e, "runner cannot load the app");
            (
                503,
                error_body(&format!(
                    "this runner cannot load app '{app}' right now (the platform's failure, not the app's: {e}); it tries again at the next call, at most every 5 s"
                )),
                None,
            )
        }
        Err(e @ HostError::LoadFailed { .. }) => (500, error_body(&e.to_string()), None),
        Err(e @ HostError::Internal(_)) => {
            tracing::error!(app, error = %e, "runner error");
            (503, error_body("the runner cannot serve this app right now"), None)
        }
        Ok(host) => match host.call(payload, request_id).await {
            Ok(reply) => {
                let after = (!reply.actions.is_empty()).then_some((host, reply.actions));
                (200, reply.body, after)
            }
            Err(CallError::Exception { error, traceback }) => {
                tracing::warn!(app, request_id = %request_id, error = %clean(&error, MAX_LINE), traceback = %clean(&traceback, MAX_TRACEBACK), "execute raised");
                (500, error_body(&error), None)
            }
            Err(CallError::Timeout(limit)) => (
                504,
                error_body(&format!(
                    "app '{app}' did not answer within its time limit of {} s; the call was stopped",
                    limit.as_secs_f64()
                )),
                None,
            ),
            Err(CallError::TimeoutAfterWait { limit, waited }) => (
                504,
                error_body(&format!(
                    "app '{app}' did not answer within its time limit of {} s, {:.1} s of which it waited for a free worker (all were busy with other calls); the call was stopped",
                    limit.as_secs_f64(),
                    waited.as_secs_f64()
                )),
                None,
            ),
            Err(CallError::NoWorker {
                limit,
                workers,
                starting,
            }) => {
                tracing::warn!(app, request_id = %request_id, workers, starting, "no free worker within the call's time limit; the call did not run");
                let why = if starting {
                    "a worker was still being started for it".to_owned()
                } else {
                    format!(
                        "its {workers} worker{} on this runner were busy with other calls",
                        if workers == 1 { "" } else { "s" }
                    )
                };
                (
                    503,
                    error_body(&format!(
                        "app '{app}' had no free worker within its time limit of {} s ({why}); the call did not run: retry later, or add workers (NR_RUNNER_POOL) or runners",
                        limit.as_secs_f64(),
                    )),
                    None,
                )
            }
            Err(CallError::Crashed(message)) => {
                tracing::error!(app, request_id = %request_id, "{}", clean(&message, MAX_LINE));
                (502, error_body(&message), None)
            }
            Err(CallError::CpuLimit(message)) => (500, error_body(&message), None),
            Err(CallError::Cancelled) => (503, error_body("the call was cancelled"), None),
            Err(CallError::Unavailable(message)) => {
                tracing::error!(app, request_id = %request_id, "{}", clean(&message, MAX_LINE));
                (503, error_body(&message), None)
            }
        },
    };
    let (status, body) = fit_reply(app, status, body, inner.nats.server_info().max_payload);
    nr_telemetry::metrics().app_call(app, status, started.elapsed());
    (status, body, after)
}

/// This runner as seen by a gateway in the same process: calls arrive in memory,
/// with no bus hop and no signature (the caller is this process), and run on the
/// runner's call tracker, so a draining runner waits for them and a caller that goes
/// away does not stop a call half-way through a worker.
pub(crate) struct Local {
    pub(crate) inner: Arc<Inner>,
    pub(crate) intake: CancellationToken,
}

impl nr_infra::local_call::LocalRunner for Local {
    fn call(
        &self,
        app: &str,
        min_rev: u64,
        request_id: &str,
        body: bytes::Bytes,
    ) -> Option<BoxFuture<'static, Option<nr_infra::local_call::Answer>>> {
        if self.intake.is_cancelled() {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        let inner = self.inner.clone();
        let (app, request_id) = (app.to_owned(), request_id.to_owned());
        let span = tracing::info_span!("exec", app = %app, request_id = %request_id);
        self.inner.calls.spawn(tracing::Instrument::instrument(
            async move {
                let (status, body, after) = answer(&inner, &app, min_rev, &request_id, &body).await;
                let _ = tx.send((status, bytes::Bytes::from(body)));
                if let Some((host, actions)) = after {
                    publish_actions(
                        &inner,
                        &app,
                        &host.manifest,
                        actions,
                        Some(request_id),
                        None,
                    )
                    .await;
                }
            },
            span,
        ));
        Some(Box::pin(async move { rx.await.ok() }))
    }
}

/// `_actions` one call or job may fire; the rest are dropped with a warning. Each one is
/// a message `NR_ACTIONS` keeps for seven days, on the JetStream storage every stream
/// shares: unbounded, one app's calls could fill it.
pub(crate) const MAX_ACTIONS: usize = 100;
/// Bytes of payload (as JSON) one call's or job's `_actions` may carry together.
pub(crate) const MAX_ACTION_BYTES: usize = 256 * 1024;

/// The first of `actions` within [`MAX_ACTIONS`] and [`MAX_ACTION_BYTES`], in order, and
/// how many were dropped.
fn within_bounds(actions: Vec<FiredAction>) -> (Vec<FiredAction>, usize) {
    let total = actions.len();
    let mut bytes = 0usize;
    let kept: Vec<FiredAction> = actions
        .into_iter()
        .take(MAX_ACTIONS)
        .take_while(|a| {
            bytes = bytes.saturating_add(json_len(&a.payload));
            bytes <= MAX_ACTION_BYTES
        })
        .collect();
    let dropped = total - kept.len();
    (kept, dropped)
}

/// The length of `value` as JSON, counted without building the text.
fn json_len(value: &serde_json::Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a Value to a sink that never fails cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// Publishes each `_actions` entry to `action.triggered.<app>.<name>`, after the reply:
/// at most [`MAX_ACTIONS`] of them, carrying [`MAX_ACTION_BYTES`] of payload together.
pub(crate) async fn publish_actions(
    inner: &Inner,
    app: &str,
    manifest: &nr_contracts::manifest::RuntimeManifest,
    actions: Vec<FiredAction>,
    request_id: Option<String>,
    job_id: Option<String>,
) {
    let (actions, dropped) = within_bounds(actions);
    if dropped > 0 {
        tracing::warn!(
            app,
            request_id = request_id.as_deref().unwrap_or_default(),
            job_id = job_id.as_deref().unwrap_or_default(),
            published = actions.len(),
            dropped,
            "the app fired more _actions than one call may ({MAX_ACTIONS}, {} KiB of payload in all); the rest were dropped",
            MAX_ACTION_BYTES / 1024
        );
    }
    for action in actions {
        if !subjects::is_subject_token(&action.name) {
            tracing::warn!(app, action = %action.name, "action name is not a valid slug; not published");
            continue;
        }
        let declared = manifest.actions.iter().any(|a| a.name == action.name);
        if !declared {
            tracing::warn!(app, action = %action.name, "app fired an action its manifest does not declare; published anyway, but nobody can subscribe to it");
        }
        let event = Envelope::new(
            ACTION_TRIGGERED,
            &inner.id,
            ActionTriggered {
                app_name: app.to_owned(),
                action_name: action.name.clone(),
                payload: action.payload,
                declared,
                request_id: request_id.clone().filter(|r| !r.is_empty()),
                job_id: job_id.clone(),
            },
        );
        let subject = subjects::action_triggered(app, &action.name);
        if let Err(e) = nr_infra::bus::publish_event(&inner.js, &subject, &event, None).await {
            tracing::warn!(app, action = %action.name, error = %e, "cannot publish action");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn fired(n: usize, payload: serde_json::Value) -> Vec<FiredAction> {
        (0..n)
            .map(|i| FiredAction {
                name: format!("a{i}"),
                payload: payload.clone(),
            })
            .collect()
    }

    #[test]
    fn a_call_fires_a_bounded_number_of_actions_with_bounded_payloads() {
        let (kept, dropped) = within_bounds(fired(3, serde_json::json!({"x": 1})));
        assert_eq!((kept.len(), dropped), (3, 0));
        let (kept, dropped) = within_bounds(fired(MAX_ACTIONS + 50, serde_json::Value::Null));
        assert_eq!((kept.len(), dropped), (MAX_ACTIONS, 50));
        assert_eq!(kept[0].name, "a0", "the first ones are kept");
        // 100 KiB each: two fit in 256 KiB, the third does not.
        let big = serde_json::Value::String("y".repeat(100 * 1024));
        let (kept, dropped) = within_bounds(fired(5, big));
        assert_eq!((kept.len(), dropped), (2, 3));
    }
}

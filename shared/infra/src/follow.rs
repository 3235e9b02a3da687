//! Reading a stream in order into a projection whose position lives in Postgres.
//!
//! A projection stores the last stream sequence it applied in the same transaction as
//! the rows it writes. [`from_offset`] starts an ordered (ephemeral) consumer right after
//! that offset, so a fresh or restored database is caught up from the log at start and
//! no position that matters lives in NATS. A message whose handler fails is retried, in
//! order, until it succeeds or the follower stops: a projection never skips ahead of an
//! event it could not apply (Postgres down, say); a handler that wants to skip an event
//! it can never apply says so by returning `Ok`.

use std::future::Future;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

/// What to follow.
pub struct Follow<'a> {
    pub stream: &'a str,
    /// Only these subjects (`None`: the whole stream).
    pub filter: Option<&'a str>,
    /// The last sequence already applied; delivery starts right after it.
    pub applied: u64,
    /// Names the follower in logs.
    pub name: &'static str,
}

/// The stream's last sequence now: what a follower must reach to be caught up.
pub async fn last_sequence(js: &jetstream::Context, stream: &str) -> anyhow::Result<u64> {
    let mut s = js
        .get_stream(stream)
        .await
        .with_context(|| format!("cannot open stream {stream}"))?;
    let info = s
        .info()
        .await
        .with_context(|| format!("cannot read the state of stream {stream}"))?;
    Ok(info.state.last_sequence)
}

/// Starts following; `handle(seq, payload)` is called for each message in stream order.
pub async fn from_offset<F, Fut>(
    js: &jetstream::Context,
    follow: Follow<'_>,
    stop: CancellationToken,
    mut handle: F,
) -> anyhow::Result<()>
where
    F: FnMut(u64, bytes::Bytes) -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let name = follow.name;
    let stream = follow.stream.to_owned();
    let deliver_policy = if follow.applied == 0 {
        consumer::DeliverPolicy::All
    } else {
        consumer::DeliverPolicy::ByStartSequence {
            start_sequence: follow.applied + 1,
        }
    };
    let consumer = js
        .get_stream(&stream)
        .await
        .with_context(|| format!("cannot open stream {stream}"))?
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: follow.filter.unwrap_or_default().into(),
            deliver_policy,
            ..Default::default()
        })
        .await
        .with_context(|| format!("cannot create a consumer on {stream}"))?;
    let mut messages = consumer
        .messages()
        .await
        .with_context(|| format!("cannot read {stream}"))?;
    tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                _ = stop.cancelled() => break,
                n = messages.next() => n,
            };
            let msg = match next {
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    tracing::warn!(follower = name, stream = %stream, error = %e, "stream read failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                None => break,
            };
            let Ok(info) = msg.info() else { continue };
            let seq = info.stream_sequence;
            let mut backoff = Duration::from_millis(100);
            loop {
                match handle(seq, msg.payload.clone()).await {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::error!(follower = name, seq, error = %e, "cannot apply event; retrying");
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        }
    });
    Ok(())
}

/// Waits until `applied()` reaches `target`, logging progress; gives up after `limit`
/// (the follower goes on in the background). Returns whether it caught up.
pub async fn wait_caught_up<F, Fut>(
    name: &str,
    target: u64,
    limit: Duration,
    mut applied: F,
) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<u64>>,
{
    let start = tokio::time::Instant::now();
    let mut last_log = start;
    loop {
        match applied().await {
            Ok(seq) if seq >= target => return true,
            Ok(seq) => {
                if last_log.elapsed() >= Duration::from_secs(2) {
                    tracing::info!(
                        projection = name,
                        applied = seq,
                        target,
                        "catching up from the event log"
                    );
                    last_log = tokio::time::Instant::now();
                }
            }
            Err(e) => {
                tracing::warn!(projection = name, error = %e, "cannot read the projection offset")
            }
        }
        if start.elapsed() >= limit {
            tracing::warn!(
                projection = name,
                target,
                "not caught up with the event log yet; going on in the background"
            );
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

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

use crate::consume::{consume, Order};
use crate::drain::Drain;

/// What to follow.
pub struct Follow<'a> {
    pub stream: &'a str,
    /// Only these subjects (`None`: the whole stream).
    pub filter: Option<&'a str>,
    /// The last sequence already applied; delivery starts right after it.
    pub applied: u64,
    /// Names the follower in logs.
    pub name: &'static str,
    /// Where the projection asks to be read again from (see [`Replay`]), if it can ask.
    pub replay: Option<Replay>,
}

/// A projection's request to read its stream again after a sequence: its database went
/// back under it (a dump restored while it ran), and what the dump lacks is read again.
/// Set by the projection's handler, taken by the follower before its next read.
#[derive(Clone, Default)]
pub struct Replay(std::sync::Arc<std::sync::Mutex<Option<u64>>>);

impl Replay {
    /// Asks for the stream again right after `after`.
    pub fn from_after(&self, after: u64) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(after);
    }

    fn take(&self) -> Option<u64> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
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

/// An ordered read of a stream that survives NATS going away: when the server restarts
/// its ephemeral consumer is gone, so on a read error (or the end of the message stream)
/// the consumer is created again right after the last sequence delivered. No message is
/// skipped and none is delivered twice. The client connecting again is enough: the
/// consumer is made again at once, rather than after the missed idle heartbeats (15 s
/// each) by which the client's ordered consumer finds out on its own.
pub struct Resumable {
    js: jetstream::Context,
    stream: String,
    filter: String,
    /// Where the first consumer starts; later ones start after `last`.
    initial: consumer::DeliverPolicy,
    last: u64,
    messages: Option<consumer::pull::Ordered>,
    name: &'static str,
    /// How often the client's count of connections is looked at, and the count when
    /// the current consumer was made.
    watch: tokio::time::Interval,
    connects: u64,
    replay: Option<Replay>,
}

/// How often a follower looks at its client's count of connections.
const CONNECTION_POLL: Duration = Duration::from_millis(250);

impl Resumable {
    /// Opens the first consumer (its errors are returned: a service that cannot follow
    /// at start does not start).
    pub async fn open(
        js: jetstream::Context,
        stream: &str,
        filter: Option<&str>,
        initial: consumer::DeliverPolicy,
        name: &'static str,
    ) -> anyhow::Result<Resumable> {
        let mut r = Resumable {
            js,
            stream: stream.to_owned(),
            filter: filter.unwrap_or_default().to_owned(),
            initial,
            last: 0,
            messages: None,
            name,
            watch: tokio::time::interval(CONNECTION_POLL),
            connects: 0,
            replay: None,
        };
        r.watch
            .set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        if matches!(r.initial, consumer::DeliverPolicy::New) {
            // "From now on" pinned to a sequence, so a consumer made again after an
            // outage still starts where this one did.
            r.last = last_sequence(&r.js, stream).await?;
            r.initial = consumer::DeliverPolicy::ByStartSequence {
                start_sequence: r.last + 1,
            };
        } else if let consumer::DeliverPolicy::ByStartSequence { start_sequence } = r.initial {
            r.last = start_sequence.saturating_sub(1);
        }
        r.connects = r.connect_count();
        r.messages = Some(Self::create(r.plan()).await?);
        Ok(r)
    }

    /// How many times the client has connected (the first time included): a consumer
    /// made before the last connection may be gone with the server it was on.
    fn connect_count(&self) -> u64 {
        self.js
            .client()
            .statistics()
            .connects
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// What the next consumer is made of (owned: `self` holds a stream that is not
    /// `Sync`, so it is not borrowed across the await).
    fn plan(&self) -> (jetstream::Context, String, String, consumer::DeliverPolicy) {
        let deliver_policy = if self.last == 0 {
            self.initial
        } else {
            consumer::DeliverPolicy::ByStartSequence {
                start_sequence: self.last + 1,
            }
        };
        (
            self.js.clone(),
            self.stream.clone(),
            self.filter.clone(),
            deliver_policy,
        )
    }

    async fn create(
        (js, stream, filter_subject, deliver_policy): (
            jetstream::Context,
            String,
            String,
            consumer::DeliverPolicy,
        ),
    ) -> anyhow::Result<consumer::pull::Ordered> {
        js.get_stream(&stream)
            .await
            .with_context(|| format!("cannot open stream {stream}"))?
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject,
                deliver_policy,
                ..Default::default()
            })
            .await
            .with_context(|| format!("cannot create a consumer on {stream}"))?
            .messages()
            .await
            .with_context(|| format!("cannot read {stream}"))
    }

    /// The next message in stream order; `None` once `stop` is cancelled.
    pub async fn next(&mut self, stop: &CancellationToken) -> Option<jetstream::Message> {
        let mut backoff = Duration::from_millis(100);
        loop {
            if let Some(after) = self.replay.as_ref().and_then(Replay::take) {
                tracing::warn!(follower = self.name, stream = %self.stream, after, "reading the stream again after {after}, as the projection asked");
                self.last = after;
                if after == 0 {
                    self.initial = consumer::DeliverPolicy::All;
                }
                self.messages = None;
            }
            let Some(messages) = self.messages.as_mut() else {
                let connects = self.connect_count();
                match Self::create(self.plan()).await {
                    Ok(m) => {
                        tracing::info!(follower = self.name, stream = %self.stream, after = self.last, "reading the stream again");
                        self.messages = Some(m);
                        self.connects = connects;
                    }
                    Err(e) => {
                        tracing::warn!(follower = self.name, stream = %self.stream, error = %format!("{e:#}"), "cannot read the stream yet; retrying");
                        tokio::select! {
                            _ = stop.cancelled() => return None,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                    }
                }
                continue;
            };
            let next = tokio::select! {
                _ = stop.cancelled() => return None,
                n = messages.next() => n,
                _ = self.watch.tick() => {
                    if self.connect_count() != self.connects {
                        // Connected again since the consumer was made: a server that
                        // restarted lost it. Make it again now.
                        tracing::info!(follower = self.name, stream = %self.stream, after = self.last, "connected again; reading the stream again");
                        self.messages = None;
                    }
                    continue;
                }
            };
            match next {
                Some(Ok(msg)) => {
                    if let Ok(info) = msg.info() {
                        // The client's ordered consumer, reset before its first
                        // message, starts over from the stream's beginning: what was
                        // delivered (or lies before the start) is not delivered again.
                        if info.stream_sequence <= self.last {
                            continue;
                        }
                        self.last = info.stream_sequence;
                    }
                    return Some(msg);
                }
                Some(Err(e)) => {
                    tracing::warn!(follower = self.name, stream = %self.stream, error = %e, "stream read failed; reading again after the last message");
                    self.messages = None;
                }
                None => self.messages = None,
            }
        }
    }
}

impl Resumable {
    /// The messages as a stream that ends once `stop` is cancelled, for
    /// [`crate::consume::consume`].
    pub fn into_stream(
        self,
        stop: CancellationToken,
    ) -> impl futures::Stream<Item = jetstream::Message> + Send {
        futures::stream::unfold((self, stop), |(mut r, stop)| async move {
            let msg = r.next(&stop).await?;
            Some((msg, (r, stop)))
        })
    }
}

/// Starts following; `handle(seq, payload)` is called for each message in stream order.
pub async fn from_offset<F, Fut>(
    js: &jetstream::Context,
    follow: Follow<'_>,
    stop: CancellationToken,
    handle: F,
) -> anyhow::Result<()>
where
    F: FnMut(u64, bytes::Bytes) -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let name = follow.name;
    let stream = follow.stream.to_owned();
    if let Ok(last) = last_sequence(js, &stream).await {
        if follow.applied > last {
            // The events written from now on get sequences at or below the offset and
            // would be taken as applied: say so, loudly, at every start.
            tracing::error!(
                projection = name,
                stream = %stream,
                applied = follow.applied,
                stream_ends_at = last,
                "the database has applied more of this stream than the stream holds: NATS's store was lost or restored from an older backup. New events will not be applied; restore the stream from its backup (docs/operations.md, \"Projections are rebuilt from the log\")"
            );
        }
    }
    let deliver_policy = if follow.applied == 0 {
        consumer::DeliverPolicy::All
    } else {
        consumer::DeliverPolicy::ByStartSequence {
            start_sequence: follow.applied + 1,
        }
    };
    let mut messages =
        Resumable::open(js.clone(), &stream, follow.filter, deliver_policy, name).await?;
    messages.replay = follow.replay;
    // In order, and a failed event is retried until it applies: the next one waits.
    let drain = Drain::from_token(stop.clone());
    let handle = std::sync::Arc::new(tokio::sync::Mutex::new(handle));
    consume(
        name,
        messages.into_stream(stop.clone()),
        &drain,
        Order::InOrder,
        move |msg| {
            let (handle, stop) = (handle.clone(), stop.clone());
            async move {
                let Ok(info) = msg.info() else { return Ok(()) };
                let seq = info.stream_sequence;
                let mut handle = handle.lock().await;
                let mut backoff = Duration::from_millis(100);
                loop {
                    match (*handle)(seq, msg.payload.clone()).await {
                        Ok(()) => return Ok(()),
                        Err(e) => {
                            tracing::error!(follower = name, seq, error = %e, "cannot apply event; retrying");
                            tokio::select! {
                                _ = stop.cancelled() => return Ok(()),
                                _ = tokio::time::sleep(backoff) => {}
                            }
                            backoff = (backoff * 2).min(Duration::from_secs(5));
                        }
                    }
                }
            }
        },
    );
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

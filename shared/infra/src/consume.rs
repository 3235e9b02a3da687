//! The one consumer loop: every subscription a service reads (core NATS, a JetStream
//! message stream, any `Stream`) goes through [`consume`] instead of a `select!` loop
//! written by hand.
//!
//! The loop owns what every consumer needs and nobody should write twice:
//!
//! - it stops taking messages when the [`Drain`]'s token is cancelled, and the
//!   handlers in flight finish (they run on the drain's tracker, and so does the loop:
//!   [`Drain::finish`] waits for both);
//! - a handler that fails is logged with the consumer's name and counted
//!   (`nr_bus_handler_errors_total{consumer}`); one that panics is logged and counted
//!   the same way, and the loop goes on;
//! - the loop ends cleanly when the stream ends. A core NATS subscription survives a
//!   reconnect (the client subscribes again by itself), so it only ends when the
//!   client is closed; a reader that must resume after a broken stream wraps it
//!   (`follow::Resumable`) and hands the wrapper here.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::{FutureExt as _, Stream, StreamExt as _};

use crate::drain::Drain;

/// How messages are handed to the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// One at a time, in the order they arrive: the next waits for the handler.
    InOrder,
    /// Each on its own task, as soon as it arrives.
    Concurrent,
}

/// Reads `messages` until the drain stops or the stream ends, handing each to
/// `handler`. Returns at once; the loop runs on the drain's tracker.
pub fn consume<S, T, F, Fut>(
    name: &'static str,
    messages: S,
    drain: &Drain,
    order: Order,
    mut handler: F,
) where
    S: Stream<Item = T> + Send + 'static,
    T: Send + 'static,
    F: FnMut(T) -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let stop = drain.token().clone();
    let tracker = drain.tracker().clone();
    drain.tracker().spawn(async move {
        let mut messages = std::pin::pin!(messages);
        loop {
            let next = tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                n = messages.next() => n,
            };
            let Some(item) = next else {
                tracing::debug!(consumer = name, "subscription ended");
                break;
            };
            let handled = run(name, handler(item));
            match order {
                Order::InOrder => handled.await,
                Order::Concurrent => {
                    tracker.spawn(handled);
                }
            }
        }
    });
}

/// Runs one handler, logging and counting its failure or panic.
async fn run<Fut>(name: &'static str, handled: Fut)
where
    Fut: Future<Output = anyhow::Result<()>>,
{
    match AssertUnwindSafe(handled).catch_unwind().await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(consumer = name, error = %format!("{e:#}"), "message handler failed");
            nr_telemetry::metrics().bus_handler_error(name);
        }
        Err(_) => {
            tracing::error!(
                consumer = name,
                "message handler panicked; the consumer goes on"
            );
            nr_telemetry::metrics().bus_handler_error(name);
        }
    }
}

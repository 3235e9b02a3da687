//! Heartbeats on `runner.alive` naming the bus calls this runner holds
//! (`nr_contracts::alive`), so a gateway whose call was taken by a runner that died
//! answers within seconds instead of waiting out the call's time limit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nr_contracts::subjects;
use tokio_util::sync::CancellationToken;

use crate::Inner;

/// How often a runner beats. A gateway judges a runner gone after several beats missed.
pub(crate) const BEAT: Duration = Duration::from_secs(1);

/// The request ids of the bus calls in flight on this runner.
#[derive(Default)]
pub(crate) struct Held {
    next: AtomicU64,
    calls: Mutex<HashMap<u64, String>>,
}

/// One call held; dropping it (the reply sent, or the call abandoned) lets it go.
pub(crate) struct Holding<'a> {
    held: &'a Held,
    id: u64,
}

impl Held {
    pub(crate) fn hold(&self, request_id: &str) -> Holding<'_> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, request_id.to_owned());
        Holding { held: self, id }
    }

    fn keys(&self) -> Vec<String> {
        self.lock().values().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, String>> {
        // A poisoned map still holds whole entries (inserts and removals cannot half-happen).
        self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Holding<'_> {
    fn drop(&mut self) {
        self.held.lock().remove(&self.id);
    }
}

/// Beats until `stop`: through a drain too, since calls still finishing are held.
pub(crate) fn start(inner: Arc<Inner>, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(BEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            let keys = inner.held.keys();
            for msg in nr_contracts::alive::encode(&inner.id, keys.iter().map(String::as_str)) {
                if let Err(e) = inner.nats.publish(subjects::RUNNER_ALIVE, msg.into()).await {
                    tracing::debug!(error = %e, "cannot send a heartbeat");
                    break;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_is_held_until_its_guard_drops() {
        let held = Held::default();
        let a = held.hold("a");
        {
            let _b = held.hold("b");
            let mut keys = held.keys();
            keys.sort();
            assert_eq!(keys, ["a", "b"]);
        }
        assert_eq!(held.keys(), ["a"]);
        drop(a);
        assert!(held.keys().is_empty());
    }

    #[test]
    fn the_same_request_id_twice_is_held_twice() {
        let held = Held::default();
        let _a = held.hold("x");
        let b = held.hold("x");
        drop(b);
        assert_eq!(held.keys(), ["x"]);
    }
}

//! Which runners are alive and which bus calls each holds, from their heartbeats on
//! `runner.alive` (`nr_contracts::alive`). A call whose runner died is answered 502
//! within seconds, instead of after its whole time limit; so is one whose runner let it
//! go without its reply arriving (lost on the way).
//!
//! The rules, for a call sent at `sent` and unanswered:
//! - named by a runner that has been silent for [`STALE`]: the runner is gone;
//! - named before, its runner still beating, but not named for [`STALE`]: the runner
//!   finished it and the reply was lost;
//! - never named, while a runner that was beating when it was sent has since been
//!   silent for [`STALE`]: it was taken by that runner before its next beat.
//!
//! Nothing is judged before [`GRACE`], nor for a call whose time limit is shorter. A
//! runner of a release without heartbeats never names a call and never beats, so its
//! calls wait out their time limit as before.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use nr_contracts::subjects;
use tokio_util::sync::CancellationToken;

/// A call is first judged this long after it was sent (runners beat every second).
pub(crate) const GRACE: Duration = Duration::from_secs(3);
/// A runner silent this long is gone; a call not named this long is no longer held.
pub(crate) const STALE: Duration = Duration::from_secs(5);
/// How often a call waiting past [`GRACE`] is judged again.
const CHECK: Duration = Duration::from_millis(500);
/// A runner beating within this much before a call was sent may have taken it.
const TOOK: Duration = Duration::from_secs(2);
/// Runners and calls not heard of for this long are forgotten.
const FORGET: Duration = Duration::from_secs(60);

/// Why a call will not be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lost {
    /// The runner that held it stopped beating.
    RunnerGone,
    /// The runner let it go, and no reply came.
    ReplyLost,
}

#[derive(Default)]
pub(crate) struct Runners {
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    /// Runner id -> its last beat.
    runners: HashMap<String, Instant>,
    /// Request id -> the runner that last named it, and when.
    calls: HashMap<String, (String, Instant)>,
    swept: Option<Instant>,
}

impl Runners {
    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        // A poisoned map still holds whole entries.
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records one heartbeat received at `now`.
    pub(crate) fn beat(&self, payload: &[u8], now: Instant) {
        let Some((runner, keys)) = nr_contracts::alive::decode(payload) else {
            return;
        };
        let mut seen = self.lock();
        seen.runners.insert(runner.to_owned(), now);
        for key in keys {
            match seen.calls.get_mut(key) {
                Some(entry) => {
                    if entry.0 != runner {
                        runner.clone_into(&mut entry.0);
                    }
                    entry.1 = now;
                }
                None => {
                    seen.calls.insert(key.to_owned(), (runner.to_owned(), now));
                }
            }
        }
        if seen.swept.is_none_or(|t| now.duration_since(t) > FORGET) {
            seen.runners.retain(|_, t| now.duration_since(*t) <= FORGET);
            seen.calls
                .retain(|_, (_, t)| now.duration_since(*t) <= FORGET);
            seen.swept = Some(now);
        }
    }

    /// The runners beating within [`STALE`] of `now`.
    pub(crate) fn live(&self, now: Instant) -> std::collections::HashSet<String> {
        self.lock()
            .runners
            .iter()
            .filter(|(_, t)| now.saturating_duration_since(**t) <= STALE)
            .map(|(r, _)| r.clone())
            .collect()
    }

    /// Whether the call `key`, sent at `sent`, can still be answered at `now`.
    pub(crate) fn verdict(&self, key: &str, sent: Instant, now: Instant) -> Option<Lost> {
        let seen = self.lock();
        let silent = |t: Instant| now.saturating_duration_since(t) > STALE;
        if let Some((runner, named)) = seen.calls.get(key).filter(|(_, t)| *t >= sent) {
            return match seen.runners.get(runner) {
                Some(beat) if silent(*beat) => Some(Lost::RunnerGone),
                Some(_) if silent(*named) => Some(Lost::ReplyLost),
                Some(_) => None,
                None => Some(Lost::RunnerGone),
            };
        }
        let taken_by_a_dead_runner = seen
            .runners
            .values()
            .any(|beat| *beat + TOOK >= sent && silent(*beat));
        taken_by_a_dead_runner.then_some(Lost::RunnerGone)
    }

    /// Resolves when the call `key`, sent at `sent`, will not be answered.
    pub(crate) async fn lost(&self, key: &str, sent: Instant) -> Lost {
        tokio::time::sleep_until((sent + GRACE).into()).await;
        loop {
            if let Some(why) = self.verdict(key, sent, Instant::now()) {
                return why;
            }
            tokio::time::sleep(CHECK).await;
        }
    }
}

/// Follows the runners' heartbeats until `stop`.
pub(crate) async fn follow(
    nats: &async_nats::Client,
    runners: Arc<Runners>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let sub = nats
        .subscribe(subjects::RUNNER_ALIVE)
        .await
        .map_err(|e| anyhow::anyhow!("cannot subscribe to {}: {e}", subjects::RUNNER_ALIVE))?;
    // The subscription ends with the stream (dropping it unsubscribes).
    let beats = sub.take_until(stop.cancelled_owned());
    tokio::spawn(async move {
        tokio::pin!(beats);
        while let Some(msg) = beats.next().await {
            runners.beat(&msg.payload, Instant::now());
        }
    });
    Ok(())
}

#[cfg(test)]
#[path = "alive_tests.rs"]
mod tests;

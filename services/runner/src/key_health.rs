//! Whether this runner's `RUNNER_SECRET` agrees with the gateways'. Only gateways may
//! publish runner requests (the bus's permissions), so a request whose signature does
//! not verify, or whose timestamp is out of the window, comes from a gateway with
//! another key or another clock. A runner that refuses requests for that reason and
//! accepts none says so in its readiness, where an operator's probe sees it; the
//! gateway sends a call such a runner refused to another runner.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nr_auth::signing::SigError;

/// How far back refusals and acceptances count.
const WINDOW: Duration = Duration::from_secs(300);

pub(crate) struct KeyHealth {
    start: Instant,
    /// Milliseconds since `start` of the last accepted request (0: none), set by every
    /// call: one relaxed store.
    accepted_ms: AtomicU64,
    /// The last refusal for the key or the clock: when and why, and how many within
    /// [`WINDOW`] of each other.
    refused: Mutex<Option<(Instant, SigError, u64)>>,
}

impl Default for KeyHealth {
    fn default() -> Self {
        KeyHealth {
            start: Instant::now(),
            accepted_ms: AtomicU64::new(0),
            refused: Mutex::new(None),
        }
    }
}

impl KeyHealth {
    pub(crate) fn accepted(&self) {
        let ms = self.start.elapsed().as_millis().max(1);
        self.accepted_ms
            .store(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Counts a refused request; replays and unsigned requests say nothing of the key.
    pub(crate) fn refused(&self, why: &SigError) {
        if !matches!(why, SigError::Invalid | SigError::Stale) {
            return;
        }
        let mut last = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        let count = last
            .as_ref()
            .filter(|(at, _, _)| at.elapsed() <= WINDOW)
            .map_or(0, |(_, _, n)| *n);
        *last = Some((Instant::now(), why.clone(), count + 1));
    }

    /// What is wrong, when this runner refused requests for their signature lately and
    /// accepted none in that time.
    pub(crate) fn problem(&self) -> Option<String> {
        let last = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        let (at, why, count) = last.as_ref()?;
        if at.elapsed() > WINDOW {
            return None;
        }
        let accepted = self.accepted_ms.load(Ordering::Relaxed);
        let accepted_at = (accepted > 0).then(|| self.start + Duration::from_millis(accepted));
        if accepted_at.is_some_and(|a| a.elapsed() <= WINDOW) {
            return None;
        }
        let cause = match why {
            SigError::Stale => "this runner's clock is off from the gateways' by more than the signature window (run NTP on every machine)",
            _ => "this runner's RUNNER_SECRET differs from the gateways' (give every gateway and runner the same keys)",
        };
        Some(format!(
            "refused {count} runner request(s) in the last {} min and accepted none: {cause}; last refusal: {why}",
            WINDOW.as_secs() / 60
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_without_acceptance_make_a_problem_and_an_acceptance_clears_it() {
        let k = KeyHealth::default();
        assert!(k.problem().is_none());
        k.refused(&SigError::Replayed);
        k.refused(&SigError::Missing);
        assert!(k.problem().is_none(), "a replay says nothing of the key");
        k.refused(&SigError::Invalid);
        k.refused(&SigError::Invalid);
        let p = k.problem().unwrap_or_default();
        assert!(p.contains("refused 2 runner request(s)"), "{p}");
        assert!(p.contains("RUNNER_SECRET differs"), "{p}");
        k.accepted();
        assert!(k.problem().is_none());
        k.refused(&SigError::Stale);
        let p = k.problem().unwrap_or_default();
        assert!(p.is_empty(), "an acceptance within the window: {p}");
    }
}

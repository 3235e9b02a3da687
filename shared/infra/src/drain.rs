//! Stopping a service's background work: one token that says "stop taking new work"
//! and one tracker of the work in flight, so a service can wait for it to finish.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A stop signal and the tasks that must finish after it (consumer loops and the
/// handlers they started).
#[derive(Clone, Default)]
pub struct Drain {
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl Drain {
    pub fn new() -> Drain {
        Drain::default()
    }

    /// A drain that stops with a token the service already has (its shutdown, or a
    /// child of it).
    pub fn from_token(stop: CancellationToken) -> Drain {
        Drain {
            stop,
            tasks: TaskTracker::new(),
        }
    }

    /// Cancelled once the service stops taking new work.
    pub fn token(&self) -> &CancellationToken {
        &self.stop
    }

    /// Where work that must finish before the service exits is spawned.
    pub fn tracker(&self) -> &TaskTracker {
        &self.tasks
    }

    pub fn is_stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Stops taking work without waiting (a loop sees it at its next message).
    pub fn stop(&self) {
        self.stop.cancel();
        self.tasks.close();
    }

    /// Stops taking work and waits up to `limit` for the work in flight; false when
    /// some was still running at the limit (it goes on in the background).
    pub async fn finish(&self, limit: Duration) -> bool {
        self.stop();
        tokio::time::timeout(limit, self.tasks.wait()).await.is_ok()
    }
}

//! Sync calls between services of one process. When the gateway and a runner share
//! a process (`noderouter up`), the gateway hands a call to that runner in memory
//! instead of over NATS: the same runner code answers it (app lookup, worker pool,
//! time limit, reply size limit, `_actions` published after the reply), without
//! the bus round trip and the signatures that protect a call on the bus. Separate
//! services, and a platform started with `NR_BUS_CALLS=true`, use the bus.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;

/// What a runner answered: an HTTP status and a JSON body.
pub type Answer = (u16, Bytes);

/// A runner in this process that takes sync calls.
pub trait LocalRunner: Send + Sync {
    /// Starts a call of `app` (at least revision `min_rev`) with the JSON `body`. The
    /// call runs to its end even when the returned future is dropped (the caller went
    /// away), as a call received over the bus does. `None` when this runner no longer
    /// takes calls (it is draining): the caller then uses the bus.
    fn call(
        &self,
        app: &str,
        min_rev: u64,
        request_id: &str,
        body: Bytes,
    ) -> Option<BoxFuture<'static, Option<Answer>>>;
}

/// The runners of this process, taken in turn.
#[derive(Default, Clone)]
pub struct LocalRunners {
    runners: Arc<Vec<Arc<dyn LocalRunner>>>,
    next: Arc<AtomicUsize>,
}

impl LocalRunners {
    pub fn new(runners: Vec<Arc<dyn LocalRunner>>) -> Self {
        LocalRunners {
            runners: Arc::new(runners),
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.runners.is_empty()
    }

    /// Starts the call on the next runner that takes it; `None` when none does.
    pub fn call(
        &self,
        app: &str,
        min_rev: u64,
        request_id: &str,
        body: Bytes,
    ) -> Option<BoxFuture<'static, Option<Answer>>> {
        let n = self.runners.len();
        if n == 0 {
            return None;
        }
        let first = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n).find_map(|i| {
            self.runners[(first + i) % n].call(app, min_rev, request_id, body.clone())
        })
    }
}

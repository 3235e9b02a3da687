//! CPU an app burns outside its calls. A call is bounded by its time limit (the worker is
//! killed at the deadline) and by its soft CPU limit; a thread the app leaves running
//! after a call, or starts in its host at import, is bounded by neither. The runner's
//! one-second sweep reads the CPU clock of the host and of each idle worker: a worker
//! that used more than half a core between two sweeps with no call served in between,
//! or a host that spent that much in user code three sweeps in a row (once the app is
//! imported a host only forks, which is system time), is killed. The host's next call
//! loads the app again.

use std::collections::HashMap;
use std::time::Instant;

use nr_infra::contain;

use super::{AppHost, Worker};

/// Share of a core above which an idle process is burning CPU of its own.
const BUSY_SHARE: f64 = 0.5;
/// Sweeps in a row a host must be over [`BUSY_SHARE`] (forking many workers at once
/// can take a second).
const HOST_STREAK: u32 = 3;

#[derive(Default)]
pub(super) struct CpuWatch {
    /// The host's CPU clock at the last sweep, and how many sweeps in a row it was busy.
    host: Option<(Instant, u64)>,
    host_streak: u32,
    /// Each idle worker's calls served and CPU clock at the last sweep.
    idle: HashMap<i32, (Instant, u64, u64)>,
}

fn busy(since: Instant, before: u64, now: u64) -> bool {
    let secs = since.elapsed().as_secs_f64().max(0.5);
    now.saturating_sub(before) as f64 / contain::TICKS_PER_SECOND as f64 / secs > BUSY_SHARE
}

/// Removes from `items` and returns those `pick` selects (`Vec::extract_if`, which the
/// workspace's minimum Rust does not have yet).
fn take_where<T>(items: &mut Vec<T>, mut pick: impl FnMut(&T) -> bool) -> Vec<T> {
    let mut taken = Vec::new();
    let mut i = 0;
    while i < items.len() {
        if pick(&items[i]) {
            taken.push(items.swap_remove(i));
        } else {
            i += 1;
        }
    }
    taken
}

impl CpuWatch {
    /// Whether the idle worker `pid`, which has served `served` calls, burned CPU since
    /// the last sweep without serving one; records what it sees.
    fn idle_worker_burns(
        &self,
        seen: &mut HashMap<i32, (Instant, u64, u64)>,
        pid: i32,
        served: u64,
    ) -> bool {
        let Some((user, system)) = contain::cpu_ticks(pid) else {
            return false;
        };
        let ticks = user + system;
        let burns = matches!(
            self.idle.get(&pid),
            Some((at, before_served, before)) if *before_served == served && busy(*at, *before, ticks)
        );
        seen.insert(pid, (Instant::now(), served, ticks));
        burns
    }
}

impl AppHost {
    /// Kills the idle workers and the host that burn CPU outside any call.
    pub fn watch_cpu(&self) {
        let mut watch = self.cpu_watch.lock().unwrap_or_else(|p| p.into_inner());
        let mut seen = HashMap::new();
        let mut burning: Vec<Worker> = take_where(&mut self.lock_idle(), |w| {
            watch.idle_worker_burns(&mut seen, w.pid, w.served)
        });
        burning.extend(
            take_where(&mut self.lock_job_idle(), |(w, served)| {
                watch.idle_worker_burns(&mut seen, w.pid, u64::from(*served))
            })
            .into_iter()
            .map(|(w, _)| w),
        );
        watch.idle = seen;
        for w in burning {
            tracing::warn!(app = %self.app, pid = w.pid, "killing an idle worker that burns CPU outside any call (a thread the app left running)");
            self.kill_worker(&w);
        }
        let Some(host) = self.host_pid else { return };
        // User time only: forking workers costs the host system time, and forks come in
        // bursts under load; app code spinning is user time.
        let Some((ticks, _)) = contain::cpu_ticks(host) else {
            return;
        };
        let host_busy = matches!(watch.host, Some((at, before)) if busy(at, before, ticks));
        watch.host = Some((Instant::now(), ticks));
        watch.host_streak = if host_busy { watch.host_streak + 1 } else { 0 };
        if watch.host_streak >= HOST_STREAK {
            tracing::warn!(app = %self.app, pid = host, "killing the app's host: it burns CPU outside any call (a thread started at import?); the next call loads the app again");
            watch.host_streak = 0;
            contain::kill_tree(host, self.uid);
        }
    }
}

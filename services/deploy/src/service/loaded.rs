//! What the runners made of a published version: deploy follows their heartbeats
//! (`runner.alive`) to know which runners are live, waits for each one's report of
//! loading the revision it published (`runner.loaded.<app>`), and undoes a version a
//! runner could not load, so that the catalogue names what is served.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, Weak};
use std::time::{Duration, Instant};

use futures::StreamExt;
use nr_contracts::events::{AppChange, AppLoaded, AppUpdated};
use nr_contracts::{decode, subjects};
use tokio_util::sync::CancellationToken;

use super::{Actor, Inner};
use crate::findings::{finding, Finding, Refused};

/// A runner whose last heartbeat is older than this is not waited for (they beat once
/// a second).
const LIVE: Duration = Duration::from_secs(3);

/// The runners seen beating, with when.
#[derive(Default)]
pub(crate) struct Runners(Mutex<HashMap<String, Instant>>);

impl Runners {
    fn beat(&self, runner: &str) {
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        seen.retain(|_, at| at.elapsed() < LIVE * 10);
        seen.insert(runner.to_owned(), Instant::now());
    }

    fn live(&self) -> HashSet<String> {
        let seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        seen.iter()
            .filter(|(_, at)| at.elapsed() < LIVE)
            .map(|(r, _)| r.clone())
            .collect()
    }
}

/// Follows the runners' heartbeats until `stop`.
pub(crate) async fn follow_runners(
    nats: &async_nats::Client,
    inner: Weak<Inner>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let mut sub = nats
        .subscribe(subjects::RUNNER_ALIVE)
        .await
        .map_err(|e| anyhow::anyhow!("cannot subscribe to {}: {e}", subjects::RUNNER_ALIVE))?;
    tokio::spawn(async move {
        loop {
            let msg = tokio::select! {
                _ = stop.cancelled() => break,
                m = sub.next() => m,
            };
            let Some(msg) = msg else { break };
            let Some(inner) = inner.upgrade() else { break };
            let runner = nr_contracts::alive::decode(&msg.payload).map(|(r, _)| r.to_owned());
            if let Some(runner) = runner {
                inner.runners.beat(&runner);
            }
        }
    });
    Ok(())
}

/// The runners' reports on one published revision.
#[derive(Debug, Default)]
pub(crate) struct Loads {
    pub loaded: Vec<String>,
    /// The first runner that could not load it, and why.
    pub failed: Option<(String, String)>,
    /// Live runners that had not reported when the wait ended.
    pub pending: Vec<String>,
}

impl Loads {
    /// The warning naming the runners that did not report in time.
    pub fn pending_warning(&self, app: &str, version: &str, waited: Duration) -> Option<Finding> {
        (!self.pending.is_empty()).then(|| {
            finding(
                "deploy.load_pending",
                None,
                None,
                format!(
                    "{} did not report loading {app} {version} within {} s (NR_DEPLOY_LOAD_WAIT_S); \
                     a runner that cannot load it keeps serving the previous version and logs why",
                    self.pending.join(", "),
                    waited.as_secs_f64()
                ),
            )
        })
    }
}

/// Subscribed before the event is published, so that no report is missed.
pub(crate) struct LoadWatch(async_nats::Subscriber);

impl Inner {
    pub(super) async fn watch_loads(&self, app: &str) -> Result<LoadWatch, Refused> {
        let subject = subjects::runner_loaded(app);
        self.nats
            .subscribe(subject.clone())
            .await
            .map(LoadWatch)
            .map_err(|e| Refused::internal(format!("cannot subscribe to {subject}: {e}")))
    }

    /// Waits until every live runner reported on revision `rev`, one reported a
    /// failure, or `NR_DEPLOY_LOAD_WAIT_S` passed.
    pub(super) async fn wait_loads(&self, watch: LoadWatch, rev: u64) -> Loads {
        let LoadWatch(mut sub) = watch;
        let mut waiting = self.runners.live();
        let mut loads = Loads::default();
        let deadline = tokio::time::Instant::now() + self.config.load_wait();
        let mut recheck = tokio::time::interval(Duration::from_secs(1));
        recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !waiting.is_empty() {
            let msg = tokio::select! {
                m = tokio::time::timeout_at(deadline, sub.next()) => match m {
                    Ok(Some(msg)) => msg,
                    Ok(None) | Err(_) => break,
                },
                _ = recheck.tick() => {
                    // A runner that stopped beating (killed, stopped) is not waited for.
                    let live = self.runners.live();
                    waiting.retain(|r| live.contains(r));
                    continue;
                }
            };
            let Ok(report) = decode::<AppLoaded>(&msg.payload) else {
                tracing::warn!(subject = %msg.subject, "unreadable runner load report skipped");
                continue;
            };
            if report.rev < rev {
                continue;
            }
            waiting.remove(&report.runner);
            if report.rev > rev {
                // A later change of the app reached this runner first: it is no longer
                // this deploy's to judge.
                continue;
            }
            match report.error {
                Some(error) => {
                    loads.failed = Some((report.runner, error));
                    break;
                }
                None => loads.loaded.push(report.runner),
            }
        }
        let _ = sub.unsubscribe().await;
        loads.pending = waiting.into_iter().collect();
        loads.pending.sort();
        loads
    }

    /// Puts back what was current before the revision `rev` (`previous`), or deletes
    /// the app when nothing was, after `runner` could not load `failed`; the refusal
    /// says so.
    pub(super) async fn undo(
        &self,
        failed: &AppUpdated,
        rev: u64,
        previous: Option<AppUpdated>,
        actor: Actor,
        (runner, error): (String, String),
    ) -> Refused {
        let app = failed.app_name.clone();
        let version = failed.version.clone();
        let (event, outcome) = match previous.filter(|p| p.change != AppChange::Deleted) {
            Some(p) => {
                let outcome = format!(
                    "the change was undone and {app} {} keeps serving",
                    p.version
                );
                let event = AppUpdated {
                    change: AppChange::RolledBack,
                    previous_version: Some(version.clone()),
                    actor: actor.name,
                    actor_id: actor.id,
                    ..p
                };
                (event, outcome)
            }
            None => {
                let outcome = format!("the change was undone: {app} is not deployed");
                let event = AppUpdated {
                    change: AppChange::Deleted,
                    previous_version: Some(version.clone()),
                    actor: actor.name,
                    actor_id: actor.id,
                    ..failed.clone()
                };
                (event, outcome)
            }
        };
        let outcome = match self.publish(event, rev).await {
            Ok(undo_rev) => {
                tracing::warn!(app = %app, version = %version, rev, undo_rev, runner = %runner, "a runner could not load the new version; undone");
                outcome
            }
            Err(e) if e.status == 409 => {
                tracing::warn!(app = %app, version = %version, rev, runner = %runner, "a runner could not load the new version; another change of the app came first");
                format!("another change of {app} has been made since, and is current")
            }
            Err(e) => {
                tracing::error!(app = %app, version = %version, rev, error = %e.error, "a runner could not load the new version, and undoing it failed");
                format!("undoing it failed ({}), so {app} {version} stays current: deploy a corrected version", e.error)
            }
        };
        Refused::one(
            422,
            "runner.load",
            Some("main.py"),
            None,
            format!("runner {runner} could not load {app} {version}; {outcome}:\n{error}"),
        )
    }
}

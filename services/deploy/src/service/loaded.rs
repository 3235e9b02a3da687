//! What the runners made of a published version: deploy follows their heartbeats
//! (`runner.alive`) to know which runners are live, waits for each one's report of
//! loading the revision it published (`runner.loaded.<app>`), and undoes a version a
//! runner could not load, so that the catalogue names what is served.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use nr_contracts::events::{AppChange, AppLoaded, AppUpdated, LoadFault, Undone};
use nr_contracts::{decode, subjects};
use nr_infra::appenv;
use tokio_util::sync::CancellationToken;

use super::{Actor, Inner};
use crate::findings::{finding, Finding, Refused};

/// A runner whose last heartbeat is older than this is not waited for (they beat once
/// a second).
const LIVE: Duration = Duration::from_secs(3);

/// Long enough for every live runner to beat once (once a second, give or take).
const SETTLE: Duration = Duration::from_millis(1_500);

/// The runners seen beating, with when, and since when they are followed.
#[derive(Default)]
pub(crate) struct Runners(Mutex<HashMap<String, Instant>>, Mutex<Option<Instant>>);

impl Runners {
    /// Once the heartbeats have been followed for [`SETTLE`], every live runner has been
    /// seen: before that (a deploy service just started), a runner not seen yet may be
    /// live, and a deploy would answer without waiting for it, or say there is none.
    async fn settled(&self) {
        let since = *self.1.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(left) = since.and_then(|s| SETTLE.checked_sub(s.elapsed())) {
            tokio::time::sleep(left).await;
        }
    }

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
    runners: Arc<Runners>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let sub = nats
        .subscribe(subjects::RUNNER_ALIVE)
        .await
        .map_err(|e| anyhow::anyhow!("cannot subscribe to {}: {e}", subjects::RUNNER_ALIVE))?;
    *runners.1.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    // The subscription ends with the stream (dropping it unsubscribes).
    let beats = sub.take_until(stop.cancelled_owned());
    tokio::spawn(async move {
        tokio::pin!(beats);
        while let Some(msg) = beats.next().await {
            if let Some((runner, _)) = nr_contracts::alive::decode(&msg.payload) {
                runners.beat(runner);
            }
        }
    });
    Ok(())
}

/// The runners' reports on one published revision.
#[derive(Debug, Default)]
pub(crate) struct Loads {
    pub loaded: Vec<String>,
    /// The first runner whose load failed for the app's code, and why.
    pub failed: Option<(String, String)>,
    /// Runners whose load failed for the platform's reasons (they try again), and why.
    pub troubled: Vec<(String, String)>,
    /// Live runners that had not reported when the wait ended.
    pub pending: Vec<String>,
    /// No runner was live: nothing loaded it yet.
    pub no_runner: bool,
    /// A later change of the app was published during the wait.
    pub superseded: bool,
    /// How long the wait lasted.
    pub waited: Duration,
    /// The caller's wait, shorter than `NR_DEPLOY_LOAD_WAIT_S`, ended it.
    pub cut_by_caller: bool,
    /// Runners that stopped beating during the wait (stopped, killed, frozen).
    pub silent: Vec<String>,
}

impl Loads {
    /// Warnings naming the runners that could not load the version for the platform's
    /// reasons, and those that did not report in time.
    fn warnings(&self, app: &str, version: &str) -> Vec<Finding> {
        let mut out: Vec<Finding> = self
            .troubled
            .iter()
            .map(|(runner, error)| {
                finding(
                    "runner.load_failed",
                    None,
                    None,
                    format!(
                        "runner {runner} could not load {app} {version} for a reason of the platform's; \
                         it keeps serving the previous version and tries again at the next call:\n{error}"
                    ),
                )
            })
            .collect();
        if self.no_runner {
            out.push(finding(
                "deploy.no_runner",
                None,
                None,
                format!(
                    "no runner is running: {app} {version} is loaded (and its calls answered) \
                     once one starts"
                ),
            ));
        }
        if self.superseded {
            out.push(finding(
                "deploy.superseded",
                None,
                None,
                format!(
                    "another change of {app} was made while the runners loaded {version}; \
                     that one is current now"
                ),
            ));
        }
        if !self.silent.is_empty() {
            out.push(finding(
                "deploy.load_pending",
                None,
                None,
                format!(
                    "{} stopped sending heartbeats while the runners loaded {app} {version} (stopped, killed or frozen): \
                     a runner that comes back loads it at its next call",
                    self.silent.join(", ")
                ),
            ));
        }
        if !self.pending.is_empty() {
            out.push(finding(
                "deploy.load_pending",
                None,
                None,
                format!(
                    "{} did not report loading {app} {version} within {:.1} s ({}); \
                     a runner that cannot load it keeps serving the previous version and logs why",
                    self.pending.join(", "),
                    self.waited.as_secs_f64(),
                    if self.cut_by_caller {
                        "the caller's NR_DEPLOY_TIMEOUT_S"
                    } else {
                        "NR_DEPLOY_LOAD_WAIT_S"
                    }
                ),
            ));
        }
        out
    }
}

/// Subscribed before the event is published, so that no report is missed.
pub(crate) struct LoadWatch(async_nats::Subscriber);

impl Inner {
    /// `None` when deploy does not wait for the runners (`NR_DEPLOY_LOAD_WAIT_S=0`).
    pub(super) async fn watch_loads(&self, app: &str) -> Result<Option<LoadWatch>, Refused> {
        if self.config.load_wait().is_zero() {
            return Ok(None);
        }
        let subject = subjects::runner_loaded(app);
        self.nats
            .subscribe(subject.clone())
            .await
            .map(|s| Some(LoadWatch(s)))
            .map_err(|e| Refused::internal(format!("cannot subscribe to {subject}: {e}")))
    }

    /// Waits until every live runner reported on revision `rev` of `app`, one reported a
    /// failure of the app's code, a later change of the app was published, or
    /// `NR_DEPLOY_LOAD_WAIT_S` or the caller's wait (`answer_by`) passed.
    pub(super) async fn wait_loads(
        &self,
        watch: LoadWatch,
        app: &str,
        rev: u64,
        answer_by: Option<tokio::time::Instant>,
    ) -> Loads {
        let LoadWatch(mut sub) = watch;
        self.runners.settled().await;
        let mut waiting = self.runners.live();
        let mut loads = Loads {
            no_runner: waiting.is_empty(),
            ..Loads::default()
        };
        let started = tokio::time::Instant::now();
        let own = started + self.config.load_wait();
        // The caller's wait bounds this one: deploy answers, with the runners still
        // loading named, before the caller gives up on it.
        let deadline = answer_by.map_or(own, |by| by.min(own));
        loads.cut_by_caller = deadline < own;
        // Looked at once a second from the first second on: most loads end before.
        let mut recheck = tokio::time::interval_at(
            tokio::time::Instant::now() + Duration::from_secs(1),
            Duration::from_secs(1),
        );
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
                    let (still, gone): (HashSet<String>, HashSet<String>) =
                        waiting.drain().partition(|r| live.contains(r));
                    waiting = still;
                    loads.silent.extend(gone);
                    // A later change of the app (a delete, another deploy) is what the
                    // runners load now: this one is no longer theirs to judge.
                    if let Ok((last, _)) = self.last_event(app).await {
                        if last > rev {
                            loads.superseded = true;
                            waiting.clear();
                        }
                    }
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
            match (report.error, report.fault) {
                (Some(error), LoadFault::App) => {
                    loads.failed = Some((report.runner, error));
                    break;
                }
                (Some(error), LoadFault::Platform) => loads.troubled.push((report.runner, error)),
                (None, _) => {
                    if !loads.loaded.contains(&report.runner) {
                        loads.loaded.push(report.runner);
                    }
                }
            }
        }
        let _ = sub.unsubscribe().await;
        loads.pending = waiting.into_iter().collect();
        loads.pending.sort();
        loads.silent.sort();
        loads.waited = started.elapsed();
        loads
    }

    /// Publishes `event` and waits for the live runners to load it; a version a runner
    /// cannot load for its code is undone and refused. The revision and the runners
    /// that loaded it, in order; `warnings` gains what the runners had to say.
    pub(super) async fn publish_loaded(
        &self,
        event: AppUpdated,
        last_seq: u64,
        previous: Option<AppUpdated>,
        actor: Actor,
        warnings: &mut Vec<Finding>,
    ) -> Result<(u64, Vec<String>), Refused> {
        let watch = self.watch_loads(&event.app_name).await?;
        if actor
            .answer_by
            .is_some_and(|by| tokio::time::Instant::now() >= by)
        {
            // The caller is answered 504 by now: a change made after that would be one
            // nobody was told of.
            return Err(Refused::one(
                504,
                "deploy.timeout",
                None,
                None,
                format!(
                    "{} {} was checked only after its caller stopped waiting (NR_DEPLOY_TIMEOUT_S): nothing was changed; deploy it again, or give deploys more time",
                    event.app_name, event.version
                ),
            ));
        }
        let rev = self
            .publish_until(event.clone(), last_seq, actor.answer_by)
            .await?;
        let Some(watch) = watch else {
            return Ok((rev, Vec::new()));
        };
        let mut loads = self
            .wait_loads(watch, &event.app_name, rev, actor.answer_by)
            .await;
        let secrets = if loads.failed.is_some() || !loads.troubled.is_empty() {
            self.secret_values(&event.app_name).await
        } else {
            Vec::new()
        };
        for (_, error) in &mut loads.troubled {
            *error = appenv::mask(error, &secrets);
        }
        if let Some((runner, error)) = loads.failed {
            let error = appenv::mask(&error, &secrets);
            return Err(self
                .undo(&event, rev, previous, actor, (runner, error))
                .await);
        }
        warnings.extend(loads.warnings(&event.app_name, &event.version));
        Ok((rev, loads.loaded))
    }

    /// The values of the app's secrets that deploy can open, masked in what a runner
    /// says about the app (none without a database or key).
    async fn secret_values(&self, app: &str) -> Vec<String> {
        match &self.checker.import {
            Some(check) => check.secret_values(app).await,
            None => Vec::new(),
        }
    }

    /// Puts back what was current before the revision `rev` (`previous`), or deletes
    /// the app when nothing was, after `runner` could not load `failed`; the refusal
    /// says so.
    async fn undo(
        &self,
        failed: &AppUpdated,
        rev: u64,
        previous: Option<AppUpdated>,
        actor: Actor,
        (runner, error): (String, String),
    ) -> Refused {
        let app = failed.app_name.clone();
        let version = failed.version.clone();
        let undone = Undone {
            version: version.clone(),
            sha256: failed.sha256.clone(),
            reason: undo_reason(&runner, &error),
        };
        let (event, outcome) = match previous.filter(|p| p.change != AppChange::Deleted) {
            Some(p) => {
                let outcome = format!(
                    "the change was undone and {app} {} keeps serving",
                    p.version
                );
                // Put back the very bundle that failed (a redeploy of the current
                // one): nothing is undone, and the served version is not marked.
                let undoes = (p.sha256 != failed.sha256).then_some(undone);
                let event = AppUpdated {
                    change: AppChange::RolledBack,
                    previous_version: Some(version.clone()),
                    actor: actor.name,
                    actor_id: actor.id,
                    undoes,
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
                    undoes: Some(undone),
                    ..failed.clone()
                };
                (event, outcome)
            }
        };
        let (status, outcome) = match self.publish(event, rev).await {
            Ok(undo_rev) => {
                tracing::warn!(app = %app, version = %version, rev, undo_rev, runner = %runner, "a runner could not load the new version; undone");
                (422, outcome)
            }
            Err(e) if e.status == 409 => {
                tracing::warn!(app = %app, version = %version, rev, runner = %runner, "a runner could not load the new version; another change of the app came first");
                (
                    422,
                    format!("another change of {app} has been made since, and is current"),
                )
            }
            Err(e) => {
                tracing::error!(app = %app, version = %version, rev, error = %e.error, "a runner could not load the new version, and undoing it failed");
                (
                    500,
                    format!("undoing it failed ({}), so {app} {version} stays current: deploy a corrected version", e.error),
                )
            }
        };
        let message =
            format!("runner {runner} could not load {app} {version}; {outcome}:\n{error}");
        Refused {
            status,
            error: message.clone(),
            details: vec![finding(
                "runner.load",
                Some("main.py"),
                main_py_line(&error),
                message,
            )],
            warnings: Vec::new(),
        }
    }
}

/// Longest reason an undo event carries, in characters.
const REASON_MAX: usize = 500;

/// What an undo event says of the refused version: the runner and the first line of its
/// error, or its exception's line when it is a bare traceback.
fn undo_reason(runner: &str, error: &str) -> String {
    let lines: Vec<&str> = error
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != "[cut]")
        .collect();
    let line = match lines.first() {
        Some(l) if l.starts_with("Traceback (") => lines.last(),
        first => first,
    };
    let mut reason = format!(
        "runner {runner} could not load it: {}",
        line.copied().unwrap_or("")
    );
    if reason.chars().count() > REASON_MAX {
        reason = reason.chars().take(REASON_MAX - 1).collect::<String>() + "…";
    }
    reason
}

/// The line of `main.py` the innermost of its frames in a traceback names.
fn main_py_line(traceback: &str) -> Option<u32> {
    traceback
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("File \"main.py\", line "))
        .filter_map(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .next_back()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_points_at_the_innermost_main_py_line() {
        let tb = "RuntimeError: x\nTraceback (most recent call last):\n  File \"main.py\", line 9, in <module>\n    f()\n  File \"main.py\", line 3, in f\n    raise RuntimeError('x')\n  File \"libs/util.py\", line 2, in g";
        assert_eq!(main_py_line(tb), Some(3));
        assert_eq!(main_py_line("ImportError: no"), None);
    }

    #[test]
    fn an_undo_names_the_runner_and_the_exception() {
        let tb = "Traceback (most recent call last):\n  File \"main.py\", line 1, in <module>\n    import x\nModuleNotFoundError: No module named 'x'";
        assert_eq!(
            undo_reason("r1", tb),
            "runner r1 could not load it: ModuleNotFoundError: No module named 'x'"
        );
        assert_eq!(
            undo_reason(
                "r1",
                "\nImportError: no\nTraceback (most recent call last):"
            ),
            "runner r1 could not load it: ImportError: no"
        );
        let long = undo_reason("r1", &"é".repeat(2000));
        assert_eq!(long.chars().count(), REASON_MAX);
        assert!(long.ends_with('…'));
    }
}

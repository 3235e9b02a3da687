//! Forking a worker from the app's host, safe against the call that asked for it going
//! away at any point (its time limit passing while it waited, its caller gone).
//!
//! The host answers each `fork` command with the token it was given: a reply left
//! unread by a fork that was given up is recognised as not this fork's and skipped (its
//! worker, not counted as the host's, is killed by the runner's sweep), so
//! the control channel never falls out of step (before, every later fork read the
//! previous one's reply, took the wrong worker's pid, and the runner's sweep killed the
//! real worker under its calls once a second until the app was loaded again).

use std::time::Duration;

use nr_infra::contain;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::sync::oneshot;

use super::control::{self, ControlError};
use super::wire::ForkReply;
use super::{AppHost, CallError, Worker, WORKER_READ_BUFFER};
use crate::spawner::Pending;

/// Undoes a fork that did not end with a worker handed to its caller: the token the
/// worker would connect with is forgotten, and the worker, once its pid is known, is
/// killed and no longer counted as one of the host's.
struct Unfinished<'a> {
    host: &'a AppHost,
    token: String,
    pid: Option<i32>,
    done: bool,
}

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.host.spawner.lock_pending().remove(&self.token);
        if let Some(pid) = self.pid {
            self.host.lock_workers().remove(&pid);
            contain::kill_tree(pid, self.host.uid);
        }
    }
}

impl AppHost {
    pub(super) async fn fork_worker(&self) -> Result<Worker, CallError> {
        let token = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = oneshot::channel();
        self.spawner
            .lock_pending()
            .insert(token.clone(), Pending { tx, uid: self.uid });
        let mut fork = Unfinished {
            host: self,
            token,
            pid: None,
            done: false,
        };
        let reply = self.ask_fork(&fork.token).await?;
        let Some(pid) = reply.pid else {
            return Err(CallError::Unavailable(format!(
                "cannot fork a worker: {}",
                reply.error.unwrap_or_default()
            )));
        };
        fork.pid = Some(pid);
        let connected = tokio::time::timeout(Duration::from_secs(10), rx).await;
        let Ok(Ok(stream)) = connected else {
            return Err(CallError::Unavailable("worker did not connect".into()));
        };
        fork.done = true;
        Ok(Worker {
            stream: BufReader::with_capacity(WORKER_READ_BUFFER, stream),
            pid,
            uid: self.uid,
            served: 0,
        })
    }

    /// Sends `fork` with `token` and reads lines until the host's reply to it; replies
    /// to forks given up earlier are skipped. The worker's pid is counted as the host's
    /// before the control channel is let go, so the sweep never takes it for something
    /// an app left behind.
    async fn ask_fork(&self, token: &str) -> Result<ForkReply, CallError> {
        let mut ctl = self.control.lock().await;
        let cmd = format!("{{\"cmd\":\"fork\",\"token\":\"{token}\"}}\n");
        ctl.stdin
            .write_all(cmd.as_bytes())
            .await
            .map_err(|e| CallError::Unavailable(format!("app host is gone: {e}")))?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let line = tokio::time::timeout_at(deadline, ctl.stdout.next_line())
                .await
                .map_err(|_| CallError::Unavailable("app host did not fork a worker".into()))?;
            let line = match line {
                Ok(Some(line)) => line,
                Ok(None) => return Err(CallError::Unavailable("app host exited".into())),
                Err(ControlError::TooLong) => {
                    // The channel is out of step for good: the host goes (the runner
                    // loads the app again on its next call).
                    let _ = control::stop_host(&mut ctl.child, self.uid);
                    return Err(CallError::Unavailable(control::too_long(&self.app)));
                }
                Err(ControlError::Io(e)) => {
                    return Err(CallError::Unavailable(format!("app host is gone: {e}")))
                }
            };
            let reply: ForkReply = serde_json::from_str(&line)
                .map_err(|e| CallError::Unavailable(control::unreadable(&self.app, &line, &e)))?;
            if reply.token.as_deref() != Some(token) {
                // A reply to a fork given up earlier (or a line app code forged). Its
                // worker, if it still runs, is no worker of the host's: the sweep kills
                // it among the host's children, which a pid read here, perhaps long
                // after, might no longer be.
                tracing::debug!(app = %self.app, pid = ?reply.pid, "skipped the reply to a fork given up earlier");
                if let Some(stale) = &reply.token {
                    self.spawner.lock_pending().remove(stale);
                }
                continue;
            }
            if let Some(pid) = reply.pid {
                self.lock_workers().insert(pid);
            }
            return Ok(reply);
        }
    }
}

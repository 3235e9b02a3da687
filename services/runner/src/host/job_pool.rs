//! Job workers: forked like sync workers but kept apart from the sync pool, one job at
//! a time, reused between jobs and replaced as [`JobPoolSpec`] says.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{AppHost, CallError, CallReply, Progress, Worker};

/// Reuse of job workers: a job worker serves one job at a time, never a sync call, and
/// is replaced after `max_jobs` jobs, when its resident memory passes `max_rss_mb`, or
/// when its job was cancelled, timed out or crashed.
#[derive(Debug, Clone, Copy)]
pub struct JobPoolSpec {
    pub max_jobs: u32,
    pub max_rss_mb: u64,
    /// Idle job workers kept per app revision.
    pub idle: usize,
    /// Bytes of captured output kept per job.
    pub log_bytes: usize,
}

/// A failed job call and the output it captured before failing.
pub struct JobError {
    pub error: CallError,
    pub logs: Option<String>,
}

impl AppHost {
    /// Runs one async job on a job worker: one that serves jobs only, one at a time
    /// (isolated from the sync pool and from other running jobs), kept warm with its
    /// connection between jobs and replaced as [`JobPoolSpec`] says.
    pub async fn run_job(
        &self,
        body: &[u8],
        job_id: &str,
        request_id: Option<&str>,
        limit: Duration,
        progress: tokio::sync::mpsc::UnboundedSender<Progress>,
        cancel: CancellationToken,
    ) -> Result<CallReply, JobError> {
        let idle = self.lock_job_idle().pop();
        let (mut worker, served) = match idle {
            Some(w) => w,
            None => (
                self.fork_worker()
                    .await
                    .map_err(|error| JobError { error, logs: None })?,
                0,
            ),
        };
        let header = serde_json::json!({
            "id": self.next_id.fetch_add(1, Ordering::Relaxed),
            // The submit's request id on every line; the job id where there was none.
            "rid": request_id.filter(|r| !r.is_empty()).unwrap_or(job_id),
            "inject": {"_job_id": job_id},
            "capture": self.jobs.log_bytes,
        });
        let result = self
            .exchange(
                &mut worker,
                &header,
                body,
                limit,
                Some(progress),
                Some(cancel),
            )
            .await;
        let served = served.saturating_add(1);
        let healthy = matches!(
            &result,
            Ok(_)
                | Err(JobError {
                    error: CallError::Exception { .. },
                    ..
                })
        );
        let keep = healthy
            && served < self.jobs.max_jobs
            && !over_memory(worker.pid, self.jobs.max_rss_mb)
            && self.lock_job_idle().len() < self.jobs.idle;
        if keep {
            self.lock_job_idle().push((worker, served));
        } else {
            self.kill_worker(&worker);
        }
        result
    }

    pub(super) fn lock_job_idle(&self) -> std::sync::MutexGuard<'_, Vec<(Worker, u32)>> {
        self.job_idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// True when the process's resident memory is above `max_mb` MiB (0: no limit).
fn over_memory(pid: i32, max_mb: u64) -> bool {
    if max_mb == 0 {
        return false;
    }
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return true;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .is_some_and(|kb| kb / 1024 > max_mb)
}

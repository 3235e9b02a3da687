//! One call's conversation with a worker: the call frame out, then progress, log lines
//! and file requests in, until the final reply.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use nr_infra::contain;

use super::{files, wire::ReplyHeader, AppHost, CallError, CallReply, JobError, Progress, Worker};
use crate::frame::{read_frame, write_frame};
use crate::{output, text};

impl AppHost {
    /// Sends one call and reads frames until the final reply, forwarding progress.
    pub(super) async fn exchange(
        &self,
        worker: &mut Worker,
        header: &serde_json::Value,
        body: &[u8],
        limit: Duration,
        progress: Option<tokio::sync::mpsc::UnboundedSender<Progress>>,
        cancel: Option<CancellationToken>,
    ) -> Result<CallReply, JobError> {
        let body = if body.is_empty() {
            b"{}".as_slice()
        } else {
            body
        };
        let pid = worker.pid;
        let stream = &mut worker.stream;
        let rid = header["rid"].as_str().unwrap_or("").to_owned();
        let job = header["inject"]["_job_id"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let drops = output::CallDrops {
            app: &self.app,
            request_id: &rid,
            job_id: &job,
            count: Default::default(),
        };
        // A job's lines as they came, for when the worker is stopped before its reply.
        let live = std::sync::Mutex::new(LiveLog::new(self.jobs.log_bytes));
        let exchange = async {
            write_frame(stream, header, body).await?;
            loop {
                let (h, out) = read_frame::<_, ReplyHeader>(stream).await?;
                if let Some(op) = h.file {
                    let files = self.spawner.files.as_ref();
                    let (rh, rb) = files::answer(
                        files,
                        &self.app,
                        Some(job.as_str()).filter(|j| !j.is_empty()),
                        op,
                        out,
                    )
                    .await;
                    write_frame(stream, &rh, &rb).await?;
                    continue;
                }
                if let Some(line) = h.log {
                    // The frame may be the app's own, not the SDK's: the stream is one
                    // of the three, the line is cut and cleaned here.
                    let stream = h
                        .stream
                        .as_deref()
                        .filter(|s| matches!(*s, "stdout" | "logging"))
                        .unwrap_or("stderr");
                    if !output::log_call_line(&self.log_rate, &self.app, &rid, &job, stream, &line)
                    {
                        drops
                            .count
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    if !job.is_empty() {
                        live.lock().unwrap_or_else(|p| p.into_inner()).push(&line);
                    }
                    if let Some(tx) = &progress {
                        let _ = tx.send(Progress {
                            percent: 0,
                            message: None,
                            log: Some(text::clean_line(&line)),
                        });
                    }
                    continue;
                }
                match h.progress {
                    Some(percent) => {
                        if let Some(tx) = &progress {
                            let _ = tx.send(Progress {
                                percent,
                                message: h
                                    .message
                                    .map(|m| text::cut_chars(m, text::MAX_PROGRESS_MESSAGE)),
                                log: None,
                            });
                        }
                    }
                    None => return Ok::<_, std::io::Error>((h, out)),
                }
            }
        };
        let cancelled = async {
            match &cancel {
                Some(c) => c.cancelled().await,
                None => std::future::pending().await,
            }
        };
        let max = self.jobs.log_bytes;
        // Stopped before its reply: a job keeps the lines that came live.
        let stopped = |error| JobError {
            error,
            logs: live
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .map(|l| cap_logs(text::escape_lines(&l), max)),
        };
        let outcome = tokio::select! {
            r = tokio::time::timeout(limit, exchange) => r,
            _ = cancelled => return Err(stopped(CallError::Cancelled)),
            over = past_cpu_limit(pid, if job.is_empty() { "call" } else { "job" }, self.cpu_s) => {
                tracing::warn!(app = %self.app, request_id = %rid, job_id = %job, pid, "{over}");
                return Err(stopped(CallError::CpuLimit(over)));
            }
        };
        match outcome {
            Err(_) => Err(stopped(CallError::Timeout(limit))),
            Ok(Err(e)) => Err(stopped(CallError::Crashed(format!(
                "the worker process running app '{}' died during the call ({e}); it was replaced",
                self.app
            )))),
            Ok(Ok((mut header, out))) => {
                // A job's captured output is kept up to the configured bytes, whoever
                // wrote the reply, its control characters escaped: cut first (so no
                // more than the limit is ever escaped), then again once escaped.
                header.logs = header
                    .logs
                    .map(|l| cap_logs(text::escape_lines(&cap_logs(l, max)), max));
                for why in header.dropped_actions.iter().take(10) {
                    tracing::warn!(app = %self.app, request_id = %rid, job_id = %job, "{}; not published", text::escape_lines(&text::cut_chars(why.clone(), 300)));
                }
                if header.ok {
                    Ok(CallReply {
                        body: out,
                        actions: header.actions,
                        logs: header.logs,
                    })
                } else if header.unavailable {
                    let error = header
                        .error
                        .unwrap_or_else(|| "the app's database is unavailable".into());
                    Err(JobError {
                        error: CallError::Unavailable(error),
                        logs: header.logs,
                    })
                } else if header.retire {
                    // Stopped at its CPU limit at an arbitrary point: the error of the
                    // app's, and a worker not to be used again.
                    Err(JobError {
                        error: CallError::CpuLimit(
                            header
                                .error
                                .unwrap_or_else(|| "CpuTimeLimitExceeded".into()),
                        ),
                        logs: header.logs,
                    })
                } else {
                    Err(JobError {
                        error: CallError::Exception {
                            error: header.error.unwrap_or_else(|| "execute() failed".into()),
                            traceback: header.traceback.unwrap_or_default(),
                        },
                        logs: header.logs,
                    })
                }
            }
        }
    }
}

/// The most lines a job's worker sends live in one second (`LIVE_PER_S` of
/// `nr_output.py`); the others stay in the worker until its reply.
const LIVE_PER_S: usize = 50;

/// A job's output lines as the worker sent them live. The worker keeps every line for
/// its reply, but a worker stopped before replying (a timeout, a cancel, the CPU limit,
/// a crash) takes them with it: these are what the job keeps then. Bounded as the
/// reply's logs are (each line, and `max` bytes in all), whatever the frames hold: a
/// frame may be the app's own, not the SDK's.
struct LiveLog {
    text: String,
    max: usize,
    /// Bytes of lines over `max`, not kept.
    over: usize,
    /// When the last [`LIVE_PER_S`] lines came.
    recent: std::collections::VecDeque<std::time::Instant>,
    /// As many lines as the worker sends live in a second came within about one: it
    /// may have held others back.
    full: bool,
}

impl LiveLog {
    fn new(max: usize) -> LiveLog {
        LiveLog {
            text: String::new(),
            max,
            over: 0,
            recent: std::collections::VecDeque::with_capacity(LIVE_PER_S),
            full: false,
        }
    }

    fn push(&mut self, line: &str) {
        let now = std::time::Instant::now();
        if self.recent.len() == LIVE_PER_S {
            self.recent.pop_front();
        }
        self.recent.push_back(now);
        // The worker's seconds are not the runner's: a little slack for the bus.
        self.full |= self.recent.len() == LIVE_PER_S
            && self
                .recent
                .front()
                .is_some_and(|first| now.duration_since(*first) <= Duration::from_millis(1_100));
        // Escaped once the job is stopped, as the reply's logs are.
        let line = text::prefix(line, text::MAX_LINE);
        if self.text.len() + line.len() + 1 > self.max {
            self.over += line.len() + 1;
            return;
        }
        if !self.text.is_empty() {
            self.text.push('\n');
        }
        self.text.push_str(line);
    }

    /// The lines, with a marker for what is missing; none when nothing came.
    fn take(&mut self) -> Option<String> {
        let mut text = std::mem::take(&mut self.text);
        if text.is_empty() && self.over == 0 {
            return None;
        }
        if self.over > 0 {
            text.push_str(&format!(
                "\n...[log truncated: {} more bytes not kept]",
                self.over
            ));
        }
        if self.full {
            text.push_str(&format!(
                "\n...[the job was stopped before it ended: lines printed faster than {LIVE_PER_S} a second may be missing]"
            ));
        }
        Some(text)
    }
}

/// How often a long call's worker is checked against its CPU limit, and how many CPU
/// seconds past it the worker gets to see `SIGXCPU` and fail the call itself.
const CPU_CHECK_EVERY: Duration = Duration::from_secs(2);
const CPU_GRACE_S: u64 = 5;

/// Resolves once the worker `pid` has used `limit_s` CPU seconds and the grace during
/// this call: its code never returned to Python, where `SIGXCPU` would have stopped it
/// (a long loop in C, for which the Python signal handler waits), or it lifted its own
/// soft limit. Counted by the runner, so the app cannot lift this one. The worker's
/// clock is first read at the first check, the call taken to have used one core until
/// then, so a single-threaded call is stopped 3 to 7 s (the grace, less up to one check
/// period not used, plus up to one check period) past its limit, and one using more
/// cores at first later. Never resolves without a limit; costs nothing for calls
/// shorter than [`CPU_CHECK_EVERY`].
async fn past_cpu_limit(pid: i32, what: &str, limit_s: u64) -> String {
    if limit_s == 0 {
        return std::future::pending().await;
    }
    let allowed = limit_s
        .saturating_add(CPU_GRACE_S)
        .saturating_mul(contain::TICKS_PER_SECOND);
    let mut base = None;
    loop {
        tokio::time::sleep(CPU_CHECK_EVERY).await;
        let Some((user, system)) = contain::cpu_ticks(pid) else {
            continue;
        };
        let ticks = user + system;
        let before = CPU_CHECK_EVERY.as_secs() * contain::TICKS_PER_SECOND;
        let start = *base.get_or_insert(ticks.saturating_sub(before));
        if ticks.saturating_sub(start) >= allowed {
            return format!(
                "CpuTimeLimitExceeded: the {what} went on past its CPU time limit of {limit_s} s in code that did not return to Python (a long loop in C), so its worker was stopped (limits.cpu_s in manifest.json sets the limit, up to the platform's NR_APP_CPU_S)"
            );
        }
    }
}

/// Room past the cap for the marker the worker adds when it cut the output itself.
const LOGS_MARKER_ROOM: usize = 512;

/// A job's captured output cut to `max` bytes (a character boundary), with a marker
/// saying how much was left out.
fn cap_logs(logs: String, max: usize) -> String {
    if logs.len() <= max.saturating_add(LOGS_MARKER_ROOM) {
        return logs;
    }
    let kept = text::prefix(&logs, max);
    format!(
        "{kept}\n...[log truncated: {} more bytes not kept]",
        logs.len() - kept.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_jobs_live_lines_are_bounded_and_say_what_is_missing() {
        let mut live = LiveLog::new(100);
        assert_eq!(live.take(), None, "nothing came");
        live.push("[r] one");
        live.push(&"x".repeat(10 * text::MAX_LINE));
        live.push("[r] two");
        assert_eq!(
            live.text.len(),
            "[r] one\n[r] two".len(),
            "over max: not kept"
        );
        let kept = live.take().unwrap();
        assert!(
            kept.starts_with("[r] one\n[r] two\n...[log truncated: "),
            "{kept}"
        );
        assert!(!kept.contains("may be missing"), "{kept}");

        // As many lines as the worker sends live in a second: some may have been held.
        let mut live = LiveLog::new(1 << 20);
        for n in 0..LIVE_PER_S {
            live.push(&format!("[r] line {n}"));
        }
        assert!(live.take().unwrap().ends_with("a second may be missing]"));
    }
}

//! App output in the platform's log (target `app`). Output outside a call (module code,
//! threads between calls, subprocesses writing to the file descriptors) is the host's
//! and its workers' stderr, read with a bounded reader: a line is capped at
//! [`MAX_LINE`] bytes (the rest is skipped and a marker says how much). Output during a
//! call comes as frames from the worker, already capped per call, and is logged with
//! the call's request id and its stream ([`log_call_line`]). Both are rate-limited per
//! app host ([`RATE`] a second, bursts of [`BURST`]), so an app printing a 32 MB line or
//! a flood of lines costs the platform a fixed amount of memory and log volume.

use std::time::Instant;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use crate::text;

/// Longest line of app output kept, bytes; longer lines are truncated with a marker.
pub const MAX_LINE: usize = 8 * 1024;
/// Lines logged per second per app host, sustained.
pub const RATE: f64 = 200.0;
/// Lines that may be logged at once before the rate applies.
pub const BURST: f64 = 1000.0;

/// Reads lines of at most [`MAX_LINE`] bytes; the rest of a longer line is read and
/// dropped in chunks, never held.
pub struct CappedLines<R> {
    reader: BufReader<R>,
    max: usize,
}

impl<R: AsyncRead + Unpin> CappedLines<R> {
    pub fn new(reader: R, max: usize) -> Self {
        CappedLines {
            reader: BufReader::with_capacity(16 * 1024, reader),
            max,
        }
    }

    /// The next line (without its newline, lossily decoded), with the marker
    /// `… [line truncated: N bytes]` when it was longer than the cap; `None` at the end.
    pub async fn next_line(&mut self) -> std::io::Result<Option<String>> {
        let mut kept: Vec<u8> = Vec::new();
        let mut total = 0usize;
        loop {
            let buf = self.reader.fill_buf().await?;
            if buf.is_empty() {
                if total == 0 {
                    return Ok(None);
                }
                break;
            }
            let (chunk, consumed, done) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (&buf[..i], i + 1, true),
                None => (buf, buf.len(), false),
            };
            total += chunk.len();
            let room = self.max.saturating_sub(kept.len());
            kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
            self.reader.consume(consumed);
            if done {
                break;
            }
        }
        if kept.last() == Some(&b'\r') {
            kept.pop();
        }
        let mut line = String::from_utf8_lossy(&kept).into_owned();
        if total > self.max {
            line.push_str(&format!("… [line truncated: {total} bytes]"));
        }
        Ok(Some(line))
    }
}

/// A token bucket of lines.
pub struct LogRate {
    tokens: f64,
    last: Instant,
}

impl Default for LogRate {
    fn default() -> Self {
        LogRate {
            tokens: BURST,
            last: Instant::now(),
        }
    }
}

impl LogRate {
    /// Whether a line may be logged now.
    pub fn admit(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = now;
        self.tokens = (self.tokens + elapsed.as_secs_f64() * RATE).min(BURST);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// One app host's log rate, shared by its stderr and its calls' lines.
pub type SharedRate = std::sync::Arc<std::sync::Mutex<LogRate>>;

/// Logs one line of a call's output with the app, the request id, the stream
/// (`stdout`, `stderr`, `logging`) and, for a job, its id, within the host's rate. The
/// line is the app's: at most [`MAX_LINE`] bytes of it are logged, control characters
/// escaped (a `\n` in it never starts a log line). False when the rate dropped it.
pub fn log_call_line(
    rate: &SharedRate,
    app: &str,
    request_id: &str,
    job_id: &str,
    stream: &str,
    line: &str,
) -> bool {
    let admitted = rate
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .admit(Instant::now());
    if !admitted {
        return false;
    }
    let line = text::clean(line, MAX_LINE);
    if job_id.is_empty() {
        tracing::info!(target: "app", app = %app, request_id = %request_id, stream = %stream, "{line}");
    } else {
        tracing::info!(target: "app", app = %app, request_id = %request_id, job_id = %job_id, stream = %stream, "{line}");
    }
    true
}

/// Counts the lines of one call's output the rate dropped, and says so once, with the
/// call's request id (and job id), when the call is over, however it ended.
pub struct CallDrops<'a> {
    pub app: &'a str,
    pub request_id: &'a str,
    pub job_id: &'a str,
    pub count: std::sync::atomic::AtomicU64,
}

impl Drop for CallDrops<'_> {
    fn drop(&mut self) {
        let dropped = *self.count.get_mut();
        if dropped == 0 {
            return;
        }
        let (app, request_id) = (self.app, self.request_id);
        if self.job_id.is_empty() {
            tracing::warn!(target: "app", app = %app, request_id = %request_id, dropped, "app output over the log rate: {dropped} lines of this call's output were not logged");
        } else {
            let job_id = self.job_id;
            tracing::warn!(target: "app", app = %app, request_id = %request_id, job_id = %job_id, dropped, "app output over the log rate: {dropped} lines of this job's output were not logged");
        }
    }
}

/// The last lines of an app's output, kept for the error of a failed import.
pub type Tail = std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<String>>>;

/// Logs `app`'s output (capped lines, rate-limited by `rate`) in the background and
/// keeps its last `keep` lines.
pub fn log_app_output<R>(output: R, app: String, keep: usize, rate: SharedRate) -> Tail
where
    R: AsyncRead + Unpin + Send + 'static,
{
    let tail: Tail = Default::default();
    let kept = tail.clone();
    tokio::spawn(async move {
        let mut lines = CappedLines::new(output, MAX_LINE);
        // Lines of this output the rate dropped since the last one logged.
        let mut dropped = 0u64;
        while let Ok(Some(line)) = lines.next_line().await {
            // Already cut to MAX_LINE; control characters (a `\r`, escapes) escaped.
            let line = text::clean(&line, usize::MAX).to_string();
            let admitted = rate
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .admit(Instant::now());
            if !admitted {
                dropped += 1;
            } else {
                if dropped > 0 {
                    tracing::warn!(target: "app", app = %app, dropped, "app output over the log rate: {dropped} lines dropped");
                    dropped = 0;
                }
                tracing::info!(target: "app", app = %app, "{line}");
            }
            let mut t = kept.lock().unwrap_or_else(|p| p.into_inner());
            if t.len() >= keep {
                t.pop_front();
            }
            t.push_back(line);
        }
        if dropped > 0 {
            tracing::warn!(target: "app", app = %app, dropped, "app output over the log rate: {dropped} lines dropped");
        }
    });
    tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_long_line_is_cut_with_a_marker_and_the_next_line_is_whole() {
        let mut input = vec![b'x'; 100_000];
        input.extend_from_slice(b"\nnext\r\nlast");
        let mut lines = CappedLines::new(input.as_slice(), 16);
        let first = lines.next_line().await.unwrap().unwrap();
        assert_eq!(first, "xxxxxxxxxxxxxxxx… [line truncated: 100000 bytes]");
        assert_eq!(lines.next_line().await.unwrap().unwrap(), "next");
        assert_eq!(lines.next_line().await.unwrap().unwrap(), "last");
        assert!(lines.next_line().await.unwrap().is_none());
    }

    #[test]
    fn a_flood_is_cut_to_the_burst_then_the_rate() {
        let mut rate = LogRate::default();
        let t = Instant::now();
        let admitted = (0..5000).filter(|_| rate.admit(t)).count();
        assert_eq!(admitted, BURST as usize);
        let later = t + Duration::from_secs(1);
        let admitted = (0..5000).filter(|_| rate.admit(later)).count();
        assert_eq!(admitted, RATE as usize);
    }
}

//! The host's control channel, read with a bound: JSON lines of at most
//! [`MAX_CONTROL_LINE`] bytes. App module code runs inside the host and can write to the
//! channel's file descriptor; a longer line is the host misbehaving, never buffered.

use std::io;

use nr_infra::contain;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Child;

use crate::text;

/// Longest control line the runner reads from an app's host, bytes (a real reply is a
/// few hundred bytes; an import error's traceback fits comfortably).
pub const MAX_CONTROL_LINE: usize = 64 * 1024;

/// Bytes of an unreadable control line quoted in an error or the log.
pub(super) const QUOTED: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("a control line longer than the {MAX_CONTROL_LINE}-byte limit")]
    TooLong,
}

/// Control lines read from the host's stdout. Cancel-safe: a partial line read before a
/// timeout is kept for the next call.
pub struct ControlLines<R> {
    reader: BufReader<R>,
    partial: Vec<u8>,
    max: usize,
}

impl<R: AsyncRead + Unpin> ControlLines<R> {
    pub fn new(reader: R) -> Self {
        Self::with_max(reader, MAX_CONTROL_LINE)
    }

    pub fn with_max(reader: R, max: usize) -> Self {
        ControlLines {
            reader: BufReader::with_capacity(8 * 1024, reader),
            partial: Vec::new(),
            max,
        }
    }

    /// The next line (without its newline, lossily decoded); `None` at the end of the
    /// stream. A line over the limit is an error once `max` bytes are read, with no
    /// more than that held.
    pub async fn next_line(&mut self) -> Result<Option<String>, ControlError> {
        loop {
            let buf = self.reader.fill_buf().await?;
            if buf.is_empty() {
                if self.partial.is_empty() {
                    return Ok(None);
                }
                return Ok(Some(self.take()));
            }
            let (chunk, consumed, done) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (&buf[..i], i + 1, true),
                None => (buf, buf.len(), false),
            };
            if self.partial.len() + chunk.len() > self.max {
                self.partial = Vec::new();
                return Err(ControlError::TooLong);
            }
            self.partial.extend_from_slice(chunk);
            self.reader.consume(consumed);
            if done {
                return Ok(Some(self.take()));
            }
        }
    }

    fn take(&mut self) -> String {
        let mut line = std::mem::take(&mut self.partial);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        String::from_utf8_lossy(&line).into_owned()
    }
}

/// Kills a host that broke its control channel, with everything under it.
/// Returns its pid.
pub(super) fn stop_host(child: &mut Child, uid: Option<u32>) -> Option<i32> {
    let pid = child.id().and_then(|p| i32::try_from(p).ok());
    if let Some(pid) = pid {
        contain::kill_tree(pid, uid);
    }
    let _ = child.start_kill();
    pid
}

/// The error of a host that wrote an over-long control line.
pub(super) fn too_long(app: &str) -> String {
    format!(
        "the host process of app '{app}' wrote a control line over the {MAX_CONTROL_LINE}-byte limit (app code writing to the runner's control channel?); it was stopped"
    )
}

/// The error of a control line that is not the expected JSON: its first bytes only,
/// cleaned (it may be anything the app wrote).
pub(super) fn unreadable(app: &str, line: &str, e: &serde_json::Error) -> String {
    format!(
        "unreadable reply from the host process of app '{app}' ({} bytes, starting \"{}\"): {e}",
        line.len(),
        text::clean(line, QUOTED)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_within_the_limit_are_read_and_a_longer_one_is_refused() {
        let mut input = b"{\"ok\":true}\r\nsecond\n".to_vec();
        input.extend_from_slice(&[b'A'; 1000]);
        input.extend_from_slice(b"\nnever");
        let mut lines = ControlLines::with_max(input.as_slice(), 100);
        assert_eq!(lines.next_line().await.unwrap().unwrap(), "{\"ok\":true}");
        assert_eq!(lines.next_line().await.unwrap().unwrap(), "second");
        assert!(matches!(
            lines.next_line().await,
            Err(ControlError::TooLong)
        ));
        assert!(lines.partial.capacity() <= 100);
    }

    #[tokio::test]
    async fn a_last_line_without_newline_is_returned() {
        let mut lines = ControlLines::new(b"tail".as_slice());
        assert_eq!(lines.next_line().await.unwrap().unwrap(), "tail");
        assert!(lines.next_line().await.unwrap().is_none());
    }
}

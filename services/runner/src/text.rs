//! App-provided text on its way to the platform's log or the bus: cut to a bound (on a
//! character boundary) and made unable to forge log lines. An app chooses every byte of
//! its output lines, exception messages, tracebacks and progress messages; the runner
//! keeps a bounded prefix and writes control characters in an escaped form, so a `\n`
//! in a line never starts a new line of the platform's log.

use std::fmt;

/// Longest app line kept, bytes of the app's text (its escaped form may be longer).
pub const MAX_LINE: usize = crate::output::MAX_LINE;
/// Longest traceback kept in the platform's log, bytes.
pub const MAX_TRACEBACK: usize = 16 * 1024;
/// Longest job progress message kept, characters (the SDK's own cut).
pub const MAX_PROGRESS_MESSAGE: usize = 500;

/// `text` for a log line: its first `max` bytes (whole characters), control characters
/// other than tab escaped (`\n`, `\r`, `\x1b`, `\u{85}`), and a marker with the full
/// length when it was cut. Displays without allocating.
pub struct Clean<'a> {
    text: &'a str,
    max: usize,
}

/// [`Clean`] with `max` bytes kept.
pub fn clean(text: &str, max: usize) -> Clean<'_> {
    Clean { text, max }
}

/// A line of app output, cleaned and cut to [`MAX_LINE`], as an owned string.
pub fn clean_line(text: &str) -> String {
    clean(text, MAX_LINE).to_string()
}

/// Lines of app output (a job's captured log) with the control characters inside each
/// line escaped as [`clean`] escapes them (`\r`, `\x1b`; tabs kept), the newlines
/// between lines kept: what a terminal or a page shows of them is the text, not a cursor
/// move or a colour.
pub fn escape_lines(text: &str) -> String {
    use fmt::Write as _;
    let mut out = String::with_capacity(text.len());
    for (n, line) in text.split('\n').enumerate() {
        if n > 0 {
            out.push('\n');
        }
        // Writing to a String cannot fail.
        let _ = write!(out, "{}", clean(line, usize::MAX));
    }
    out
}

impl fmt::Display for Clean<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kept = prefix(self.text, self.max);
        for c in kept.chars() {
            match c {
                '\t' => f.write_str("\t")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                c if (c as u32) < 0x20 || c == '\u{7f}' => write!(f, "\\x{:02x}", c as u32)?,
                // C1 controls and the Unicode line and paragraph separators.
                c if ('\u{80}'..='\u{9f}').contains(&c) || c == '\u{2028}' || c == '\u{2029}' => {
                    write!(f, "\\u{{{:x}}}", c as u32)?
                }
                c => write!(f, "{c}")?,
            }
        }
        if kept.len() < self.text.len() {
            write!(f, "… [line truncated: {} bytes]", self.text.len())?;
        }
        Ok(())
    }
}

/// The longest prefix of `text` of at most `max` bytes ending on a character boundary.
pub fn prefix(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `text` cut to its first `max` characters.
pub fn cut_chars(mut text: String, max: usize) -> String {
    if let Some((at, _)) = text.char_indices().nth(max) {
        text.truncate(at);
    }
    text
}

/// What the author is shown of a failed load (deploy's refusal): the error and its
/// traceback line by line, each line cleaned, without the runner's own frames (files
/// under `runner_py`) and Python's import machinery (`<frozen importlib…>`), and with the app's files named from its folder (the path up to
/// `<apps_dir>/<app>/<load dir>/` dropped), at most [`MAX_TRACEBACK`] bytes in all.
pub fn for_author(text: &str, apps_dir: &str, app: &str, runner_py: &str) -> String {
    let folder = format!("{}/{app}/", apps_dir.trim_end_matches('/'));
    let mut out = String::new();
    let mut runner_frame = false;
    for line in text.lines() {
        // A frame's source line and the carets under it are indented past its `File`.
        if runner_frame && line.starts_with("    ") {
            continue;
        }
        runner_frame = false;
        let frame = line.trim_start();
        if frame.starts_with("File \"")
            && (line.contains(runner_py) || frame.starts_with("File \"<frozen "))
        {
            runner_frame = true;
            continue;
        }
        let mut line = line.to_owned();
        while let Some(i) = line.find(&folder) {
            let rest = &line[i + folder.len()..];
            let skip = rest.find('/').map_or(0, |j| j + 1);
            line = format!("{}{}", &line[..i], &rest[skip..]);
        }
        let line = clean(&line, MAX_LINE).to_string();
        if out.len() + line.len() + 1 > MAX_TRACEBACK {
            out.push_str("\n[cut]");
            break;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_cannot_start_a_line() {
        let s = clean("ok\nERROR forged\r\x1b[31m\u{85}\u{2028}\tend", 100).to_string();
        assert_eq!(s, "ok\\nERROR forged\\r\\x1b[31m\\u{85}\\u{2028}\tend");
        assert!(!s.chars().any(|c| c.is_control() && c != '\t'));
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary_with_a_marker() {
        let text = "é".repeat(10);
        let s = clean(&text, 5).to_string();
        assert_eq!(s, "éé… [line truncated: 20 bytes]");
        let line = clean_line(&"x".repeat(3 * MAX_LINE));
        assert!(line.ends_with("… [line truncated: 24576 bytes]"), "{line}");
        assert!(line.len() < MAX_LINE + 40);
        assert_eq!(prefix("aé", 2), "a");
        assert_eq!(cut_chars("é".repeat(600), 500).chars().count(), 500);
        assert_eq!(cut_chars("short".into(), 500), "short");
    }

    #[test]
    fn an_author_sees_their_own_frames_by_relative_path_and_real_lines() {
        let text = "RuntimeError: boom\nTraceback (most recent call last):\n  \
            File \"/var/nr/runner-1/py/nr_host.py\", line 397, in main\n    load_app()\n    \
            ^^^^^^^^^^\n  File \"<frozen importlib._bootstrap>\", line 241, in _call\n  \
            File \"/var/nr/runner-1/apps/shop/4-58941c9d5591-bc5943e1/main.py\", line 3, in <module>\n    \
            raise RuntimeError(\"boom\")\nRuntimeError: boom";
        let shown = for_author(text, "/var/nr/runner-1/apps", "shop", "/var/nr/runner-1/py");
        assert_eq!(
            shown,
            "RuntimeError: boom\nTraceback (most recent call last):\n  \
             File \"main.py\", line 3, in <module>\n    raise RuntimeError(\"boom\")\nRuntimeError: boom"
        );
        let long = "x\n".repeat(MAX_TRACEBACK);
        assert!(for_author(&long, "/a", "b", "/c").len() <= MAX_TRACEBACK + 8);
    }
}

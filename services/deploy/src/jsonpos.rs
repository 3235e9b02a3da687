//! Line numbers of the values in a JSON document, by JSON pointer (`/actions/1/name`), so
//! a manifest finding can say where it is. Lenient: it reads documents serde_json has
//! already accepted and never fails; what it cannot place has no line.

use std::collections::HashMap;

/// Maps each JSON pointer to the 1-based line where its value (or its key) starts.
pub fn lines(text: &str) -> HashMap<String, u32> {
    let mut s = Scanner {
        b: text.as_bytes(),
        i: 0,
        line: 1,
        out: HashMap::new(),
    };
    s.value(String::new(), None);
    s.out
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    line: u32,
    out: HashMap<String, u32>,
}

/// Escapes a key for a JSON pointer (RFC 6901).
pub fn pointer_token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        if c == b'\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.bump();
        }
    }

    fn string(&mut self) -> String {
        let mut raw = Vec::new();
        self.bump(); // opening quote
        while let Some(c) = self.bump() {
            match c {
                b'"' => break,
                b'\\' => {
                    raw.push(c);
                    if let Some(n) = self.bump() {
                        raw.push(n);
                    }
                }
                _ => raw.push(c),
            }
        }
        let quoted = format!("\"{}\"", String::from_utf8_lossy(&raw));
        serde_json::from_str::<String>(&quoted)
            .unwrap_or_else(|_| String::from_utf8_lossy(&raw).into_owned())
    }

    /// Reads one value at `path`; `key_line` is where its key was, when it has one.
    fn value(&mut self, path: String, key_line: Option<u32>) {
        self.ws();
        self.out.insert(path.clone(), key_line.unwrap_or(self.line));
        match self.peek() {
            Some(b'{') => {
                self.bump();
                loop {
                    self.ws();
                    match self.peek() {
                        Some(b'"') => {
                            let line = self.line;
                            let key = self.string();
                            self.ws();
                            if self.peek() == Some(b':') {
                                self.bump();
                            }
                            self.value(format!("{path}/{}", pointer_token(&key)), Some(line));
                            self.ws();
                            if self.peek() == Some(b',') {
                                self.bump();
                            }
                        }
                        Some(b'}') => {
                            self.bump();
                            break;
                        }
                        None => break,
                        Some(_) => {
                            self.bump();
                        }
                    }
                }
            }
            Some(b'[') => {
                self.bump();
                let mut index = 0usize;
                loop {
                    self.ws();
                    match self.peek() {
                        Some(b']') => {
                            self.bump();
                            break;
                        }
                        None => break,
                        Some(b',') => {
                            self.bump();
                        }
                        Some(_) => {
                            let start = self.i;
                            self.value(format!("{path}/{index}"), None);
                            index += 1;
                            if self.i == start {
                                self.bump();
                            }
                        }
                    }
                }
            }
            Some(b'"') => {
                self.string();
            }
            Some(_) => {
                while let Some(c) = self.peek() {
                    if matches!(c, b',' | b'}' | b']') || c.is_ascii_whitespace() {
                        break;
                    }
                    self.bump();
                }
            }
            None => {}
        }
    }
}

/// `text` with its `//` and `/* */` comments turned to spaces (its line breaks kept,
/// so every line number stays the original's), and the line of its first comment;
/// `None` when it holds none.
pub(crate) fn strip_comments(text: &str) -> Option<(String, u32)> {
    use std::io::Read as _;
    let mut stripped = Vec::with_capacity(text.len());
    json_comments::CommentSettings::c_style()
        .strip_comments(text.as_bytes())
        .read_to_end(&mut stripped)
        .ok()?;
    let first = text
        .bytes()
        .zip(stripped.iter())
        .position(|(a, b)| a != *b)?;
    // A block comment's line breaks became spaces too: put them back.
    for (kept, original) in stripped.iter_mut().zip(text.bytes()) {
        if matches!(original, b'\n' | b'\r') {
            *kept = original;
        }
    }
    let line = text[..first].matches('\n').count() as u32 + 1;
    Some((String::from_utf8(stripped).ok()?, line))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_placed_on_the_line_of_their_key() {
        let text = "{\n  \"app_name\": \"x\",\n  \"actions\": [\n    {\"name\": \"a\"},\n    {\n      \"name\": \"b\"\n    }\n  ],\n  \"a/b\": {\"c\": [1, 2]}\n}";
        let l = lines(text);
        assert_eq!(l["/app_name"], 2);
        assert_eq!(l["/actions"], 3);
        assert_eq!(l["/actions/0"], 4);
        assert_eq!(l["/actions/0/name"], 4);
        assert_eq!(l["/actions/1"], 5);
        assert_eq!(l["/actions/1/name"], 6);
        assert_eq!(l["/a~1b/c/1"], 9);
    }

    #[test]
    fn escaped_quotes_in_strings_do_not_derail_it() {
        let l = lines("{\"a\": \"x\\\"}\", \n\"b\": 1}");
        assert_eq!(l["/b"], 2);
    }
}

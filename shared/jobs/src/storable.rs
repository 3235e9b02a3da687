//! What the job store can keep: Postgres refuses the character U+0000 in `text` and in
//! `jsonb` strings and keys. Submitted data holding it is refused at the gateway (422);
//! what an app returns or prints (results, errors, logs) has it replaced with U+FFFD
//! before it is written, so one app's output cannot fail a statement that records other
//! apps' jobs too.

use serde_json::Value;

/// Whether a key or string anywhere in `value` holds U+0000.
pub fn has_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// Why a submitted body cannot be read as JSON, for a person: JSON text may hold a lone
/// UTF-16 surrogate escape (`"\ud800"`, which Python reads and a sync call takes), but
/// nothing that parses it here or stores it in `jsonb` can, so that case is named.
pub fn unreadable_body(body: &[u8], e: &serde_json::Error) -> String {
    if has_lone_surrogate_escape(body) {
        format!(
            "request body holds a lone UTF-16 surrogate escape (\\uD800 to \\uDFFF without its pair), which JSON text allows but the job queue cannot store ({e}); send the text without it, or as a sync call"
        )
    } else {
        format!("request body is not valid JSON: {e}")
    }
}

/// Whether a `\uD800`–`\uDFFF` escape in `body` is not one half of a pair.
fn has_lone_surrogate_escape(body: &[u8]) -> bool {
    let hex4 = |at: usize| {
        body.get(at..at + 4)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u16::from_str_radix(h, 16).ok())
    };
    let high = |v: u16| (0xD800..0xDC00).contains(&v);
    let low = |v: u16| (0xDC00..0xE000).contains(&v);
    let mut i = 0;
    while i + 1 < body.len() {
        if body[i] != b'\\' {
            i += 1;
            continue;
        }
        // An escape: `\\` and `\"` are skipped whole, so an escaped backslash
        // before `u` is not read as one.
        match (body[i + 1], hex4(i + 2)) {
            (b'u', Some(v)) if high(v) => {
                let paired = body.get(i + 6..i + 8) == Some(b"\\u".as_slice())
                    && hex4(i + 8).is_some_and(low);
                if !paired {
                    return true;
                }
                i += 12;
            }
            (b'u', Some(v)) if low(v) => return true,
            (b'u', Some(_)) => i += 6,
            _ => i += 2,
        }
    }
    false
}

/// `value` with every U+0000 in its keys and strings replaced by U+FFFD.
pub fn without_nul(value: Value) -> Value {
    if !has_nul(&value) {
        return value;
    }
    match value {
        Value::String(s) => Value::String(text(s)),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nul).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (text(k), without_nul(v)))
                .collect(),
        ),
        other => other,
    }
}

/// `s` with every U+0000 replaced by U+FFFD.
pub fn text(s: String) -> String {
    if s.contains('\0') {
        s.replace('\0', "\u{FFFD}")
    } else {
        s
    }
}

/// Most bytes of a job's error message stored (an exception message can be any size).
pub const ERROR_BYTES: usize = 16 * 1024;

/// A job's error message as stored: [`text`], cut to [`ERROR_BYTES`] on a character
/// boundary with a marker saying how long it was.
pub fn error_text(s: String) -> String {
    let s = text(s);
    if s.len() <= ERROR_BYTES {
        return s;
    }
    let mut end = ERROR_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}… [error message truncated: {} bytes]",
        &s[..end],
        s.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nul_is_found_and_replaced_in_keys_and_nested_strings() {
        let v = json!({"a\u{0}": ["x", {"b": "c\u{0}d"}], "n": 1});
        assert!(has_nul(&v));
        let clean = without_nul(v);
        assert!(!has_nul(&clean));
        assert_eq!(
            clean,
            json!({"a\u{FFFD}": ["x", {"b": "c\u{FFFD}d"}], "n": 1})
        );
        let plain = json!({"a": "b"});
        assert_eq!(without_nul(plain.clone()), plain);
        assert_eq!(text("x\u{0}".into()), "x\u{FFFD}");
    }

    #[test]
    fn a_lone_surrogate_escape_is_named_and_a_pair_or_an_escaped_backslash_is_not() {
        let lone = |t: &str| has_lone_surrogate_escape(t.as_bytes());
        assert!(lone(r#"{"s":"\ud800"}"#));
        assert!(lone(r#"{"s":"\udc00\ud800"}"#));
        assert!(lone(r#"{"s":"x\uDBFF"}"#));
        assert!(!lone(r#"{"s":"\ud83d\ude00"}"#), "a pair is one character");
        assert!(
            !lone(r#"{"s":"\\ud800"}"#),
            "an escaped backslash, then text"
        );
        assert!(!lone(r#"{"s":"\u00e9\n"}"#));
        let body = br#"{"s":"\ud800"}"#;
        let e = serde_json::from_slice::<Value>(body).unwrap_err();
        assert!(unreadable_body(body, &e).contains("lone UTF-16 surrogate"));
        let body = br#"{"s":}"#;
        let e = serde_json::from_slice::<Value>(body).unwrap_err();
        assert!(unreadable_body(body, &e).starts_with("request body is not valid JSON"));
    }

    #[test]
    fn long_error_messages_are_cut_on_a_character_boundary() {
        let long = "é".repeat(ERROR_BYTES);
        let cut = error_text(long.clone());
        assert!(cut.len() < ERROR_BYTES + 64, "{}", cut.len());
        assert!(cut.ends_with(&format!("[error message truncated: {} bytes]", long.len())));
        assert_eq!(error_text("short".into()), "short");
    }
}

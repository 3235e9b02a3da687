//! The JS checks of the frontend checklist: one IIFE starting with `"use strict"`,
//! `AdminWS` used inside it, no `onclick=`-style handlers in HTML built in strings.

use super::{warn, Finding, IIFE_END, IIFE_START, JS_HTML_HANDLER};

/// The code with comments, strings, template literals and regex literals blanked to
/// spaces (delimiters and newlines kept), so braces and names can be read plainly.
pub fn blank_js(text: &str) -> Vec<char> {
    let src: Vec<char> = text.chars().collect();
    let mut out = src.clone();
    let mut i = 0;
    let mut last_sig: Option<char> = None;
    let mut last_word = String::new();
    let blank = |out: &mut Vec<char>, from: usize, to: usize| {
        for c in out.iter_mut().take(to).skip(from) {
            if *c != '\n' {
                *c = ' ';
            }
        }
    };
    while i < src.len() {
        let c = src[i];
        let next = src.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            let end = src[i..]
                .iter()
                .position(|&c| c == '\n')
                .map_or(src.len(), |p| i + p);
            blank(&mut out, i, end);
            i = end;
            continue;
        }
        if c == '/' && next == Some('*') {
            let mut j = i + 2;
            while j + 1 < src.len() && !(src[j] == '*' && src[j + 1] == '/') {
                j += 1;
            }
            let end = (j + 2).min(src.len());
            blank(&mut out, i, end);
            i = end;
            continue;
        }
        if c == '"' || c == '\'' {
            let mut j = i + 1;
            while j < src.len() && src[j] != c && src[j] != '\n' {
                if src[j] == '\\' {
                    j += 1;
                }
                j += 1;
            }
            blank(&mut out, i + 1, j.min(src.len()));
            i = j + 1;
            last_sig = Some(c);
            last_word.clear();
            continue;
        }
        if c == '`' {
            let end = skip_template(&src, i);
            blank(&mut out, i + 1, end.saturating_sub(1));
            i = end;
            last_sig = Some('`');
            last_word.clear();
            continue;
        }
        if c == '/' {
            let regex_ok = match last_sig {
                None => true,
                Some(p) => "(,=:[!&|?{};+-*%<>~^".contains(p),
            } || matches!(
                last_word.as_str(),
                "return"
                    | "typeof"
                    | "case"
                    | "in"
                    | "of"
                    | "delete"
                    | "void"
                    | "throw"
                    | "new"
                    | "yield"
                    | "await"
            );
            if regex_ok {
                let mut j = i + 1;
                let mut class = false;
                while j < src.len() && src[j] != '\n' {
                    match src[j] {
                        '\\' => j += 1,
                        '[' => class = true,
                        ']' => class = false,
                        '/' if !class => break,
                        _ => {}
                    }
                    j += 1;
                }
                blank(&mut out, i + 1, j.min(src.len()));
                i = j + 1;
                last_sig = Some('/');
                last_word.clear();
                continue;
            }
        }
        if c.is_alphanumeric() || c == '_' || c == '$' {
            if !last_sig.is_some_and(|p| p.is_alphanumeric() || p == '_' || p == '$') {
                last_word.clear();
            }
            last_word.push(c);
            last_sig = Some(c);
        } else if !c.is_whitespace() {
            last_sig = Some(c);
            last_word.clear();
        }
        i += 1;
    }
    out
}

/// Index just past the template literal starting at `start` (a backtick).
fn skip_template(src: &[char], start: usize) -> usize {
    let mut i = start + 1;
    while i < src.len() {
        match src[i] {
            '\\' => i += 2,
            '`' => return i + 1,
            '$' if src.get(i + 1) == Some(&'{') => {
                let mut depth = 0i32;
                i += 1;
                while i < src.len() {
                    match src[i] {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        '`' => {
                            i = skip_template(src, i);
                            continue;
                        }
                        '"' | '\'' => {
                            let q = src[i];
                            i += 1;
                            while i < src.len() && src[i] != q {
                                if src[i] == '\\' {
                                    i += 1;
                                }
                                i += 1;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    src.len()
}

fn line_at(chars: &[char], idx: usize) -> u32 {
    chars.iter().take(idx).filter(|&&c| c == '\n').count() as u32 + 1
}

/// Whether the code is one IIFE, and whether its body starts with `"use strict"`.
fn iife(code: &[char], text: &[char]) -> (bool, bool) {
    let s: String = code.iter().collect();
    let trimmed = s.trim();
    let lead = s.len() - s.trim_start().len();
    let start = IIFE_START.as_ref().and_then(|r| r.find(trimmed));
    let ends = IIFE_END.as_ref().is_some_and(|r| r.is_match(trimmed));
    let Some(m) = start else {
        return (false, false);
    };
    if !ends {
        return (false, false);
    }
    // Char index of the body's `{` (the match ends just after it).
    let brace = trimmed[..m.end()].chars().count() + s[..lead].chars().count();
    let first = (brace..code.len()).find(|&i| !code[i].is_whitespace() && code[i] != ';');
    let strict = first.is_some_and(|i| {
        let rest: String = text.iter().skip(i).take(12).collect();
        rest == "\"use strict\"" || rest == "'use strict'"
    });
    (true, strict)
}

pub fn check_js(path: &str, text: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    let src: Vec<char> = text.chars().collect();
    let code = blank_js(text);
    if code.iter().all(|c| c.is_whitespace()) {
        return out;
    }
    let (wrapped, strict) = iife(&code, &src);
    let first_line = code
        .iter()
        .position(|c| !c.is_whitespace())
        .map_or(1, |i| line_at(&code, i));
    if !wrapped {
        out.push(warn(
            "frontend.iife",
            path,
            first_line,
            format!("{path} is not wrapped in an IIFE: put all of it in (function () {{ \"use strict\"; … }})(); so nothing leaks into window and collides with other apps"),
        ));
    } else if !strict {
        out.push(warn(
            "frontend.iife",
            path,
            first_line,
            format!("the IIFE of {path} does not start with \"use strict\"; add it as the first statement"),
        ));
    }
    for (i, l) in text.lines().enumerate() {
        if let Some(cap) = JS_HTML_HANDLER.as_ref().and_then(|r| r.captures(l)) {
            let attr = cap.get(1).map_or("", |m| m.as_str());
            out.push(warn(
                "frontend.inline_handler",
                path,
                i as u32 + 1,
                format!("HTML built here has an {attr}= attribute: it runs in global scope where the IIFE's functions are not reachable; use data-action and one delegated listener"),
            ));
        }
    }
    out.extend(admin_ws_at_module_scope(path, &code, usize::from(wrapped)));
    out
}

/// Globals and page-wide queries: `window.<name> = …` (a name the next app may take;
/// one object named for the app is the namespace the guide allows), and
/// `document.querySelectorAll(…)` or `document.querySelector(…)` other than the one
/// that finds the app's root, `.nr-app` (they reach the layout and other apps).
pub fn check_scope(app: &str, path: &str, text: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    let src: Vec<char> = text.chars().collect();
    let chars = blank_js(text);
    let namespace = |name: &str| {
        let squash = |s: &str| s.to_ascii_lowercase().replace(['_', '-'], "");
        !app.is_empty() && squash(name) == squash(app)
    };
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$';
    // Where `pat` starts in the code, not as a member of something else (`x.window.`).
    let starts = |pat: &str| -> Vec<usize> {
        let pat: Vec<char> = pat.chars().collect();
        (0..chars.len())
            .filter(|&i| {
                chars[i..].starts_with(&pat)
                    && (i == 0 || !(ident(chars[i - 1]) || chars[i - 1] == '.'))
            })
            .collect()
    };
    let mut lines = Lines::new(&chars);
    for at in starts("window.") {
        let name: String = chars[at + 7..].iter().take_while(|c| ident(**c)).collect();
        let after = &chars[at + 7 + name.chars().count()..];
        let mut rest = after.iter().skip_while(|c| **c == ' ' || **c == '\t');
        let assigned = rest.next() == Some(&'=') && rest.next() != Some(&'=');
        if assigned && !name.is_empty() && !namespace(&name) {
            out.push(warn(
                "frontend.global",
                path,
                lines.at(at),
                format!("window.{name} = … makes a global that the layout and other apps share (the next one with the same name overwrites it); keep it inside your IIFE, or put one object named for your app on window (window.{})", if app.is_empty() { "my_app".to_owned() } else { app.replace('-', "_") }),
            ));
        }
    }
    for call in ["document.querySelectorAll(", "document.querySelector("] {
        let mut lines = Lines::new(&chars);
        for at in starts(call) {
            let arg: String = src[at + call.len()..]
                .iter()
                .skip_while(|c| c.is_whitespace())
                .take(9)
                .collect();
            let root = call.ends_with("querySelector(")
                && (arg.starts_with("\".nr-app\"") || arg.starts_with("'.nr-app'"));
            if !root {
                out.push(warn(
                    "frontend.unscoped_query",
                    path,
                    lines.at(at),
                    format!("{call}…) searches the whole page, the layout and other apps included; search from your app's root: var root = document.querySelector(\".nr-app\"); root.{}…)", &call["document.".len()..]),
                ));
            }
        }
    }
    out
}

/// Line numbers of positions asked in ascending order, counted in one pass over the
/// text (a file with many findings is not read again for each).
struct Lines<'a> {
    chars: &'a [char],
    at: usize,
    line: u32,
}

impl<'a> Lines<'a> {
    fn new(chars: &'a [char]) -> Self {
        Lines {
            chars,
            at: 0,
            line: 1,
        }
    }

    fn at(&mut self, idx: usize) -> u32 {
        if idx < self.at {
            (self.at, self.line) = (0, 1);
        }
        let idx = idx.min(self.chars.len());
        let newlines = self.chars[self.at..idx]
            .iter()
            .filter(|c| **c == '\n')
            .count();
        self.line += u32::try_from(newlines).unwrap_or(u32::MAX);
        self.at = idx;
        self.line
    }
}

/// `AdminWS` used outside any function (or directly in the IIFE's body): admin-ws.js
/// loads after the app's script, so it is not there yet.
fn admin_ws_at_module_scope(path: &str, code: &[char], module_depth: usize) -> Vec<Finding> {
    let mut out = Vec::new();
    // For each open bracket: is it a function body?
    let mut stack: Vec<(char, bool)> = Vec::new();
    // Bracket depth at which an expression-bodied arrow function started.
    let mut arrows: Vec<usize> = Vec::new();
    let mut line = 1u32;
    let mut i = 0;
    let is_word = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
    while i < code.len() {
        let c = code[i];
        match c {
            '\n' => line += 1,
            '{' => {
                let f = opens_function(code, i);
                stack.push(('{', f));
            }
            '(' | '[' => stack.push((c, false)),
            '}' | ')' | ']' => {
                stack.pop();
                arrows.retain(|&d| d <= stack.len());
            }
            ',' | ';' => arrows.retain(|&d| d < stack.len()),
            '=' if code.get(i + 1) == Some(&'>') => {
                let next = code[i + 2..].iter().find(|c| !c.is_whitespace());
                if next != Some(&'{') {
                    arrows.push(stack.len());
                }
                i += 2;
                continue;
            }
            'A' if (i == 0 || !(is_word(code[i - 1]) || code[i - 1] == '.'))
                && code[i..].starts_with(&['A', 'd', 'm', 'i', 'n', 'W', 'S'])
                && !code.get(i + 7).is_some_and(|&c| is_word(c)) =>
            {
                let depth = stack.iter().filter(|(_, f)| *f).count() + arrows.len();
                if depth <= module_depth {
                    out.push(warn(
                        "frontend.adminws_module_scope",
                        path,
                        line,
                        "AdminWS is used at module scope: admin-ws.js loads after your script, so it is not there yet; use it inside an event listener or async callback".into(),
                    ));
                }
                i += 7;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// Whether the `{` at `at` opens a function body (after `=>`, or after the `)` of a
/// parameter list that follows `function`, a function name or a method name).
fn opens_function(code: &[char], at: usize) -> bool {
    let mut j = at;
    while j > 0 && code[j - 1].is_whitespace() {
        j -= 1;
    }
    if j >= 2 && code[j - 1] == '>' && code[j - 2] == '=' {
        return true;
    }
    if j == 0 || code[j - 1] != ')' {
        return false;
    }
    // Find the matching `(`.
    let mut depth = 0i32;
    let mut k = j - 1;
    loop {
        match code[k] {
            ')' => depth += 1,
            '(' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            _ => {}
        }
        if k == 0 {
            return false;
        }
        k -= 1;
    }
    let mut w = k;
    while w > 0 && code[w - 1].is_whitespace() {
        w -= 1;
    }
    let end = w;
    while w > 0 && (code[w - 1].is_alphanumeric() || code[w - 1] == '_' || code[w - 1] == '$') {
        w -= 1;
    }
    let word: String = code[w..end].iter().collect();
    !matches!(
        word.as_str(),
        "if" | "for" | "while" | "switch" | "catch" | "with"
    )
}

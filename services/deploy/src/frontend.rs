//! The author guide's frontend checklist as warnings with file and line. The checks are
//! deliberately simple (a small lexer for JS and CSS, line patterns for HTML): they
//! catch what the guide forbids in code written to it, and never refuse a bundle.
//!
//! - JS not wrapped in one IIFE starting with `"use strict"`, `AdminWS` at module scope;
//! - `onclick=`-style attributes (in HTML, and in HTML built in JS strings);
//! - CSS classes without the app's common prefix, hard-coded hex colours instead of
//!   `var(--bs-*)`, rules on `body`, `:root`, `*` or bare elements;
//! - scripts, styles or CSS `url()`s from an external URL instead of `/assets/vendor/`;
//! - a Bootstrap bundle or stylesheet inside `<body>`.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;

use crate::findings::{finding, Finding};

fn re(pattern: &str) -> Option<Regex> {
    Regex::new(pattern).ok()
}

static HEX: LazyLock<Option<Regex>> =
    LazyLock::new(|| re(r"#(?:[0-9a-fA-F]{8}|[0-9a-fA-F]{6}|[0-9a-fA-F]{3,4})\b"));
static CLASS: LazyLock<Option<Regex>> = LazyLock::new(|| re(r"\.(-?[_a-zA-Z][_a-zA-Z0-9-]*)"));
static CSS_URL: LazyLock<Option<Regex>> =
    LazyLock::new(|| re(r#"(?i)(?:url\(\s*["']?|@import\s+["'])((?:https?:)?//[^"')\s;]+)"#));
static SCRIPT_SRC: LazyLock<Option<Regex>> =
    LazyLock::new(|| re(r#"(?i)<script\b[^>]*?\bsrc\s*=\s*["']?([^"'\s>]+)"#));
static LINK_HREF: LazyLock<Option<Regex>> =
    LazyLock::new(|| re(r#"(?i)<link\b[^>]*?\bhref\s*=\s*["']?([^"'\s>]+)"#));
static HTML_HANDLER: LazyLock<Option<Regex>> =
    LazyLock::new(|| re(r#"(?i)(?:^|[\s"'/])(on[a-z]{3,})\s*=\s*["'a-z_$]"#));
static JS_HTML_HANDLER: LazyLock<Option<Regex>> =
    LazyLock::new(|| re(r#"(?i)<[a-z][a-z0-9-]*\b[^<>]*?\s(on[a-z]{3,})\s*="#));
static STYLE_ATTR: LazyLock<Option<Regex>> =
    LazyLock::new(|| re(r#"(?i)\sstyle\s*=\s*("[^"]*"|'[^']*')"#));
static BOOTSTRAP_JS: LazyLock<Option<Regex>> = LazyLock::new(|| re(r"(?i)bootstrap[^/]*\.js\b"));
static BOOTSTRAP_CSS: LazyLock<Option<Regex>> = LazyLock::new(|| re(r"(?i)bootstrap[^/]*\.css\b"));
static IIFE_START: LazyLock<Option<Regex>> = LazyLock::new(|| {
    re(
        r"^[;!+~-]?\s*\(\s*(?:async\s+)?(?:function\b[^{]*|\([^)]*\)\s*=>\s*|[A-Za-z_$][\w$]*\s*=>\s*)\{",
    )
});
static IIFE_END: LazyLock<Option<Regex>> =
    LazyLock::new(|| re(r"\}\s*(?:\)\s*\([^()]*\)|\(\s*[^()]*\)\s*\))\s*;?$"));

fn is_external(url: &str) -> bool {
    let u = url.to_ascii_lowercase();
    u.starts_with("http://") || u.starts_with("https://") || u.starts_with("//")
}

/// Runs every frontend check over the bundle's text files (path → content).
pub fn check(texts: &BTreeMap<String, Vec<u8>>) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut classes: Vec<(String, String, u32)> = Vec::new();
    for (path, bytes) in texts {
        let text = String::from_utf8_lossy(bytes);
        let lower = path.to_ascii_lowercase();
        if lower.ends_with(".js") || lower.ends_with(".mjs") {
            out.extend(check_js(path, &text));
        } else if lower.ends_with(".css") {
            let css = check_css(path, &text);
            out.extend(css.findings);
            classes.extend(css.classes.into_iter().map(|(c, l)| (c, path.clone(), l)));
        } else if lower.ends_with(".html") || lower.ends_with(".htm") {
            out.extend(check_html(path, &text));
        }
    }
    out.extend(check_prefixes(&classes));
    out.extend(unlinked_style(texts));
    out
}

/// The bundle's `style.css` that its page never links: the shell loads only the
/// stylesheets a page links, so those styles would silently not apply.
fn unlinked_style(texts: &BTreeMap<String, Vec<u8>>) -> Option<Finding> {
    let page = texts.get("index.html")?;
    texts.get("style.css")?;
    let linked = LINK_HREF.as_ref().is_some_and(|r| {
        r.captures_iter(&String::from_utf8_lossy(page)).any(|c| {
            c.get(1)
                .is_some_and(|m| m.as_str().trim_start_matches("./") == "style.css")
        })
    });
    (!linked).then(|| {
        warn(
            "frontend.style_unlinked",
            "index.html",
            1,
            "style.css is in the bundle but index.html does not link it, so its styles do not apply: add <link rel=\"stylesheet\" href=\"style.css\" /> to the page's <head>".into(),
        )
    })
}

fn warn(rule: &str, file: &str, line: u32, message: String) -> Finding {
    finding(rule, Some(file), Some(line), message)
}

// ── CSS ─────────────────────────────────────────────────────────────────────

/// CSS findings, and every class a selector names with its line.
pub struct CssReport {
    pub findings: Vec<Finding>,
    pub classes: Vec<(String, u32)>,
}

/// Replaces comments with spaces, newlines kept, so positions and lines stay put.
fn blank_css_comments(text: &str) -> Vec<char> {
    let mut out: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i + 1 < out.len() {
        if out[i] == '/' && out[i + 1] == '*' {
            let mut j = i;
            while j < out.len() && !(j >= i + 3 && out[j - 1] == '*' && out[j] == '/') {
                if out[j] != '\n' {
                    out[j] = ' ';
                }
                j += 1;
            }
            if j < out.len() {
                out[j] = ' ';
            }
            i = j + 1;
        } else {
            i += 1;
        }
    }
    out
}

#[derive(Clone, Copy, PartialEq)]
enum CssBlock {
    /// A style rule: declarations inside.
    Rule,
    /// `@media`, `@supports`…: rules inside.
    Group,
    /// `@keyframes`, `@font-face`… or nested braces in declarations: not selectors.
    Other,
}

/// Splits a selector list at top-level commas.
fn split_selectors(prelude: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in prelude.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&prelude[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&prelude[start..]);
    parts
}

/// Masks `[...]` and `(...)` contents (class-looking text there is not a class), keeping
/// the brackets so an attribute selector stays one compound.
fn strip_brackets(sel: &str) -> String {
    let mut out = String::new();
    let mut depth = 0i32;
    for c in sel.chars() {
        match c {
            '[' | '(' => {
                depth += 1;
                out.push(c);
            }
            ']' | ')' => {
                depth -= 1;
                out.push(c);
            }
            _ if depth > 0 => out.push('_'),
            _ => out.push(c),
        }
    }
    out
}

/// True when a selector starts from the whole page: `body`, `:root`, `*`, `p`, `[x]`…
/// rather than from a class or an id.
pub fn is_global_selector(sel: &str) -> bool {
    let s = strip_brackets(sel.trim());
    let first = s
        .split(|c: char| c.is_whitespace() || matches!(c, '>' | '+' | '~'))
        .find(|p| !p.is_empty())
        .unwrap_or("");
    !first.is_empty() && !first.contains('.') && !first.contains('#')
}

pub fn check_css(path: &str, text: &str) -> CssReport {
    let chars = blank_css_comments(text);
    let mut findings = Vec::new();
    let mut classes = Vec::new();
    let mut stack: Vec<CssBlock> = Vec::new();
    let mut prelude = String::new();
    let mut prelude_line = 1u32;
    let mut line = 1u32;
    let mut decl_line = String::new();
    let in_decls =
        |stack: &[CssBlock]| matches!(stack.last(), Some(CssBlock::Rule | CssBlock::Other));
    let flush_decl = |decl: &mut String, line: u32, findings: &mut Vec<Finding>| {
        if let Some(hex) = HEX.as_ref().and_then(|r| r.find(decl)) {
            findings.push(warn(
                "frontend.hex_color",
                path,
                line,
                format!("hard-coded colour {} ignores the light/dark theme; use a Bootstrap variable such as var(--bs-body-color) or var(--bs-secondary-bg)", hex.as_str()),
            ));
        }
        decl.clear();
    };
    for &c in &chars {
        if c == '\n' {
            if in_decls(&stack) {
                flush_decl(&mut decl_line, line, &mut findings);
            }
            line += 1;
        }
        if in_decls(&stack) {
            match c {
                '{' => stack.push(CssBlock::Other),
                '}' => {
                    flush_decl(&mut decl_line, line, &mut findings);
                    stack.pop();
                    prelude.clear();
                }
                _ => decl_line.push(c),
            }
            continue;
        }
        match c {
            '{' => {
                let p = prelude.trim().to_owned();
                if let Some(at) = p.strip_prefix('@') {
                    let name: String = at
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                        .collect();
                    let group = matches!(
                        name.to_ascii_lowercase().as_str(),
                        "media"
                            | "supports"
                            | "container"
                            | "layer"
                            | "document"
                            | "scope"
                            | "starting-style"
                    );
                    stack.push(if group {
                        CssBlock::Group
                    } else {
                        CssBlock::Other
                    });
                } else {
                    for sel in split_selectors(&p) {
                        let sel = sel.trim();
                        if sel.is_empty() {
                            continue;
                        }
                        if is_global_selector(sel) {
                            findings.push(warn(
                                "frontend.global_selector",
                                path,
                                prelude_line,
                                format!("selector {sel:?} targets body, :root, * or a bare element: it restyles the admin layout and every other app; start it from a class with your prefix"),
                            ));
                        }
                        let stripped = strip_brackets(sel);
                        for cap in CLASS
                            .as_ref()
                            .into_iter()
                            .flat_map(|r| r.captures_iter(&stripped))
                        {
                            if let Some(m) = cap.get(1) {
                                classes.push((m.as_str().to_owned(), prelude_line));
                            }
                        }
                    }
                    stack.push(CssBlock::Rule);
                }
                prelude.clear();
            }
            '}' => {
                stack.pop();
                prelude.clear();
            }
            ';' => {
                external_css_urls(path, &prelude, prelude_line, &mut findings);
                prelude.clear();
            }
            _ => {
                if prelude.trim().is_empty() && !c.is_whitespace() {
                    prelude_line = line;
                }
                prelude.push(c);
            }
        }
    }
    // External url()s anywhere (declarations included), line by line.
    let blanked: String = chars.iter().collect();
    for (i, l) in blanked.lines().enumerate() {
        if !l.trim_start().starts_with("@import") {
            external_css_urls(path, l, i as u32 + 1, &mut findings);
        }
    }
    CssReport { findings, classes }
}

fn external_css_urls(path: &str, text: &str, line: u32, findings: &mut Vec<Finding>) {
    for cap in CSS_URL
        .as_ref()
        .into_iter()
        .flat_map(|r| r.captures_iter(text))
    {
        if let Some(url) = cap.get(1) {
            findings.push(warn(
                "frontend.external_url",
                path,
                line,
                format!("{} is loaded from an external URL; the platform runs without internet access: serve it from /assets/vendor/ or the bundle", url.as_str()),
            ));
        }
    }
}

/// Classes without the prefix most classes share (`notes-` in `.notes-item`).
pub fn check_prefixes(classes: &[(String, String, u32)]) -> Vec<Finding> {
    let prefix_of = |c: &str| c.find('-').filter(|i| *i > 0).map(|i| c[..=i].to_owned());
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for (c, _, _) in classes {
        if let Some(p) = prefix_of(c) {
            *counts.entry(p).or_default() += 1;
        }
    }
    let common = counts
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(p, _)| p.clone());
    let mut out = Vec::new();
    let mut reported = std::collections::BTreeSet::new();
    for (class, file, line) in classes {
        let ok = match (&common, prefix_of(class)) {
            (Some(common), Some(p)) => &p == common,
            _ => false,
        };
        if !ok && reported.insert(class.clone()) {
            let advice = match &common {
                Some(p) => format!("prefix it like the others ({p})"),
                None => "prefix every class with your app's slug, such as hw-card".into(),
            };
            out.push(warn(
                "frontend.css_prefix",
                file,
                *line,
                format!("class .{class} has no common app prefix: unprefixed classes collide with other apps' (the last deployed wins); {advice}"),
            ));
        }
    }
    out
}

// ── JS ──────────────────────────────────────────────────────────────────────

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

// ── HTML ────────────────────────────────────────────────────────────────────

pub fn check_html(path: &str, text: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    let lower = text.to_ascii_lowercase();
    let has_body = lower.contains("<body");
    let mut in_body = !has_body;
    let mut in_script = false;
    for (i, l) in text.lines().enumerate() {
        let n = i as u32 + 1;
        let ll = l.to_ascii_lowercase();
        if ll.contains("<body") {
            in_body = true;
        }
        let opens_script = ll.contains("<script");
        let closes_script = ll.contains("</script");
        for cap in SCRIPT_SRC
            .as_ref()
            .into_iter()
            .flat_map(|r| r.captures_iter(l))
        {
            let url = cap.get(1).map_or("", |m| m.as_str());
            script_or_style(&mut out, path, n, url, in_body, true);
        }
        for cap in LINK_HREF
            .as_ref()
            .into_iter()
            .flat_map(|r| r.captures_iter(l))
        {
            let url = cap.get(1).map_or("", |m| m.as_str());
            script_or_style(&mut out, path, n, url, in_body, false);
        }
        if !in_script {
            if let Some(cap) = HTML_HANDLER.as_ref().and_then(|r| r.captures(l)) {
                let attr = cap.get(1).map_or("", |m| m.as_str());
                out.push(warn(
                    "frontend.inline_handler",
                    path,
                    n,
                    format!("{attr}= attribute: it runs in global scope, where functions inside your IIFE are not reachable; use data-action and one delegated listener"),
                ));
            }
            for cap in STYLE_ATTR
                .as_ref()
                .into_iter()
                .flat_map(|r| r.captures_iter(l))
            {
                if let Some(hex) = cap
                    .get(1)
                    .and_then(|v| HEX.as_ref().and_then(|r| r.find(v.as_str())))
                {
                    out.push(warn(
                        "frontend.hex_color",
                        path,
                        n,
                        format!("hard-coded colour {} in a style attribute ignores the light/dark theme; use var(--bs-*)", hex.as_str()),
                    ));
                }
            }
        }
        if opens_script && !closes_script {
            in_script = true;
        } else if closes_script {
            in_script = false;
        }
        if ll.contains("</body") {
            in_body = false;
        }
    }
    out
}

fn script_or_style(
    out: &mut Vec<Finding>,
    path: &str,
    line: u32,
    url: &str,
    in_body: bool,
    script: bool,
) {
    if is_external(url) {
        out.push(warn(
            "frontend.external_url",
            path,
            line,
            format!("{} {url} comes from an external URL; the platform runs without internet access: use /assets/vendor/ (echarts, Tabulator, XLSX, Papa, dayjs, lucide)", if script { "script" } else { "stylesheet" }),
        ));
    }
    let bootstrap = if script {
        &BOOTSTRAP_JS
    } else {
        &BOOTSTRAP_CSS
    };
    if in_body && bootstrap.as_ref().is_some_and(|r| r.is_match(url)) {
        out.push(warn(
            "frontend.bootstrap_in_body",
            path,
            line,
            format!("{url} is loaded inside <body>: the admin layout owns Bootstrap; remove it (keep the stylesheet in <head> only for standalone testing)"),
        ));
    }
}

#[cfg(test)]
#[path = "frontend_tests.rs"]
mod tests;

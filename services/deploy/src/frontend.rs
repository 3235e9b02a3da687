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

mod colour;
mod js;
pub use js::{blank_js, check_js};

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
pub(super) static JS_HTML_HANDLER: LazyLock<Option<Regex>> =
    LazyLock::new(|| re(r#"(?i)<[a-z][a-z0-9-]*\b[^<>]*?\s(on[a-z]{3,})\s*="#));
static STYLE_ATTR: LazyLock<Option<Regex>> =
    LazyLock::new(|| re(r#"(?i)\sstyle\s*=\s*("[^"]*"|'[^']*')"#));
static BOOTSTRAP_JS: LazyLock<Option<Regex>> = LazyLock::new(|| re(r"(?i)bootstrap[^/]*\.js\b"));
static BOOTSTRAP_CSS: LazyLock<Option<Regex>> = LazyLock::new(|| re(r"(?i)bootstrap[^/]*\.css\b"));
pub(super) static IIFE_START: LazyLock<Option<Regex>> = LazyLock::new(|| {
    re(
        r"^[;!+~-]?\s*\(\s*(?:async\s+)?(?:function\b[^{]*|\([^)]*\)\s*=>\s*|[A-Za-z_$][\w$]*\s*=>\s*)\{",
    )
});
pub(super) static IIFE_END: LazyLock<Option<Regex>> =
    LazyLock::new(|| re(r"\}\s*(?:\)\s*\([^()]*\)|\(\s*[^()]*\)\s*\))\s*;?$"));

fn is_external(url: &str) -> bool {
    let u = url.to_ascii_lowercase();
    u.starts_with("http://") || u.starts_with("https://") || u.starts_with("//")
}

/// Runs every frontend check over the text files (path → content) of `app`'s bundle.
pub fn check(app: &str, texts: &BTreeMap<String, Vec<u8>>) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut classes: Vec<(String, String, u32)> = Vec::new();
    for (path, bytes) in texts {
        let text = String::from_utf8_lossy(bytes);
        let lower = path.to_ascii_lowercase();
        if lower.ends_with(".js") || lower.ends_with(".mjs") {
            out.extend(check_js(path, &text));
            out.extend(js::check_scope(app, path, &text));
        } else if lower.ends_with(".css") {
            let css = check_css(path, &text);
            out.extend(css.findings);
            classes.extend(css.classes.into_iter().map(|(c, l)| (c, path.clone(), l)));
        } else if lower.ends_with(".html") || lower.ends_with(".htm") {
            out.extend(check_html(path, &text));
        }
    }
    out.extend(check_prefixes(app, &classes));
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

pub(super) fn warn(rule: &str, file: &str, line: u32, message: String) -> Finding {
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
        for d in decl.split(';') {
            if let Some(c) = colour::written_out(d) {
                findings.push(warn(
                    "frontend.named_color",
                    path,
                    line,
                    format!("colour {c} is fixed: it ignores the light/dark theme; use a Bootstrap variable such as var(--bs-body-color) or var(--bs-danger), or rgba(var(--bs-primary-rgb), .5)"),
                ));
            }
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
pub fn check_prefixes(app: &str, classes: &[(String, String, u32)]) -> Vec<Finding> {
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
                None => format!(
                    "prefix every class with your app's slug, such as {}-card",
                    if app.is_empty() {
                        "hw".to_owned()
                    } else {
                        app.replace('_', "-")
                    }
                ),
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

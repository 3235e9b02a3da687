//! Builds shell pages: fills the embedded templates and turns an app's `index.html`
//! into what the shell injects. No HTML parser: a bundle's page is the author's own
//! markup, so it is copied as written; only the tags the shell must act on (`<link>`,
//! `<style>` and `<script>` in the head, `<script>` in the body) are found, skipping
//! comments, and rewritten.

/// Escapes text for an HTML text node or a quoted attribute value.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a value for a query string.
pub(crate) fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Fills `{{name}}` markers of `template` in one pass: inserted values are not
/// scanned again, so a value containing `{{…}}` stays as it is. Values must already
/// be escaped (or be trusted markup). An unknown marker is left out.
pub(crate) fn render(template: &str, values: &[(&str, &str)]) -> String {
    let mut out =
        String::with_capacity(template.len() + values.iter().map(|v| v.1.len()).sum::<usize>());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let key = after[..end].trim();
                if let Some((_, v)) = values.iter().find(|(k, _)| *k == key) {
                    out.push_str(v);
                }
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// ASCII case-insensitive `find` from `from`.
fn find_ci(hay: &str, needle: &str, from: usize) -> Option<usize> {
    let h = hay.as_bytes();
    let n = needle.as_bytes();
    if n.is_empty() || from > h.len() || h.len() - from < n.len() {
        return None;
    }
    (from..=h.len() - n.len()).find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
}

/// True when `s[at..]` starts with `<name` followed by whitespace, `>` or `/`.
fn tag_at(s: &str, at: usize, name: &str) -> bool {
    let b = s.as_bytes();
    let end = at + 1 + name.len();
    b.get(at) == Some(&b'<')
        && b.get(at + 1..end)
            .is_some_and(|t| t.eq_ignore_ascii_case(name.as_bytes()))
        && b.get(end)
            .is_some_and(|c| c.is_ascii_whitespace() || *c == b'>' || *c == b'/')
}

/// The end (exclusive) of the tag opened at `at`: after its `>`, quotes respected.
fn tag_end(s: &str, at: usize) -> usize {
    let b = s.as_bytes();
    let mut quote: Option<u8> = None;
    let mut i = at + 1;
    while i < b.len() {
        let c = b[i];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == b'"' || c == b'\'' => quote = Some(c),
            None if c == b'>' => return i + 1,
            None => {}
        }
        i += 1;
    }
    b.len()
}

/// The attributes of an opening tag (`<script src="x" defer>`), names lowercased.
fn attributes(tag: &str) -> Vec<(String, Option<String>)> {
    let inner = tag
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim_end_matches('/');
    let b = inner.as_bytes();
    let mut i = b
        .iter()
        .position(|c| c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let mut out = Vec::new();
    while i < b.len() {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'=' && b[i] != b'/' {
            i += 1;
        }
        if start == i {
            if i < b.len() {
                i += 1;
            }
            continue;
        }
        let name = inner[start..i].to_ascii_lowercase();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < b.len() && b[i] == b'=' {
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            let value = if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                let q = b[i];
                let vs = i + 1;
                let ve = b[vs..]
                    .iter()
                    .position(|c| *c == q)
                    .map_or(b.len(), |p| vs + p);
                i = (ve + 1).min(b.len());
                &inner[vs..ve]
            } else {
                let vs = i;
                while i < b.len() && !b[i].is_ascii_whitespace() {
                    i += 1;
                }
                &inner[vs..i]
            };
            out.push((name, Some(value.to_owned())));
        } else {
            out.push((name, None));
        }
    }
    out
}

fn attr<'a>(attrs: &'a [(String, Option<String>)], name: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| v.as_deref())
}

/// Rebuilds an opening tag, with `url_attr` (if present) resolved against the app.
fn rebuild(name: &str, attrs: &[(String, Option<String>)], url_attr: &str, app: &str) -> String {
    let mut out = format!("<{name}");
    for (n, v) in attrs {
        out.push(' ');
        out.push_str(&esc(n));
        if let Some(v) = v {
            let v = if n == url_attr {
                resolve(v, app)
            } else {
                v.clone()
            };
            out.push_str("=\"");
            out.push_str(&esc(&decode_entities(&v)));
            out.push('"');
        }
    }
    out.push('>');
    out
}

/// Undoes the few entities an author may have written in an attribute, so that
/// re-escaping does not double them.
fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// A URL relative to the app's folder made absolute (`index.js` →
/// `/apps/<app>/index.js`); absolute paths, other schemes and fragments are kept.
pub(crate) fn resolve(url: &str, app: &str) -> String {
    let u = url.trim();
    let has_scheme = u.find(':').is_some_and(|i| {
        i > 0
            && u[..i].bytes().enumerate().all(|(k, c)| {
                c.is_ascii_alphabetic()
                    || (k > 0 && (c.is_ascii_digit() || matches!(c, b'+' | b'-' | b'.')))
            })
    });
    if u.is_empty() || u.starts_with('/') || u.starts_with('#') || u.starts_with('?') || has_scheme
    {
        return u.to_owned();
    }
    let mut rest = u;
    while let Some(r) = rest.strip_prefix("./") {
        rest = r;
    }
    format!("/apps/{app}/{rest}")
}

fn file_name(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or("");
    path.rsplit('/').next().unwrap_or("").to_ascii_lowercase()
}

/// `bootstrap.js`, `bootstrap.min.js`, `bootstrap.bundle.js`, `bootstrap.bundle.min.js`:
/// the layout owns Bootstrap, so an app's copy is dropped.
pub(crate) fn is_bootstrap_script(src: &str) -> bool {
    matches!(
        file_name(src).as_str(),
        "bootstrap.js" | "bootstrap.min.js" | "bootstrap.bundle.js" | "bootstrap.bundle.min.js"
    )
}

fn is_bootstrap_css(href: &str) -> bool {
    matches!(
        file_name(href).as_str(),
        "bootstrap.css" | "bootstrap.min.css"
    )
}

/// The head and body of a page. Without a `<body>` tag the whole document (less its
/// head) is the body.
pub(crate) fn split_document(html: &str) -> (&str, &str) {
    let head = find_open_tag(html, "head", 0).and_then(|(_, content_start)| {
        find_ci(html, "</head", content_start).map(|end| (content_start, end))
    });
    let head_str = head.map_or("", |(s, e)| &html[s..e]);
    let body = match find_open_tag(html, "body", head.map_or(0, |(_, e)| e)) {
        Some((_, start)) => {
            let end = rfind_ci(html, "</body")
                .filter(|e| *e >= start)
                .unwrap_or(html.len());
            &html[start..end]
        }
        None => {
            let start = head
                .and_then(|(_, e)| html[e..].find('>').map(|p| e + p + 1))
                .unwrap_or(0);
            let end = rfind_ci(html, "</html")
                .filter(|e| *e >= start)
                .unwrap_or(html.len());
            &html[start..end]
        }
    };
    (head_str, body)
}

/// Finds `<name …>` outside comments; returns (tag start, content start).
fn find_open_tag(html: &str, name: &str, from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while let Some(p) = html[i..].find('<').map(|p| i + p) {
        if html[p..].starts_with("<!--") {
            i = html[p + 4..]
                .find("-->")
                .map_or(html.len(), |e| p + 4 + e + 3);
            continue;
        }
        if tag_at(html, p, name) {
            return Some((p, tag_end(html, p)));
        }
        i = p + 1;
    }
    None
}

fn rfind_ci(hay: &str, needle: &str) -> Option<usize> {
    let h = hay.as_bytes();
    let n = needle.as_bytes();
    if h.len() < n.len() {
        return None;
    }
    (0..=h.len() - n.len())
        .rev()
        .find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
}

/// The end (exclusive) of the element whose opening tag ends at `open_end`.
fn element_end(s: &str, open_end: usize, name: &str) -> usize {
    match find_ci(s, &format!("</{name}"), open_end) {
        Some(close) => tag_end(s, close),
        None => s.len(),
    }
}

/// A `<style>` element (open tag at `p..end`) with its CSS confined to the app's
/// wrapper; returns the markup and where the element ends.
fn scoped_style(s: &str, p: usize, end: usize, app: &str) -> (String, usize) {
    let close_start = find_ci(s, "</style", end).unwrap_or(s.len());
    let close = element_end(s, end, "style");
    let css = super::scope::scope_css(&s[end..close_start], &super::scope::prefix(app));
    (format!("{}{}</style>", &s[p..end], css), close)
}

/// What the shell keeps from the app's `<head>`: stylesheets and scripts (vendor
/// libraries, the app's `style.css`) and `<style>` blocks, with relative URLs made
/// absolute. Bootstrap (owned by the layout), titles, metas and comments are dropped.
pub(crate) fn head_resources(head: &str, app: &str) -> String {
    let mut out = String::new();
    let mut i = 0;
    while let Some(p) = head[i..].find('<').map(|p| i + p) {
        if head[p..].starts_with("<!--") {
            i = head[p + 4..]
                .find("-->")
                .map_or(head.len(), |e| p + 4 + e + 3);
            continue;
        }
        let end = tag_end(head, p);
        if tag_at(head, p, "link") {
            let attrs = attributes(&head[p..end]);
            let rel = attr(&attrs, "rel").unwrap_or("").to_ascii_lowercase();
            let href = attr(&attrs, "href").unwrap_or("");
            let keep = rel
                .split_ascii_whitespace()
                .any(|r| r == "stylesheet" || r == "preload" || r == "modulepreload")
                && !is_bootstrap_css(href);
            if keep {
                out.push_str(&rebuild("link", &attrs, "href", app));
                out.push('\n');
            }
            i = end;
        } else if tag_at(head, p, "script") {
            let attrs = attributes(&head[p..end]);
            let close = element_end(head, end, "script");
            match attr(&attrs, "src") {
                Some(src) if is_bootstrap_script(src) => {}
                Some(_) => {
                    out.push_str(&rebuild("script", &attrs, "src", app));
                    out.push_str("</script>\n");
                }
                None => {
                    out.push_str(&head[p..close]);
                    out.push('\n');
                }
            }
            i = close;
        } else if tag_at(head, p, "style") {
            let (style, close) = scoped_style(head, p, end, app);
            out.push_str(&style);
            out.push('\n');
            i = close;
        } else {
            i = end.max(p + 1);
        }
    }
    out
}

/// The app's body as the shell injects it: Bootstrap scripts and stylesheets removed,
/// script and link URLs made absolute, `<style>` confined to the app's wrapper;
/// everything else as written.
pub(crate) fn body_content(body: &str, app: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut i = 0;
    let mut copied = 0;
    while let Some(p) = body[i..].find('<').map(|p| i + p) {
        if body[p..].starts_with("<!--") {
            i = body[p + 4..]
                .find("-->")
                .map_or(body.len(), |e| p + 4 + e + 3);
            continue;
        }
        if tag_at(body, p, "style") {
            let end = tag_end(body, p);
            let (style, close) = scoped_style(body, p, end, app);
            out.push_str(&body[copied..p]);
            out.push_str(&style);
            copied = close;
            i = close;
            continue;
        }
        if tag_at(body, p, "link") {
            // A page without a <head> (a fragment) links its style.css here: resolved
            // against the app, not the shell's own URL.
            let end = tag_end(body, p);
            let attrs = attributes(&body[p..end]);
            out.push_str(&body[copied..p]);
            if !attr(&attrs, "href").is_some_and(is_bootstrap_css) {
                out.push_str(&rebuild("link", &attrs, "href", app));
            }
            copied = end;
            i = end;
            continue;
        }
        if !tag_at(body, p, "script") {
            i = p + 1;
            continue;
        }
        let end = tag_end(body, p);
        let close = element_end(body, end, "script");
        let attrs = attributes(&body[p..end]);
        out.push_str(&body[copied..p]);
        match attr(&attrs, "src") {
            Some(src) if is_bootstrap_script(src) => {}
            Some(_) => {
                out.push_str(&rebuild("script", &attrs, "src", app));
                out.push_str("</script>");
            }
            None => out.push_str(&body[p..close]),
        }
        copied = close;
        i = close;
    }
    out.push_str(&body[copied..]);
    out
}

#[cfg(test)]
#[path = "compose_tests.rs"]
mod tests;

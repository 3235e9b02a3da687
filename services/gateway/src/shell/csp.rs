//! Content-Security-Policy of the browser side.
//!
//! - Shell and app pages: only the platform's own origin may provide scripts, styles,
//!   images, fonts and connections. The shell's own scripts are files; an app page's
//!   inline `<script>`/`<style>` (the author's own, from its `index.html`) get a
//!   per-response nonce. Inline `style="…"` attributes stay allowed (the author guide
//!   uses them; they cannot run code).
//! - Any other file of a bundle is served under `sandbox`: opened directly, an `.html`
//!   or `.svg` file runs in an opaque origin with no scripts, so it cannot act with the
//!   viewer's session. Scripts, styles and wasm are exempt (a policy on them does not
//!   apply when a page loads them; they are served as their own types with `nosniff`).

use axum::http::{header, HeaderValue, Response};

/// A fresh nonce for one response.
pub(crate) fn nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The policy of a shell or app page; `nonce` allows the inline elements carrying it.
pub(crate) fn page_policy(nonce: Option<&str>) -> String {
    let n = nonce.map(|n| format!(" 'nonce-{n}'")).unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self'{n}; style-src 'self'{n}; \
         style-src-attr 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; \
         connect-src 'self'; worker-src 'self' blob:; frame-src 'self'; \
         frame-ancestors 'self'; base-uri 'self'; form-action 'self'; object-src 'none'"
    )
}

/// The policy of a bundle file that is not its page.
pub(crate) const FILE_POLICY: &str =
    "sandbox; default-src 'none'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; font-src 'self' data:; media-src 'self'; frame-ancestors 'self'";

/// True for file types a policy on the response would not govern when a page loads
/// them (and that a browser never renders as a document under `nosniff`).
pub(crate) fn is_subresource(content_type: &str) -> bool {
    let t = content_type.split(';').next().unwrap_or("").trim();
    matches!(t, "text/javascript" | "text/css" | "application/wasm")
}

pub(crate) fn set<B>(res: &mut Response<B>, policy: &str) {
    if let Ok(v) = HeaderValue::from_str(policy) {
        res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
}

/// Adds `nonce="…"` to every inline `<script` (one without `src`) and every `<style`
/// start tag of `html`.
pub(crate) fn add_nonce(html: &str, nonce: &str) -> String {
    let mut out = String::with_capacity(html.len() + 64);
    let bytes = html.as_bytes();
    let mut copied = 0;
    let mut i = 0;
    while let Some(p) = html[i..].find('<').map(|p| i + p) {
        let name_len = ["script", "style"].iter().find_map(|name| {
            let end = p + 1 + name.len();
            let matches = bytes
                .get(p + 1..end)
                .is_some_and(|t| t.eq_ignore_ascii_case(name.as_bytes()))
                && bytes
                    .get(end)
                    .is_some_and(|c| c.is_ascii_whitespace() || *c == b'>' || *c == b'/');
            matches.then_some(name.len())
        });
        i = p + 1;
        // A script with `src` is allowed by origin; only inline code needs the nonce.
        let has_src = || {
            let tag = &html[p..html[p..].find('>').map_or(html.len(), |e| p + e)];
            tag.split_ascii_whitespace()
                .any(|a| a.to_ascii_lowercase().starts_with("src="))
        };
        if let Some(len) = name_len.filter(|len| *len != "script".len() || !has_src()) {
            let at = p + 1 + len;
            out.push_str(&html[copied..at]);
            out.push_str(&format!(" nonce=\"{nonce}\""));
            copied = at;
            i = at;
        }
    }
    out.push_str(&html[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_go_on_script_and_style_tags_only() {
        let html =
            "<SCRIPT>a()</SCRIPT><style>b{}</style><scripts><p>x</p><script src=\"y.js\"></script>";
        let out = add_nonce(html, "N");
        assert_eq!(
            out,
            "<SCRIPT nonce=\"N\">a()</SCRIPT><style nonce=\"N\">b{}</style><scripts><p>x</p><script src=\"y.js\"></script>"
        );
    }

    #[test]
    fn the_page_policy_allows_only_this_origin_and_the_nonce() {
        let p = page_policy(Some("abc"));
        assert!(p.contains("script-src 'self' 'nonce-abc';"), "{p}");
        for d in p.split(';').map(str::trim) {
            if d.starts_with("script-src")
                || d.starts_with("style-src ")
                || d.starts_with("default-src")
            {
                assert!(!d.contains("unsafe") && !d.contains('*'), "{d}");
            }
        }
        assert!(!page_policy(None).contains("nonce"));
        assert!(is_subresource("text/javascript; charset=utf-8"));
        assert!(!is_subresource("image/svg+xml"));
        assert!(!is_subresource("text/html; charset=utf-8"));
    }
}

//! The app's dict as an HTTP response, after the plugin contract's `RouteResult`:
//! `{"json"}`, `{"html"}` or `{"redirect"}`, each with an optional `status` and
//! `headers` (only names on a safe list pass); any other dict is sent as JSON.

use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// Headers an app may set on its responses; anything else is dropped (and logged), so
/// an app cannot set cookies, widen the page's policy or redirect by header.
const SAFE_HEADERS: &[&str] = &[
    "cache-control",
    "content-language",
    "etag",
    "last-modified",
    "vary",
    "x-total-count",
];

/// The policy of an app's `html` answer served on its own: a sandbox without
/// same-origin or scripts, so the page cannot act with the viewer's session.
pub(crate) const HTML_CSP: &str =
    "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'";

fn extra_headers(app: &str, v: &Value, res: &mut Response) {
    let Some(map) = v.get("headers").and_then(Value::as_object) else {
        return;
    };
    for (name, value) in map {
        let lower = name.to_ascii_lowercase();
        let ok = SAFE_HEADERS.contains(&lower.as_str()) || lower.starts_with("x-app-");
        let (Some(value), true) = (value.as_str(), ok) else {
            tracing::warn!(app = %app, header = %name, "route result header dropped: not on the safe list");
            continue;
        };
        // Route answers go to signed-in callers (or a webhook's sender): a shared cache
        // must never keep one for others.
        let value = if lower == "cache-control" {
            private_cache(value)
        } else {
            value.to_owned()
        };
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(lower), HeaderValue::from_str(&value)) {
            res.headers_mut().insert(n, v);
        }
    }
}

/// An answer the app lets the browser keep is kept for its caller alone: `Vary: Cookie,
/// Authorization` (with the app's own `Vary`), so a browser does not show it again to
/// another session, or to none after a logout, even where `Clear-Site-Data` is not
/// honoured (plain HTTP).
fn vary_by_caller(res: &mut Response) {
    let kept = res
        .headers()
        .get(header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !v.to_ascii_lowercase().contains("no-store"));
    if !kept {
        return;
    }
    let vary = match res
        .headers()
        .get(header::VARY)
        .and_then(|v| v.to_str().ok())
    {
        Some(own) if !own.trim().is_empty() => format!("{own}, Cookie, Authorization"),
        _ => "Cookie, Authorization".to_owned(),
    };
    if let Ok(v) = HeaderValue::from_str(&vary) {
        res.headers_mut().insert(header::VARY, v);
    }
}

/// An app's `Cache-Control` without `public` or `s-maxage`, and `private` unless it
/// already forbids storing.
fn private_cache(value: &str) -> String {
    let kept: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .filter(|d| {
            let d = d.to_ascii_lowercase();
            d != "public" && !d.starts_with("s-maxage")
        })
        .collect();
    let closed = kept.iter().any(|d| {
        let d = d.to_ascii_lowercase();
        d == "private" || d == "no-store"
    });
    if closed {
        kept.join(", ")
    } else {
        std::iter::once("private")
            .chain(kept)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The answer's `status`, `default` when it names none; an error naming it when it is
/// not an integer from 200 to 599.
fn status(v: &Value, default: StatusCode) -> Result<StatusCode, String> {
    let Some(given) = v.get("status").filter(|s| !s.is_null()) else {
        return Ok(default);
    };
    given
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .filter(|s| (200..600).contains(s))
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or_else(|| {
            let given = given.to_string();
            let mut shown: String = given.chars().take(100).collect();
            if shown.len() < given.len() {
                shown.push('…');
            }
            format!("the app's status {shown} is not an HTTP status (an integer from 200 to 599)")
        })
}

/// The platform's 502 for an answer the app got wrong, saying what is wrong.
fn bad_answer(app: &str, error: &str) -> Response {
    tracing::warn!(app, error, "route answer refused");
    (
        StatusCode::BAD_GATEWAY,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        serde_json::json!({ "error": error, "code": "bad_gateway" }).to_string(),
    )
        .into_response()
}

/// Whether a `redirect` may be sent: a path or relative reference, or an `http`/`https`
/// URL. Any other scheme (`javascript:`, `data:`, `file:`) is refused, read as a browser
/// reads a `Location`: surrounding spaces and controls dropped, tabs and newlines
/// removed, the scheme in any case.
fn redirect_allowed(to: &str) -> bool {
    let url: String = to
        .trim_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect();
    if url.is_empty() {
        return false;
    }
    let Some((scheme, _)) = url.split_once(':') else {
        return true;
    };
    let is_scheme = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    !is_scheme || scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")
}

/// Builds the response from the runner's answer (`runner_status`, its JSON body).
pub(crate) fn respond(app: &str, runner_status: StatusCode, body: &[u8]) -> Response {
    let json_ct = [(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    )];
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return (
            StatusCode::BAD_GATEWAY,
            json_ct,
            r#"{"error":"the app's answer is not JSON","code":"bad_gateway"}"#,
        )
            .into_response();
    };
    if !runner_status.is_success() || !v.is_object() {
        return (runner_status, json_ct, body.to_vec()).into_response();
    }
    let mut res = if let Some(to) = v.get("redirect").and_then(Value::as_str) {
        let code = match status(&v, StatusCode::SEE_OTHER) {
            Ok(code) if matches!(code.as_u16(), 301 | 302 | 303 | 307 | 308) => code,
            Ok(code) => {
                return bad_answer(
                    app,
                    &format!("the app's redirect status {} is not one that redirects (301, 302, 303, 307 or 308)", code.as_u16()),
                )
            }
            Err(e) => return bad_answer(app, &e),
        };
        match HeaderValue::from_str(to)
            .ok()
            .filter(|_| redirect_allowed(to))
        {
            Some(loc) => (code, [(header::LOCATION, loc)]).into_response(),
            None => {
                return bad_answer(
                    app,
                    "the app's redirect is not a path or an http(s) URL (or is empty)",
                )
            }
        }
    } else if let Some(html) = v.get("html").and_then(Value::as_str) {
        let code = match status(&v, StatusCode::OK) {
            Ok(code) => code,
            Err(e) => return bad_answer(app, &e),
        };
        (
            code,
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                ),
                (
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(HTML_CSP),
                ),
                (
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ),
            ],
            html.to_owned(),
        )
            .into_response()
    } else if let Some(j) = v.get("json") {
        match status(&v, StatusCode::OK) {
            Ok(code) => (code, json_ct, j.to_string()).into_response(),
            Err(e) => return bad_answer(app, &e),
        }
    } else {
        return (StatusCode::OK, json_ct, body.to_vec()).into_response();
    };
    // 204 and 304 carry no body (RFC 9110): whatever the app gave is dropped.
    if matches!(
        res.status(),
        StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED
    ) {
        *res.body_mut() = axum::body::Body::empty();
        res.headers_mut().remove(header::CONTENT_TYPE);
        res.headers_mut().remove(header::CONTENT_LENGTH);
    }
    extra_headers(app, &v, &mut res);
    vary_by_caller(&mut res);
    // The app's own status and body, a 4xx or 5xx included: not the platform's error.
    res.extensions_mut().insert(crate::error::AppAnswer);
    res
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_redirect_needs_a_target_and_a_status_that_redirects() {
        let answer = |body: &str| respond("shop", StatusCode::OK, body.as_bytes());
        for bad in [
            r#"{"redirect": ""}"#,
            r#"{"redirect": "/x", "status": 304}"#,
            r#"{"redirect": "/x", "status": 200}"#,
            r#"{"redirect": "/x", "status": "303"}"#,
        ] {
            assert_eq!(answer(bad).status(), StatusCode::BAD_GATEWAY, "{bad}");
        }
        let ok = answer(r#"{"redirect": "/x", "status": 307}"#);
        assert_eq!(ok.status(), StatusCode::TEMPORARY_REDIRECT);
        assert_eq!(
            ok.headers().get(header::LOCATION).map(|v| v.as_bytes()),
            Some(&b"/x"[..])
        );
        assert_eq!(
            answer(r#"{"redirect": "/x"}"#).status(),
            StatusCode::SEE_OTHER
        );
    }

    #[test]
    fn a_redirect_is_a_path_or_an_http_url() {
        for ok in [
            "/apps/shop/",
            "next?x=1",
            "https://example.com/a",
            "HTTP://example.com",
            "//example.com/x",
            "/a:b",
        ] {
            assert!(redirect_allowed(ok), "{ok}");
        }
        for bad in [
            "javascript:alert(1)",
            " JavaScript:alert(1)",
            "\tjava\nscript:alert(1)",
            "data:text/html,<script>",
            "file:///etc/passwd",
            "vbscript:x",
            "",
            " \t",
        ] {
            assert!(!redirect_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn an_apps_cache_control_never_lets_a_shared_cache_keep_an_answer() {
        assert_eq!(
            private_cache("public, max-age=3600"),
            "private, max-age=3600"
        );
        assert_eq!(
            private_cache("max-age=60, s-maxage=600"),
            "private, max-age=60"
        );
        assert_eq!(private_cache("no-store"), "no-store");
        assert_eq!(private_cache("Private, max-age=5"), "Private, max-age=5");
        assert_eq!(private_cache("PUBLIC"), "private");
    }

    #[test]
    fn an_answer_the_browser_may_keep_varies_by_caller() {
        let kept = respond(
            "app",
            StatusCode::OK,
            br#"{"json": {}, "headers": {"Cache-Control": "max-age=600", "Vary": "Accept"}}"#,
        );
        assert_eq!(
            kept.headers()[header::VARY],
            "Accept, Cookie, Authorization"
        );
        let kept = respond(
            "app",
            StatusCode::OK,
            br#"{"json": {}, "headers": {"Cache-Control": "max-age=600"}}"#,
        );
        assert_eq!(kept.headers()[header::VARY], "Cookie, Authorization");
        let not_kept = respond(
            "app",
            StatusCode::OK,
            br#"{"json": {}, "headers": {"Cache-Control": "no-store"}}"#,
        );
        assert!(not_kept.headers().get(header::VARY).is_none());
    }

    #[tokio::test]
    async fn a_204_or_304_answer_carries_no_body() {
        for (answer, code) in [
            (r#"{"json": {"ok": 1}, "status": 204}"#, 204),
            (r#"{"html": "<p>x</p>", "status": 304}"#, 304),
        ] {
            let res = respond("app", StatusCode::OK, answer.as_bytes());
            assert_eq!(res.status().as_u16(), code);
            assert!(res.headers().get(header::CONTENT_TYPE).is_none());
            let body = axum::body::to_bytes(res.into_body(), 1024).await.unwrap();
            assert!(body.is_empty(), "{answer}: {body:?}");
        }
        let res = respond(
            "app",
            StatusCode::OK,
            br#"{"json": {"ok": 1}, "status": 201}"#,
        );
        let body = axum::body::to_bytes(res.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], br#"{"ok":1}"#);
    }
}

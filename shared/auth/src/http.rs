//! The credential of an HTTP request and the origin rule, shared by the gateway and the
//! notify hub so both accept exactly the same requests.
//!
//! - A bearer credential (`Authorization: Bearer …`) wins over the `nr_session` cookie.
//! - A request that rides the cookie and changes state (or opens a WebSocket) must come
//!   from an allowed origin: its `Origin` (or, for plain HTTP, its `Referer`) must be
//!   the request's own host or exactly one of the configured origins.

use http::{header, HeaderMap};

/// The session cookie set at login.
pub const SESSION_COOKIE: &str = "nr_session";

/// A request's credential: the bearer value, or the session cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub value: String,
    /// True when it came from the cookie (the browser sends it on its own, so the
    /// origin must be checked before it is trusted with a state change).
    pub from_cookie: bool,
}

/// The value of cookie `name`, if present and not empty.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// The bearer credential of `Authorization`, if any.
pub fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// The credential of a request: the bearer first, else the session cookie.
pub fn credential(headers: &HeaderMap) -> Option<Credential> {
    match bearer(headers) {
        Some(value) => Some(Credential {
            value,
            from_cookie: false,
        }),
        None => cookie(headers, SESSION_COOKIE).map(|value| Credential {
            value,
            from_cookie: true,
        }),
    }
}

/// `scheme://authority` of a URL (lower-cased), or None when it has no authority.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.trim().split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if scheme.is_empty() || authority.is_empty() || authority.contains('@') {
        return None;
    }
    Some(format!("{scheme}://{authority}").to_ascii_lowercase())
}

/// Whether to accept a `Referer` when `Origin` is missing: plain HTTP requests yes
/// (some browsers omit `Origin` on same-origin requests), WebSocket handshakes no (a
/// browser always sends `Origin` there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginSource {
    OriginOrReferer,
    OriginOnly,
}

/// True when the request comes from its own host or one of `allowed` (exact
/// `scheme://host[:port]` matches; a trailing slash is ignored). A request naming no
/// origin is refused.
pub fn origin_allowed(headers: &HeaderMap, allowed: &[String], source: OriginSource) -> bool {
    let named = headers.get(header::ORIGIN).or(match source {
        OriginSource::OriginOrReferer => headers.get(header::REFERER),
        OriginSource::OriginOnly => None,
    });
    let Some(origin) = named.and_then(|v| v.to_str().ok()).and_then(origin_of) else {
        return false;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let authority = origin.split_once("://").map(|(_, a)| a).unwrap_or("");
    (!host.is_empty() && authority == host)
        || allowed
            .iter()
            .filter_map(|a| origin_of(a))
            .any(|a| a == origin)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use http::HeaderValue;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, HeaderValue::from_static(v));
        }
        m
    }

    #[test]
    fn bearer_wins_over_cookie_and_cookie_is_found_among_others() {
        let both = h(&[
            ("authorization", "Bearer abc"),
            ("cookie", "x=1; nr_session=def"),
        ]);
        assert_eq!(credential(&both).unwrap().value, "abc");
        let c = credential(&h(&[("cookie", "x=1; nr_session=def; y=2")])).unwrap();
        assert_eq!((c.value.as_str(), c.from_cookie), ("def", true));
        assert_eq!(credential(&h(&[("cookie", "nr_session=")])), None);
        assert_eq!(credential(&h(&[])), None);
    }

    #[test]
    fn own_host_and_listed_origins_pass_foreign_lookalike_and_missing_do_not() {
        let any = OriginSource::OriginOrReferer;
        let own = h(&[
            ("host", "nr.local:3000"),
            ("origin", "http://nr.local:3000"),
        ]);
        assert!(origin_allowed(&own, &[], any));
        let foreign = h(&[("host", "nr.local:3000"), ("origin", "http://evil.example")]);
        assert!(!origin_allowed(&foreign, &[], any));
        assert!(!origin_allowed(&h(&[("host", "nr.local:3000")]), &[], any));
        let listed = vec!["https://admin.example.com/".to_owned()];
        let ok = h(&[("host", "x"), ("origin", "https://admin.example.com")]);
        assert!(origin_allowed(&ok, &listed, any));
        for bad in [
            "https://admin.example.com.evil.io",
            "https://admin.example.com@evil.io",
            "http://admin.example.com",
            "null",
        ] {
            let mut m = h(&[("host", "x")]);
            m.insert("origin", HeaderValue::from_str(bad).unwrap());
            assert!(!origin_allowed(&m, &listed, any), "{bad}");
        }
    }

    #[test]
    fn a_referer_counts_for_plain_requests_only() {
        let m = h(&[
            ("host", "nr.local"),
            ("referer", "http://nr.local/admin?x=1"),
        ]);
        assert!(origin_allowed(&m, &[], OriginSource::OriginOrReferer));
        assert!(!origin_allowed(&m, &[], OriginSource::OriginOnly));
        let prefix = h(&[("host", "x"), ("referer", "https://admin.example.com/page")]);
        let listed = vec!["https://admin.example.com".to_owned()];
        assert!(origin_allowed(
            &prefix,
            &listed,
            OriginSource::OriginOrReferer
        ));
    }
}

//! The caller of a request: a bearer credential (session JWT, external JWT or API
//! token) or the `nr_session` cookie. Cookie-authenticated requests that change state
//! must come from an allowed origin, so another site cannot ride a user's session.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};
use nr_auth::{AuthError, Principal};

use crate::error::ApiError;
use crate::AppState;

pub const SESSION_COOKIE: &str = "nr_session";

/// The authenticated caller. Extracting it answers 401 when there is none.
pub struct Caller(pub Principal);

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// The credential of a request and whether it came from the cookie.
pub fn credential(headers: &HeaderMap) -> Option<(String, bool)> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty());
    match bearer {
        Some(b) => Some((b, false)),
        None => cookie(headers, SESSION_COOKIE)
            .filter(|c| !c.is_empty())
            .map(|c| (c, true)),
    }
}

/// True when the request's `Origin` (or `Referer`) is its own host or an allowed origin.
pub fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let origin = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok());
    let Some(origin) = origin else { return false };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let authority = origin
        .split_once("://")
        .map(|(_, rest)| rest.split('/').next().unwrap_or(""))
        .unwrap_or("");
    (!host.is_empty() && authority.eq_ignore_ascii_case(host))
        || allowed.iter().any(|a| {
            origin
                .trim_end_matches('/')
                .eq_ignore_ascii_case(a.trim_end_matches('/'))
                || origin.starts_with(&format!("{}/", a.trim_end_matches('/')))
        })
}

pub(crate) fn to_api(e: AuthError) -> ApiError {
    match e {
        AuthError::Internal(e) => ApiError::Internal(e),
        other => ApiError::Unauthorized(other.to_string()),
    }
}

pub(crate) async fn authenticate(state: &AppState, parts: &Parts) -> Result<Principal, ApiError> {
    let (credential, from_cookie) =
        credential(&parts.headers).ok_or_else(|| to_api(AuthError::Missing))?;
    let unsafe_method = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    if from_cookie
        && unsafe_method
        && !origin_allowed(&parts.headers, &state.auth_args.allowed_origins)
    {
        return Err(ApiError::Forbidden(
            "cross-site request refused: cookie-authenticated requests must come from this site's origin".into(),
        ));
    }
    state
        .rbac
        .authenticate(&state.jwt, &credential)
        .await
        .map_err(to_api)
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        authenticate(state, parts).await.map(Caller)
    }
}

impl Caller {
    /// 403 naming the permission when the caller lacks it.
    pub fn require(&self, permission: &str) -> Result<(), ApiError> {
        if self.0.has(permission) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "permission '{permission}' is required"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    #[test]
    fn bearer_wins_over_cookie_and_cookie_is_found_among_others() {
        let both = h(&[
            ("authorization", "Bearer abc"),
            ("cookie", "x=1; nr_session=def"),
        ]);
        assert_eq!(credential(&both), Some(("abc".into(), false)));
        let cookie_only = h(&[("cookie", "x=1; nr_session=def; y=2")]);
        assert_eq!(credential(&cookie_only), Some(("def".into(), true)));
        assert_eq!(credential(&h(&[])), None);
    }

    #[test]
    fn same_host_and_listed_origins_pass_others_do_not() {
        assert!(origin_allowed(
            &h(&[
                ("host", "nr.local:3000"),
                ("origin", "http://nr.local:3000")
            ]),
            &[]
        ));
        assert!(!origin_allowed(
            &h(&[("host", "nr.local:3000"), ("origin", "http://evil.example")]),
            &[]
        ));
        assert!(!origin_allowed(&h(&[("host", "nr.local:3000")]), &[]));
        let allowed = vec!["https://admin.example.com".to_owned()];
        assert!(origin_allowed(
            &h(&[("host", "x"), ("origin", "https://admin.example.com")]),
            &allowed
        ));
        assert!(!origin_allowed(
            &h(&[
                ("host", "x"),
                ("origin", "https://admin.example.com.evil.io")
            ]),
            &allowed
        ));
    }
}

//! The caller of a request: a bearer credential (session JWT, external JWT or API
//! token) or the `nr_session` cookie. Cookie-authenticated requests that change state
//! must come from an allowed origin, so another site cannot ride a user's session.
//! The credential and origin rules are `nr_auth::http`'s, shared with notify.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::Method;
use nr_auth::http::OriginSource;
use nr_auth::{AuthError, Principal};

use crate::error::ApiError;
use crate::AppState;

pub use nr_auth::http::SESSION_COOKIE;

/// The authenticated caller. Extracting it answers 401 when there is none.
pub struct Caller(pub Principal);

pub(crate) fn to_api(e: AuthError) -> ApiError {
    match e {
        AuthError::Internal(e) => ApiError::Internal(e),
        other => ApiError::Unauthorized(other.to_string()),
    }
}

pub(crate) async fn authenticate(state: &AppState, parts: &Parts) -> Result<Principal, ApiError> {
    let credential =
        nr_auth::http::credential(&parts.headers).ok_or_else(|| to_api(AuthError::Missing))?;
    let unsafe_method = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    if credential.from_cookie
        && unsafe_method
        && !nr_auth::http::origin_allowed(
            &parts.headers,
            &state.auth_args.allowed_origins,
            OriginSource::OriginOrReferer,
        )
    {
        return Err(ApiError::Forbidden(
            "cross-site request refused: cookie-authenticated requests must come from this site's origin".into(),
        ));
    }
    state
        .rbac
        .authenticate(&state.jwt, &credential.value)
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

    /// 403 unless the caller holds every one of `roles` (an admin holds them all):
    /// nobody hands out, or takes away, access they do not have themselves.
    pub fn require_roles(&self, roles: &[String], verb: &str) -> Result<(), ApiError> {
        if self.0.is_admin() {
            return Ok(());
        }
        match roles.iter().find(|r| !self.0.roles.contains(r)) {
            None => Ok(()),
            Some(r) => Err(ApiError::Forbidden(format!(
                "you cannot {verb} role '{r}', which you do not hold"
            ))),
        }
    }
}

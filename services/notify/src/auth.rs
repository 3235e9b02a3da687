//! Who opens a socket, and what they may see while it is open.
//!
//! A socket is opened with the `nr_session` cookie (the browser; its `Origin` must be
//! the request's own host or one of NR_ALLOWED_ORIGINS, else 403), a bearer credential,
//! or a one-time ticket (`?ticket=`, from `POST /api/notify/ticket`). Permissions are
//! not fixed at connect: each delivery reads them through the RBAC cache, which drops
//! its entries when the registry applies a change, so a revoked role stops delivery.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use nr_auth::{AuthError, PrincipalKind, ADMIN_ROLE};

use crate::hub::Hub;

pub(crate) const SESSION_COOKIE: &str = "nr_session";

/// The principal behind a socket.
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    pub sub: String,
    pub kind: PrincipalKind,
    /// Roles of a non-user principal (API token, external JWT); a user's are read live.
    pub roles: Vec<String>,
}

#[derive(Debug)]
pub(crate) enum Refusal {
    Unauthorized(String),
    Forbidden(String),
    Internal(anyhow::Error),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Unauthorized(m) => crate::error(StatusCode::UNAUTHORIZED, "unauthorized", &m),
            Refusal::Forbidden(m) => crate::error(StatusCode::FORBIDDEN, "forbidden", &m),
            Refusal::Internal(e) => {
                tracing::error!(error = ?e, "internal error");
                crate::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                )
            }
        }
    }
}

fn from_auth(e: AuthError) -> Refusal {
    match e {
        AuthError::Internal(e) => Refusal::Internal(e),
        other => Refusal::Unauthorized(other.to_string()),
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty())
}

fn bearer(headers: &HeaderMap) -> Option<String> {
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

/// True when `Origin` is the request's own host or an allowed origin. A browser always
/// sends `Origin` on a WebSocket handshake, so a cookie socket without one is refused.
pub(crate) fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let origin = origin.trim_end_matches('/');
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let authority = origin.split_once("://").map(|(_, rest)| rest).unwrap_or("");
    (!host.is_empty() && authority.eq_ignore_ascii_case(host))
        || allowed
            .iter()
            .any(|a| origin.eq_ignore_ascii_case(a.trim().trim_end_matches('/')))
}

pub(crate) async fn authenticate(
    hub: &Hub,
    headers: &HeaderMap,
    ticket: Option<&String>,
) -> Result<Viewer, Refusal> {
    if let Some(ticket) = ticket.filter(|t| !t.is_empty()) {
        return redeem(hub, ticket).await;
    }
    let credential = match bearer(headers) {
        Some(b) => b,
        None => {
            let c = cookie(headers, SESSION_COOKIE).ok_or_else(|| {
                Refusal::Unauthorized(
                    "authentication required: log in (session cookie), or open the socket with a ticket from POST /api/notify/ticket".into(),
                )
            })?;
            if !origin_allowed(headers, hub.allowed_origins()) {
                return Err(Refusal::Forbidden(
                    "cross-site WebSocket refused: the Origin is neither this site nor in NR_ALLOWED_ORIGINS".into(),
                ));
            }
            c
        }
    };
    let p = hub
        .rbac()
        .authenticate(hub.jwt(), &credential)
        .await
        .map_err(from_auth)?;
    Ok(Viewer {
        sub: p.sub,
        kind: p.kind,
        roles: p.roles,
    })
}

/// Redeems a ticket: one `DELETE … RETURNING`, so it opens one socket on any instance.
async fn redeem(hub: &Hub, ticket: &str) -> Result<Viewer, Refusal> {
    let row: Option<(String, String, Vec<String>)> = sqlx::query_as(
        "DELETE FROM noderouter_core.notify_tickets \
         WHERE ticket_hash = $1 AND expires_at > NOW() RETURNING subject, kind, roles",
    )
    .bind(nr_auth::rbac::hash_secret(ticket))
    .fetch_optional(hub.db())
    .await
    .map_err(|e| Refusal::Internal(anyhow::anyhow!("ticket redeem: {e}")))?;
    let Some((sub, kind, roles)) = row else {
        return Err(Refusal::Unauthorized(
            "the ticket is unknown, expired or already used".into(),
        ));
    };
    let kind = match kind.as_str() {
        "api_token" => PrincipalKind::ApiToken,
        "external" => PrincipalKind::External,
        _ => PrincipalKind::User,
    };
    if kind == PrincipalKind::User {
        match hub.rbac().user(&sub).await.map_err(from_auth)? {
            Some(u) if !u.disabled => {}
            Some(_) => return Err(from_auth(AuthError::Disabled)),
            None => return Err(Refusal::Unauthorized("unknown user".into())),
        }
    }
    Ok(Viewer { sub, kind, roles })
}

/// True when `viewer` holds `permission` now (an empty permission: any live principal).
pub(crate) async fn may(hub: &Hub, viewer: &Viewer, permission: &str) -> bool {
    let roles = match viewer.kind {
        PrincipalKind::User => match hub.rbac().user(&viewer.sub).await {
            Ok(Some(u)) if !u.disabled => u.roles,
            _ => return false,
        },
        _ => viewer.roles.clone(),
    };
    if permission.trim().is_empty() || roles.iter().any(|r| r == ADMIN_ROLE) {
        return true;
    }
    match hub.rbac().permissions_for(&roles).await {
        Ok(p) => p.contains(permission),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read permissions; event withheld");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, HeaderValue::from_static(v));
        }
        m
    }

    #[test]
    fn own_host_and_listed_origins_pass_foreign_and_missing_do_not() {
        let own = h(&[
            ("host", "nr.local:3000"),
            ("origin", "http://nr.local:3000"),
        ]);
        assert!(origin_allowed(&own, &[]));
        let foreign = h(&[("host", "nr.local:3000"), ("origin", "http://evil.example")]);
        assert!(!origin_allowed(&foreign, &[]));
        assert!(!origin_allowed(&h(&[("host", "nr.local:3000")]), &[]));
        let listed = vec!["https://admin.example.com/".to_owned()];
        let ok = h(&[("host", "x"), ("origin", "https://admin.example.com")]);
        assert!(origin_allowed(&ok, &listed));
        let lookalike = h(&[
            ("host", "x"),
            ("origin", "https://admin.example.com.evil.io"),
        ]);
        assert!(!origin_allowed(&lookalike, &listed));
    }

    #[test]
    fn bearer_is_read_before_the_cookie() {
        let both = h(&[
            ("authorization", "Bearer abc"),
            ("cookie", "a=1; nr_session=def"),
        ]);
        assert_eq!(bearer(&both).as_deref(), Some("abc"));
        assert_eq!(cookie(&both, SESSION_COOKIE).as_deref(), Some("def"));
        assert_eq!(
            cookie(&h(&[("cookie", "nr_session=")]), SESSION_COOKIE),
            None
        );
    }
}

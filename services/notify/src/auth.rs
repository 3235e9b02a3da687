//! Who opens a socket, and what they may see while it is open.
//!
//! A socket is opened with the `nr_session` cookie (the browser; its `Origin` must be
//! the request's own host or one of NR_ALLOWED_ORIGINS, else 403), a bearer credential,
//! or a one-time ticket (`?ticket=`, from `POST /api/notify/ticket`). The credential
//! and origin rules and the permission check are `nr_auth`'s, the gateway's own.
//!
//! Nothing is fixed at connect: the socket keeps what it was opened with (the
//! credential, or the principal recorded with the ticket) and checks it again through
//! the RBAC cache on every delivery and whenever the registry applies a change, so a
//! logout, a password change, a disabled user, a revoked token or a lost role closes it.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use nr_auth::http::OriginSource;
use nr_auth::rbac::Recorded;
use nr_auth::{AuthError, Principal, PrincipalKind};

use crate::hub::{Hub, Slot};

/// What a socket was opened with, to be checked again while it is open.
#[derive(Debug, Clone)]
pub(crate) enum Binding {
    /// A bearer credential or session cookie, authenticated again in full.
    Credential(String),
    /// The principal recorded when its ticket was issued.
    Ticket(Recorded),
}

/// The principal behind a socket.
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    pub sub: String,
    pub binding: Binding,
    /// Roles when the socket opened: losing any closes the socket.
    pub roles: Vec<String>,
    /// When the credential expires (unix seconds; a session's or an external token's
    /// `exp`): the socket closes then with 4401.
    pub exp: Option<i64>,
}

#[derive(Debug)]
pub(crate) enum Refusal {
    Unauthorized(String),
    Forbidden(String),
    TooMany(String),
    Internal(anyhow::Error),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Unauthorized(m) => crate::error(StatusCode::UNAUTHORIZED, "unauthorized", &m),
            Refusal::Forbidden(m) => crate::error(StatusCode::FORBIDDEN, "forbidden", &m),
            Refusal::TooMany(m) => {
                crate::error(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", &m)
            }
            Refusal::Internal(e) => {
                tracing::error!(error = %format!("{e:#}"), "internal error");
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

fn viewer(p: Principal, binding: Binding) -> Viewer {
    Viewer {
        sub: p.sub,
        binding,
        roles: p.roles,
        exp: p.exp,
    }
}

/// A socket's principal and its slot among the sockets that principal may hold here.
///
/// A ticket is used up only once the socket has its slot: over the per-user cap the
/// redemption is rolled back and the ticket opens a socket later. Nothing else runs in
/// that transaction (the RBAC check comes after it), so it holds a connection briefly.
pub(crate) async fn authenticate(
    hub: &Arc<Hub>,
    headers: &HeaderMap,
    ticket: Option<&String>,
) -> Result<(Viewer, Slot), Refusal> {
    if let Some(ticket) = ticket.filter(|t| !t.is_empty()) {
        let (recorded, exp, tx) = redeem(hub, ticket).await?;
        let slot = reserve(hub, &recorded.sub)?;
        tx.commit()
            .await
            .map_err(|e| Refusal::Internal(anyhow::anyhow!("ticket redeem: {e}")))?;
        let p = hub.rbac().recheck(&recorded).await.map_err(from_auth)?;
        let mut v = viewer(p, Binding::Ticket(recorded));
        // The socket closes when the credential the ticket was issued to expires.
        v.exp = exp;
        return Ok((v, slot));
    }
    let credential = nr_auth::http::credential(headers).ok_or_else(|| {
        Refusal::Unauthorized(
            "authentication required: log in (session cookie), or open the socket with a ticket from POST /api/notify/ticket".into(),
        )
    })?;
    if credential.from_cookie
        && !nr_auth::http::origin_allowed(headers, hub.allowed_origins(), OriginSource::OriginOnly)
    {
        return Err(Refusal::Forbidden(
            "cross-site WebSocket refused: the Origin is neither this site nor in NR_ALLOWED_ORIGINS".into(),
        ));
    }
    let p = hub
        .rbac()
        .authenticate(hub.jwt(), &credential.value)
        .await
        .map_err(from_auth)?;
    let slot = reserve(hub, &p.sub)?;
    Ok((viewer(p, Binding::Credential(credential.value)), slot))
}

/// One of the socket slots of `sub` on this instance, or 429.
fn reserve(hub: &Arc<Hub>, sub: &str) -> Result<Slot, Refusal> {
    let cap = hub.limits().max_per_user.max(1);
    hub.reserve(sub, cap).ok_or_else(|| {
        Refusal::TooMany(format!(
            "at most {cap} open sockets per user (NR_WS_MAX_PER_USER); close one first"
        ))
    })
}

/// Redeems a ticket: one `DELETE … RETURNING` in a transaction left open, so it opens
/// one socket on any instance (a second redemption waits on the row and finds it gone
/// once the first commits) and is kept if the transaction is dropped uncommitted.
async fn redeem(
    hub: &Hub,
    ticket: &str,
) -> Result<
    (
        Recorded,
        Option<i64>,
        sqlx::Transaction<'static, sqlx::Postgres>,
    ),
    Refusal,
> {
    type Row = (
        String,
        String,
        Vec<String>,
        Option<String>,
        Option<String>,
        Option<i64>,
    );
    let internal = |e: sqlx::Error| Refusal::Internal(anyhow::anyhow!("ticket redeem: {e}"));
    let mut tx = hub.db().begin().await.map_err(internal)?;
    let row: Option<Row> = sqlx::query_as(
        "DELETE FROM noderouter_core.notify_tickets \
         WHERE ticket_hash = $1 AND expires_at > NOW() RETURNING subject, kind, roles, jti, stamp, credential_exp",
    )
    .bind(nr_auth::rbac::hash_secret(ticket))
    .fetch_optional(&mut *tx)
    .await
    .map_err(internal)?;
    let Some((sub, kind, roles, jti, stamp, exp)) = row else {
        return Err(Refusal::Unauthorized(
            "the ticket is unknown, expired or already used".into(),
        ));
    };
    let kind = match kind.as_str() {
        "api_token" => PrincipalKind::ApiToken,
        "external" => PrincipalKind::External,
        _ => PrincipalKind::User,
    };
    let recorded = Recorded {
        sub,
        kind,
        roles,
        jti,
        stamp,
    };
    Ok((recorded, exp, tx))
}

/// The viewer's principal now, by the rules it was admitted under.
pub(crate) async fn principal(hub: &Hub, viewer: &Viewer) -> Result<Principal, AuthError> {
    match &viewer.binding {
        Binding::Credential(c) => hub.rbac().authenticate(hub.jwt(), c).await,
        Binding::Ticket(r) => hub.rbac().recheck(r).await,
    }
}

/// Why a socket must close now, if it must: its credential no longer authenticates
/// (4401), or it lost a role it had when it opened (4403; the client reconnects and
/// sees what it may see now).
pub(crate) async fn still_admitted(hub: &Hub, viewer: &Viewer) -> Result<(), (u16, &'static str)> {
    match principal(hub, viewer).await {
        Ok(p) => {
            // A role taken from the principal closes the socket; a permission taken
            // from one of its roles only stops the deliveries it gated (checked at
            // each one), the socket stays.
            if viewer.roles.iter().all(|r| p.roles.contains(r)) {
                Ok(())
            } else {
                Err((crate::socket::CLOSE_ACCESS_CHANGED, "access changed"))
            }
        }
        Err(AuthError::Internal(e)) => {
            // A database hiccup is not a reason to drop everyone.
            tracing::warn!(error = %e, "cannot re-check a socket's credential");
            Ok(())
        }
        Err(_) => Err((crate::socket::CLOSE_SESSION_ENDED, "session ended")),
    }
}

/// True when `viewer` holds every one of `permissions` now (an empty permission: any
/// live principal).
pub(crate) async fn may(hub: &Hub, viewer: &Viewer, permissions: &[&str]) -> bool {
    match principal(hub, viewer).await {
        Ok(p) => permissions.iter().all(|perm| p.has(perm)),
        Err(AuthError::Internal(e)) => {
            tracing::warn!(error = %e, "cannot read permissions; event withheld");
            false
        }
        Err(_) => false,
    }
}

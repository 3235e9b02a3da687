//! `POST /api/notify/ticket`: a short-lived, one-time ticket that opens one WebSocket on
//! `/api/ws/notify?ticket=…`, for clients that cannot send the session cookie or an
//! `Authorization` header on the handshake. Only a hash is stored; the hub redeems it
//! with one `DELETE … RETURNING`, so it works once across every notify instance
//! (docs/adr/0006-one-time-ws-tickets-in-postgres.md).

use std::sync::Arc;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use nr_auth::PrincipalKind;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::AppState;

/// How long a ticket can wait before it is used, seconds.
pub const TICKET_TTL_S: i64 = 30;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/notify/ticket", post(issue))
}

fn kind_name(kind: PrincipalKind) -> &'static str {
    match kind {
        PrincipalKind::User => "user",
        PrincipalKind::ApiToken => "api_token",
        PrincipalKind::External => "external",
    }
}

async fn issue(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let p = &caller.0;
    let ticket = format!(
        "nrk_{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let roles: Vec<String> = match p.kind {
        PrincipalKind::User => Vec::new(),
        _ => p.roles.clone(),
    };
    let internal = |e: sqlx::Error| ApiError::Internal(anyhow::anyhow!("ticket store: {e}"));
    sqlx::query("DELETE FROM noderouter_core.notify_tickets WHERE expires_at < NOW()")
        .execute(&state.db)
        .await
        .map_err(internal)?;
    let expires: (time::OffsetDateTime,) = sqlx::query_as(
        "INSERT INTO noderouter_core.notify_tickets (ticket_hash, subject, kind, name, roles, expires_at, jti, stamp, credential_exp) \
         VALUES ($1, $2, $3, $4, $5, NOW() + make_interval(secs => $6), $7, $8, $9) RETURNING expires_at",
    )
    .bind(nr_auth::rbac::hash_secret(&ticket))
    .bind(&p.sub)
    .bind(kind_name(p.kind))
    .bind(&p.name)
    .bind(&roles)
    .bind(TICKET_TTL_S as f64)
    // The session behind the ticket: its socket closes when that session ends.
    .bind(&p.jti)
    .bind(&p.stamp)
    // ...and when that session expires.
    .bind(p.exp)
    .fetch_one(&state.db)
    .await
    .map_err(internal)?;
    let expires_at = expires
        .0
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    Ok(Json(json!({
        "ticket": ticket,
        "expires_at": expires_at,
        "expires_in": TICKET_TTL_S,
        "url": format!("/api/ws/notify?ticket={ticket}"),
    })))
}

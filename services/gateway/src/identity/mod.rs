//! Identity over HTTP, one module per concern:
//!
//! - `session`: sign-in, sign-out, the caller's own view and password;
//! - `app_list`: the apps the caller may use, with the composed menu;
//! - `subscriptions`: the caller's notification subscriptions;
//! - `users`, `roles`, `tokens`: RBAC administration.
//!
//! Every change is an event on `rbac.log`; a handler answers once the registry has
//! applied it, so the caller reads its own write. Who may do what is decided by
//! `nr_auth` ([`nr_auth::Principal::has`]), the same check notify uses.

mod app_list;
mod managers;
mod roles;
mod session;
mod subscriptions;
mod tokens;
mod users;

pub(crate) use app_list::*;
use managers::{keep_a_manager, Change};
pub(crate) use roles::*;
pub(crate) use session::*;
pub(crate) use subscriptions::*;
pub(crate) use tokens::*;
pub(crate) use users::*;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use nr_auth::{perms, ADMIN_ROLE};
use nr_contracts::events::{RbacChange, RbacEvent, RBAC_CHANGED};
use nr_contracts::{subjects, Envelope};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::auth::{Caller, SESSION_COOKIE};
use crate::error::{ApiError, ErrorBody};
use crate::AppState;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/auth/login", post(login))
        .route("/api/auth/logout", post(logout))
        .route("/api/auth/me", get(me))
        .route("/api/auth/password", post(change_password))
        .route("/api/apps", get(my_apps))
        .route("/api/notify/subscribe", post(subscribe))
        .route("/api/notify/unsubscribe", post(unsubscribe))
        .route("/api/notify/subscriptions", get(subscriptions))
        .route("/admin/api/users", get(list_users).post(create_user))
        .route("/admin/api/users/{id}", axum::routing::patch(update_user))
        .route("/admin/api/users/{id}/roles", put(set_roles))
        .route("/admin/api/roles", get(list_roles).post(create_role))
        .route("/admin/api/roles/{name}", delete(delete_role))
        .route("/admin/api/roles/{name}/permissions", post(grant))
        .route(
            "/admin/api/roles/{name}/permissions/{permission}",
            delete(revoke),
        )
        .route("/admin/api/permissions", get(list_permissions))
        .route("/admin/api/tokens", get(list_tokens).post(create_token))
        .route("/admin/api/tokens/{id}", delete(revoke_token))
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(anyhow::anyhow!("{e}"))
}

impl AppState {
    /// Appends an RBAC change made by `caller` and waits until the projection has
    /// applied it.
    pub(crate) async fn rbac_change(
        &self,
        caller: &Caller,
        change: RbacChange,
    ) -> Result<u64, ApiError> {
        let event = Envelope::new(
            RBAC_CHANGED,
            &self.node,
            RbacEvent {
                change,
                actor: Some(caller.0.name.clone()),
                actor_id: Some(caller.0.sub.clone()),
            },
        );
        let seq = nr_infra::bus::publish_event(&self.js, subjects::RBAC_LOG, &event, None)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "an access change was not acknowledged by the event log");
                ApiError::Unavailable(
                    "the access log (NATS JetStream) did not acknowledge this change, as while a NATS node is down and its streams elect new leaders: it may or may not have been made; look at the users, roles and tokens before trying again".into(),
                )
            })?;
        if !self.rbac.wait_applied(seq, Duration::from_secs(10)).await {
            return Err(ApiError::Unavailable(
                "the change was recorded but the registry has not applied it yet; is the registry running?".into(),
            ));
        }
        Ok(seq)
    }
}

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.@".contains(&b))
}

/// A user id as this gateway makes them (a UUID), or at least something that could be one.
fn plausible_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && !id.chars().any(char::is_control)
}

/// 400 when a free-text field cannot be stored (NUL) or is too long.
fn check_text(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.contains('\0') {
        return Err(ApiError::BadRequest(format!(
            "{field} must not contain NUL characters"
        )));
    }
    if value.chars().count() > max {
        return Err(ApiError::BadRequest(format!(
            "{field} must have at most {max} characters"
        )));
    }
    Ok(())
}

async fn check_roles_exist(state: &AppState, roles: &[String]) -> Result<(), ApiError> {
    if let Some(bad) = roles.iter().find(|r| !valid_name(r)) {
        return Err(ApiError::BadRequest(format!("role {bad:?} does not exist")));
    }
    let known: Vec<(String,)> =
        sqlx::query_as("SELECT name FROM noderouter_core.roles WHERE name = ANY($1)")
            .bind(roles)
            .fetch_all(&state.db)
            .await
            .map_err(internal)?;
    if let Some(missing) = roles.iter().find(|r| !known.iter().any(|k| &k.0 == *r)) {
        return Err(ApiError::BadRequest(format!(
            "role '{missing}' does not exist"
        )));
    }
    Ok(())
}

/// Creates the first admin when there is no user at all. Returns the generated password
/// when one was made (to be shown once).
pub(crate) async fn bootstrap_admin(state: &AppState) -> anyhow::Result<Option<String>> {
    let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM noderouter_core.users")
        .fetch_one(&state.db)
        .await?;
    if count > 0 {
        return Ok(None);
    }
    let (password, generated) = match &state.auth_args.admin_password {
        Some(p) if !p.is_empty() => (p.clone(), false),
        _ => (nr_auth::password::random_secret()[..20].to_owned(), true),
    };
    let change = RbacChange::Bootstrap {
        id: uuid::Uuid::now_v7().to_string(),
        username: "admin".into(),
        password_hash: nr_auth::password::hash(&password)?,
    };
    let event = Envelope::new(RBAC_CHANGED, &state.node, change);
    match nr_infra::bus::publish_event(&state.js, subjects::RBAC_BOOTSTRAP, &event, Some(0)).await {
        Ok(seq) => {
            if !state.rbac.wait_applied(seq, Duration::from_secs(10)).await {
                tracing::warn!("the admin user is not projected yet; is the registry running?");
            }
            Ok(generated.then_some(password))
        }
        // Another gateway created the admin first.
        Err(nr_infra::bus::PublishFailure::Conflict) => Ok(None),
        Err(nr_infra::bus::PublishFailure::Other(e)) => Err(e),
    }
}

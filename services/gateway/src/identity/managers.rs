//! The platform keeps someone who can manage users and roles: a change that would leave
//! no enabled user holding `rbac:manage` (the admin role, or a role granted it) is
//! refused with 409, since nothing inside the platform could undo it (a disabled admin
//! cannot log in, and `NR_ADMIN_PASSWORD` only creates the first user).
//!
//! Two such changes at once could each see the other's user still there and both pass:
//! a change that takes a manager away holds [`Held`] from its check until the registry
//! has applied it, so they go one at a time, across every gateway.

use std::time::Duration;

use nr_auth::{perms, ADMIN_ROLE};
use nr_contracts::subjects;

use crate::error::ApiError;
use crate::AppState;

/// What a change leaves of the users and roles that manage access.
pub(crate) enum Change<'a> {
    /// A user, after the change: enabled or not, with these roles.
    User {
        id: &'a str,
        enabled: bool,
        roles: &'a [String],
    },
    /// A role that no longer grants `rbac:manage` (revoked, or the role deleted).
    RoleLoses(&'a str),
}

/// A Postgres advisory lock held by a transaction that does nothing else: released when
/// the value is dropped (its connection, returned to the pool, rolls it back first) or
/// when the connection is lost, so a gateway that dies holding it blocks nobody.
pub(crate) struct Held(sqlx::Transaction<'static, sqlx::Postgres>);

/// How long a change waits for another to finish before it answers 503 (a change holds
/// the lock at most while the registry applies it, 10 s).
const WAIT: Duration = Duration::from_secs(15);

fn busy() -> ApiError {
    ApiError::Unavailable(
        "another change to who can manage access is still being applied: retry shortly".into(),
    )
}

/// Takes the lock, trying again every 50 ms for [`WAIT`]: a change waiting its turn holds
/// no connection, so waiting changes cannot starve the pool the one holding it needs.
/// Then waits until the registry has applied every RBAC change recorded so far (one
/// whose request gave up waiting may still be on its way), so the checks read them.
async fn lock(state: &AppState) -> Result<Held, ApiError> {
    let internal = |e: sqlx::Error| ApiError::Internal(e.into());
    let deadline = tokio::time::Instant::now() + WAIT;
    let tx = loop {
        let mut tx = state.db.begin().await.map_err(internal)?;
        let (got,): (bool,) = sqlx::query_as(
            "SELECT pg_try_advisory_xact_lock(hashtext('noderouter_core.managers'))",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(internal)?;
        if got {
            break tx;
        }
        drop(tx);
        if tokio::time::Instant::now() >= deadline {
            return Err(busy());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let recorded = nr_infra::follow::last_sequence(&state.js, subjects::STREAM_RBAC)
        .await
        .map_err(|e| ApiError::Unavailable(format!("cannot read the RBAC log: {e:#}")))?;
    if !state
        .rbac
        .wait_applied(recorded, Duration::from_secs(10))
        .await
    {
        return Err(ApiError::Unavailable(
            "earlier changes to users and roles are not applied yet (is the registry running?): retry shortly".into(),
        ));
    }
    Ok(Held(tx))
}

/// Refuses `change` when no enabled user could manage users and roles after it. The
/// value returned is held until the change is applied.
pub(crate) async fn keep_a_manager(state: &AppState, change: Change<'_>) -> Result<Held, ApiError> {
    // Everything below reads what the registry has applied, under the lock.
    let mut held = lock(state).await?;
    let (user, role) = match change {
        Change::User { id, enabled, roles } => {
            if enabled && manages(&mut held, roles).await? {
                return Ok(held);
            }
            (id, "")
        }
        Change::RoleLoses(role) => {
            // A role that never gave the permission takes nothing away.
            if !manages(&mut held, &[role.to_owned()]).await? {
                return Ok(held);
            }
            ("", role)
        }
    };
    // Another enabled user who holds the admin role, or a role (other than the one
    // losing it) that grants the permission.
    let others: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM noderouter_core.users u \
           JOIN noderouter_core.user_roles ur ON ur.user_id = u.id \
          WHERE NOT u.disabled AND u.id <> $1 \
            AND (ur.role = $3 OR (ur.role <> $2 AND EXISTS ( \
                 SELECT 1 FROM noderouter_core.role_permissions rp \
                  WHERE rp.role = ur.role AND rp.permission = $4))))",
    )
    .bind(user)
    .bind(role)
    .bind(ADMIN_ROLE)
    .bind(perms::RBAC_MANAGE)
    .fetch_one(&mut *held.0)
    .await
    .map_err(|e| ApiError::Internal(e.into()))?;
    if others {
        return Ok(held);
    }
    Err(ApiError::Conflict(format!(
        "refused: no enabled user would be left who can manage users and roles \
         ({} or the '{ADMIN_ROLE}' role); give another user the '{ADMIN_ROLE}' role first",
        perms::RBAC_MANAGE
    )))
}

/// True when `roles` grant `rbac:manage`, as the registry has applied them (every
/// gateway reads the same rows; a gateway's own view may lag another's change).
async fn manages(held: &mut Held, roles: &[String]) -> Result<bool, ApiError> {
    if roles.iter().any(|r| r == ADMIN_ROLE) {
        return Ok(true);
    }
    if roles.is_empty() {
        return Ok(false);
    }
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM noderouter_core.role_permissions \
          WHERE role = ANY($1) AND permission = $2)",
    )
    .bind(roles)
    .bind(perms::RBAC_MANAGE)
    .fetch_one(&mut *held.0)
    .await
    .map_err(|e| ApiError::Internal(e.into()))
}

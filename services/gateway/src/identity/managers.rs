//! The platform keeps someone who can manage users and roles: a change that would leave
//! no enabled user holding `rbac:manage` (the admin role, or a role granted it) is
//! refused with 409, since nothing inside the platform could undo it (a disabled admin
//! cannot log in, and `NR_ADMIN_PASSWORD` only creates the first user).

use nr_auth::{perms, ADMIN_ROLE};

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

/// Refuses `change` when no enabled user could manage users and roles after it.
pub(crate) async fn keep_a_manager(state: &AppState, change: Change<'_>) -> Result<(), ApiError> {
    let (user, role) = match change {
        Change::User { id, enabled, roles } => {
            if enabled && manages(state, roles).await? {
                return Ok(());
            }
            (id, "")
        }
        Change::RoleLoses(role) => {
            // A role that never gave the permission takes nothing away.
            if !manages(state, &[role.to_owned()]).await? {
                return Ok(());
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
    .fetch_one(&state.db)
    .await
    .map_err(|e| ApiError::Internal(e.into()))?;
    if others {
        return Ok(());
    }
    Err(ApiError::Conflict(format!(
        "refused: no enabled user would be left who can manage users and roles \
         ({} or the '{ADMIN_ROLE}' role); give another user the '{ADMIN_ROLE}' role first",
        perms::RBAC_MANAGE
    )))
}

/// True when `roles` grant `rbac:manage`.
async fn manages(state: &AppState, roles: &[String]) -> Result<bool, ApiError> {
    if roles.iter().any(|r| r == ADMIN_ROLE) {
        return Ok(true);
    }
    if roles.is_empty() {
        return Ok(false);
    }
    let granted = state
        .rbac
        .permissions_for(roles)
        .await
        .map_err(crate::auth::to_api)?;
    Ok(granted.contains(perms::RBAC_MANAGE))
}

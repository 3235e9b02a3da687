//! User administration (`rbac:manage`).

use super::*;

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct UserView {
    id: String,
    username: String,
    disabled: bool,
    roles: Vec<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct UserList {
    users: Vec<UserView>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct NewUserView {
    id: String,
    username: String,
    roles: Vec<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct UserUpdated {
    id: String,
    updated: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct UserRoles {
    id: String,
    roles: Vec<String>,
}

#[utoipa::path(
    get,
    path = "/admin/api/users",
    tag = "admin",
    responses(
        (status = 200, description = "Every user", body = UserList),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "The `rbac:manage` permission is missing", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn list_users(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<UserList>, ApiError> {
    caller.require(perms::RBAC_MANAGE)?;
    let rows: Vec<(String, String, bool, Vec<String>)> = sqlx::query_as(
        "SELECT u.id, u.username, u.disabled, COALESCE(array_agg(r.role ORDER BY r.role) FILTER (WHERE r.role IS NOT NULL), '{}') \
         FROM noderouter_core.users u LEFT JOIN noderouter_core.user_roles r ON r.user_id = u.id \
         GROUP BY u.id ORDER BY u.username",
    )
    .fetch_all(&state.db)
    .await
    .map_err(internal)?;
    let users = rows
        .into_iter()
        .map(|(id, username, disabled, roles)| UserView {
            id,
            username,
            disabled,
            roles,
        })
        .collect();
    Ok(Json(UserList { users }))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct NewUser {
    username: String,
    password: String,
    #[serde(default)]
    roles: Vec<String>,
}

#[utoipa::path(
    post,
    path = "/admin/api/users",
    tag = "admin",
    request_body = NewUser,
    responses(
        (status = 201, description = "The new user", body = NewUserView),
        (status = 400, description = "A bad username or password, or an unknown role", body = ErrorBody),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "The `rbac:manage` permission is missing", body = ErrorBody),
        (status = 409, description = "The username is taken", body = ErrorBody),
        (status = 422, description = "Missing or mistyped fields", body = ErrorBody),
        (status = 503, description = "The registry has not applied the change (is it running?)", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn create_user(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Json(body): Json<NewUser>,
) -> Result<(StatusCode, Json<NewUserView>), ApiError> {
    caller.require(perms::RBAC_MANAGE)?;
    if !valid_name(&body.username) {
        return Err(ApiError::BadRequest(
            "username must be 1-64 characters of letters, digits, _ - . @".into(),
        ));
    }
    session::check_password(&state, "password", &body.password)?;
    caller.require_roles(&body.roles, "grant")?;
    if state
        .rbac
        .credentials(&body.username)
        .await
        .map_err(crate::auth::to_api)?
        .is_some()
    {
        return Err(ApiError::Conflict(format!(
            "user '{}' already exists",
            body.username
        )));
    }
    check_roles_exist(&state, &body.roles).await?;
    let id = uuid::Uuid::now_v7().to_string();
    let password_hash = state
        .hasher
        .hash(&body.password)
        .await
        .map_err(ApiError::Internal)?;
    state
        .rbac_change(
            &caller,
            RbacChange::UserCreated {
                id: id.clone(),
                username: body.username.clone(),
                password_hash,
            },
        )
        .await?;
    if !body.roles.is_empty() {
        state
            .rbac_change(
                &caller,
                RbacChange::UserRolesSet {
                    id: id.clone(),
                    roles: body.roles.clone(),
                },
            )
            .await?;
    }
    Ok((
        StatusCode::CREATED,
        Json(NewUserView {
            id,
            username: body.username,
            roles: body.roles,
        }),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct UserPatch {
    #[serde(default)]
    disabled: Option<bool>,
    #[serde(default)]
    password: Option<String>,
}

/// The user `id` (404 when there is none), with its current roles.
async fn existing_user(state: &AppState, id: &str) -> Result<nr_auth::rbac::UserRow, ApiError> {
    if !plausible_id(id) {
        return Err(ApiError::NotFound(format!("user {id:?} not found")));
    }
    state
        .rbac
        .user(id)
        .await
        .map_err(crate::auth::to_api)?
        .ok_or_else(|| ApiError::NotFound(format!("user '{id}' not found")))
}

#[utoipa::path(
    patch,
    path = "/admin/api/users/{id}",
    tag = "admin",
    params(("id" = String, Path, description = "The user's id")),
    request_body = UserPatch,
    responses(
        (status = 200, description = "Updated", body = UserUpdated),
        (status = 400, description = "A password shorter than the policy allows (`NR_PASSWORD_MIN_LENGTH`, 12 by default)", body = ErrorBody),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "`rbac:manage` is missing, or the caller does not hold every role involved", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 409, description = "Disabling would leave no enabled user who can manage users and roles", body = ErrorBody),
        (status = 422, description = "Mistyped fields", body = ErrorBody),
        (status = 503, description = "The registry has not applied the change (is it running?)", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn update_user(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<UserPatch>,
) -> Result<Json<UserUpdated>, ApiError> {
    caller.require(perms::RBAC_MANAGE)?;
    let user = existing_user(&state, &id).await?;
    // Setting a password or disabling acts as the user: only over roles one holds.
    caller.require_roles(&user.roles, "act on a user with")?;
    let _held = if body.disabled == Some(true) && !user.disabled {
        Some(
            keep_a_manager(
                &state,
                Change::User {
                    id: &id,
                    enabled: false,
                    roles: &user.roles,
                },
            )
            .await?,
        )
    } else {
        None
    };
    if let Some(password) = body.password {
        session::check_password(&state, "password", &password)?;
        let password_hash = state
            .hasher
            .hash(&password)
            .await
            .map_err(ApiError::Internal)?;
        state
            .rbac_change(
                &caller,
                RbacChange::PasswordSet {
                    id: id.clone(),
                    password_hash,
                },
            )
            .await?;
    }
    if let Some(disabled) = body.disabled {
        state
            .rbac_change(
                &caller,
                RbacChange::UserDisabled {
                    id: id.clone(),
                    disabled,
                },
            )
            .await?;
    }
    Ok(Json(UserUpdated { id, updated: true }))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct Roles {
    roles: Vec<String>,
}

#[utoipa::path(
    put,
    path = "/admin/api/users/{id}/roles",
    tag = "admin",
    params(("id" = String, Path, description = "The user's id")),
    request_body = Roles,
    responses(
        (status = 200, description = "The user's roles now", body = UserRoles),
        (status = 400, description = "An unknown role", body = ErrorBody),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "`rbac:manage` is missing, or the caller does not hold every role involved", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 409, description = "Taking these roles away would leave no enabled user who can manage users and roles", body = ErrorBody),
        (status = 422, description = "Missing or mistyped fields", body = ErrorBody),
        (status = 503, description = "The registry has not applied the change (is it running?)", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn set_roles(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<Roles>,
) -> Result<Json<UserRoles>, ApiError> {
    caller.require(perms::RBAC_MANAGE)?;
    let user = existing_user(&state, &id).await?;
    check_roles_exist(&state, &body.roles).await?;
    // Granting needs at least the roles granted; taking away, the roles taken.
    caller.require_roles(&body.roles, "grant")?;
    let removed: Vec<String> = user
        .roles
        .into_iter()
        .filter(|r| !body.roles.contains(r))
        .collect();
    caller.require_roles(&removed, "take away")?;
    let _held = if !removed.is_empty() && !user.disabled {
        Some(
            keep_a_manager(
                &state,
                Change::User {
                    id: &id,
                    enabled: true,
                    roles: &body.roles,
                },
            )
            .await?,
        )
    } else {
        None
    };
    state
        .rbac_change(
            &caller,
            RbacChange::UserRolesSet {
                id: id.clone(),
                roles: body.roles.clone(),
            },
        )
        .await?;
    Ok(Json(UserRoles {
        id,
        roles: body.roles,
    }))
}

//! Roles and their grants (`rbac:manage`).

use super::*;

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RoleView {
    name: String,
    description: String,
    builtin: bool,
    permissions: Vec<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RoleList {
    roles: Vec<RoleView>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct NewRoleView {
    name: String,
    description: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RoleDeleted {
    deleted: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Granted {
    role: String,
    granted: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Revoked {
    role: String,
    revoked: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct PermissionView {
    name: String,
    description: String,
    /// `platform`, or the app that declared it.
    source: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct PermissionList {
    permissions: Vec<PermissionView>,
}

#[utoipa::path(
    get,
    path = "/admin/api/roles",
    tag = "admin",
    responses(
        (status = 200, description = "Every role with its permissions (`admin` shows `*`)", body = RoleList),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "The `rbac:manage` permission is missing", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn list_roles(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<RoleList>, ApiError> {
    caller.require(perms::RBAC_MANAGE)?;
    let rows: Vec<(String, String, bool, Vec<String>)> = sqlx::query_as(
        "SELECT r.name, r.description, r.builtin, COALESCE(array_agg(p.permission ORDER BY p.permission) FILTER (WHERE p.permission IS NOT NULL), '{}') \
         FROM noderouter_core.roles r LEFT JOIN noderouter_core.role_permissions p ON p.role = r.name \
         GROUP BY r.name ORDER BY r.name",
    )
    .fetch_all(&state.db)
    .await
    .map_err(internal)?;
    let roles = rows
        .into_iter()
        .map(|(name, description, builtin, permissions)| {
            let permissions = if name == ADMIN_ROLE {
                vec!["*".to_owned()]
            } else {
                permissions
            };
            RoleView {
                name,
                description,
                builtin,
                permissions,
            }
        })
        .collect();
    Ok(Json(RoleList { roles }))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct NewRole {
    name: String,
    #[serde(default)]
    description: String,
}

#[utoipa::path(
    post,
    path = "/admin/api/roles",
    tag = "admin",
    request_body = NewRole,
    responses(
        (status = 201, description = "The new role", body = NewRoleView),
        (status = 400, description = "A bad role name or description", body = ErrorBody),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "The `rbac:manage` permission is missing", body = ErrorBody),
        (status = 422, description = "Missing or mistyped fields", body = ErrorBody),
        (status = 503, description = "The registry has not applied the change (is it running?)", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn create_role(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Json(body): Json<NewRole>,
) -> Result<(StatusCode, Json<NewRoleView>), ApiError> {
    caller.require(perms::RBAC_MANAGE)?;
    if !valid_name(&body.name) {
        return Err(ApiError::BadRequest(
            "role name must be 1-64 characters of letters, digits, _ - . @".into(),
        ));
    }
    check_text("description", &body.description, 500)?;
    state
        .rbac_change(
            &caller,
            RbacChange::RoleCreated {
                name: body.name.clone(),
                description: body.description.clone(),
            },
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(NewRoleView {
            name: body.name,
            description: body.description,
        }),
    ))
}

#[utoipa::path(
    delete,
    path = "/admin/api/roles/{name}",
    tag = "admin",
    params(("name" = String, Path, description = "The role's name")),
    responses(
        (status = 200, description = "Deleted", body = RoleDeleted),
        (status = 400, description = "The admin role cannot be deleted", body = ErrorBody),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "The `rbac:manage` permission is missing", body = ErrorBody),
        (status = 404, description = "No such role", body = ErrorBody),
        (status = 503, description = "The registry has not applied the change (is it running?)", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn delete_role(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<RoleDeleted>, ApiError> {
    caller.require(perms::RBAC_MANAGE)?;
    if name == ADMIN_ROLE {
        return Err(ApiError::BadRequest(
            "the admin role cannot be deleted".into(),
        ));
    }
    check_roles_exist(&state, std::slice::from_ref(&name))
        .await
        .map_err(|_| ApiError::NotFound(format!("role '{name}' not found")))?;
    caller.require_roles(std::slice::from_ref(&name), "delete")?;
    let _held = keep_a_manager(&state, Change::RoleLoses(&name)).await?;
    state
        .rbac_change(&caller, RbacChange::RoleDeleted { name: name.clone() })
        .await?;
    Ok(Json(RoleDeleted { deleted: name }))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct Grant {
    permission: String,
}

fn valid_permission(p: &str) -> bool {
    match p.split_once(':') {
        Some((r, a)) => valid_name(r) && valid_name(a) && !a.contains(':'),
        None => false,
    }
}

#[utoipa::path(
    post,
    path = "/admin/api/roles/{name}/permissions",
    tag = "admin",
    params(("name" = String, Path, description = "The role's name")),
    request_body = Grant,
    responses(
        (status = 200, description = "Granted", body = Granted),
        (status = 400, description = "A permission that is not `<resource>:<action>`", body = ErrorBody),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "The `rbac:manage` permission is missing", body = ErrorBody),
        (status = 404, description = "No such role", body = ErrorBody),
        (status = 422, description = "Missing or mistyped fields", body = ErrorBody),
        (status = 503, description = "The registry has not applied the change (is it running?)", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn grant(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(role): Path<String>,
    Json(body): Json<Grant>,
) -> Result<Json<Granted>, ApiError> {
    caller.require(perms::RBAC_MANAGE)?;
    if !valid_permission(&body.permission) {
        return Err(ApiError::BadRequest(format!(
            "permission {:?} must be a <resource>:<action> token such as sales:access",
            body.permission
        )));
    }
    check_roles_exist(&state, std::slice::from_ref(&role))
        .await
        .map_err(|_| ApiError::NotFound(format!("role '{role}' not found")))?;
    // A grant can give away only what the caller holds, into a role it holds.
    caller.require(&body.permission)?;
    caller.require_roles(std::slice::from_ref(&role), "change")?;
    state
        .rbac_change(
            &caller,
            RbacChange::PermissionGranted {
                role: role.clone(),
                permission: body.permission.clone(),
            },
        )
        .await?;
    Ok(Json(Granted {
        role,
        granted: body.permission,
    }))
}

#[utoipa::path(
    delete,
    path = "/admin/api/roles/{name}/permissions/{permission}",
    tag = "admin",
    params(
        ("name" = String, Path, description = "The role's name"),
        ("permission" = String, Path, description = "A `<resource>:<action>` permission"),
    ),
    responses(
        (status = 200, description = "Revoked (also when the role did not hold it)", body = Revoked),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "The `rbac:manage` permission is missing", body = ErrorBody),
        (status = 404, description = "No such role, or not a permission", body = ErrorBody),
        (status = 503, description = "The registry has not applied the change (is it running?)", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn revoke(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((role, permission)): Path<(String, String)>,
) -> Result<Json<Revoked>, ApiError> {
    caller.require(perms::RBAC_MANAGE)?;
    if !valid_name(&role) {
        return Err(ApiError::NotFound(format!("role {role:?} not found")));
    }
    if !valid_permission(&permission) {
        return Err(ApiError::NotFound(format!(
            "{permission:?} is not a permission (<resource>:<action>)"
        )));
    }
    caller.require_roles(std::slice::from_ref(&role), "change")?;
    let _held = if permission == perms::RBAC_MANAGE {
        Some(keep_a_manager(&state, Change::RoleLoses(&role)).await?)
    } else {
        None
    };
    state
        .rbac_change(
            &caller,
            RbacChange::PermissionRevoked {
                role: role.clone(),
                permission: permission.clone(),
            },
        )
        .await?;
    Ok(Json(Revoked {
        role,
        revoked: permission,
    }))
}

#[utoipa::path(
    get,
    path = "/admin/api/permissions",
    tag = "admin",
    responses(
        (status = 200, description = "The permission catalogue", body = PermissionList),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "The `rbac:manage` permission is missing", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn list_permissions(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<PermissionList>, ApiError> {
    caller.require(perms::RBAC_MANAGE)?;
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT name, description, source FROM noderouter_core.permissions ORDER BY name",
    )
    .fetch_all(&state.db)
    .await
    .map_err(internal)?;
    let permissions = rows
        .into_iter()
        .map(|(name, description, source)| PermissionView {
            name,
            description,
            source,
        })
        .collect();
    Ok(Json(PermissionList { permissions }))
}

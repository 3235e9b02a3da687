//! API tokens (`rbac:manage`).

use super::*;

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct TokenView {
    id: String,
    name: String,
    /// The user who made it; the token acts with at most that user's roles.
    owner: String,
    roles: Vec<String>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    expires_at: Option<String>,
    revoked: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct TokenList {
    tokens: Vec<TokenView>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct NewTokenView {
    id: String,
    name: String,
    roles: Vec<String>,
    #[schema(format = DateTime)]
    expires_at: Option<String>,
    /// `nrt_<id>.<secret>`, to send as a bearer token.
    token: String,
    note: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct TokenRevoked {
    id: String,
    revoked: bool,
}

/// A field not listed is refused (422), not ignored: a misspelt `expires_in_s` made a
/// token that never expires.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewToken {
    name: String,
    roles: Vec<String>,
    #[serde(default)]
    expires_in_s: Option<u64>,
}

type Stamp = time::OffsetDateTime;
type TokenListRow = (
    String,
    String,
    String,
    Vec<String>,
    Stamp,
    Option<Stamp>,
    Option<Stamp>,
);

#[utoipa::path(
    get,
    path = "/admin/api/tokens",
    tag = "admin",
    responses(
        (status = 200, description = "Every API token (never its secret)", body = TokenList),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "The `rbac:manage` permission is missing", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn list_tokens(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<TokenList>, ApiError> {
    caller.require(perms::RBAC_MANAGE)?;
    let rows: Vec<TokenListRow> =
        sqlx::query_as(
            "SELECT id, name, owner, roles, created_at, expires_at, revoked_at FROM noderouter_core.api_tokens ORDER BY created_at",
        )
        .fetch_all(&state.db)
        .await
        .map_err(internal)?;
    let tokens = rows
        .into_iter()
        .map(|(id, name, owner, roles, c, e, r)| TokenView {
            id,
            name,
            owner,
            roles,
            created_at: rfc3339(c.unix_timestamp()),
            expires_at: e.map(|t| rfc3339(t.unix_timestamp())),
            revoked: r.is_some(),
        })
        .collect();
    Ok(Json(TokenList { tokens }))
}

#[utoipa::path(
    post,
    path = "/admin/api/tokens",
    tag = "admin",
    request_body = NewToken,
    responses(
        (status = 201, description = "The new token: its secret is shown once", body = NewTokenView),
        (status = 400, description = "A bad name or an unknown role", body = ErrorBody),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "`rbac:manage` is missing, or a role the caller does not hold", body = ErrorBody),
        (status = 422, description = "Missing or mistyped fields", body = ErrorBody),
        (status = 503, description = "The registry has not applied the change (is it running?)", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn create_token(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Json(body): Json<NewToken>,
) -> Result<(StatusCode, Json<NewTokenView>), ApiError> {
    caller.require(perms::RBAC_MANAGE)?;
    // A token acts with the roles its owner, a platform user, holds now: one issued by
    // another token or an outside identity would have no such owner and never work.
    if caller.0.kind != nr_auth::PrincipalKind::User {
        return Err(ApiError::Forbidden(
            "only a signed-in platform user can issue API tokens (a token acts with its owner's roles)".into(),
        ));
    }
    if body.name.trim().is_empty() || body.name.len() > 100 {
        return Err(ApiError::BadRequest(
            "token name must be 1-100 characters".into(),
        ));
    }
    check_text("name", &body.name, 100)?;
    check_roles_exist(&state, &body.roles).await?;
    if !caller.0.is_admin() {
        if let Some(r) = body.roles.iter().find(|r| !caller.0.roles.contains(r)) {
            return Err(ApiError::Forbidden(format!(
                "you cannot give a token role '{r}', which you do not hold"
            )));
        }
    }
    if body.expires_in_s.is_some_and(|s| s < 60) {
        return Err(ApiError::BadRequest(
            "expires_in_s must be at least 60 (a token that ends at once is no use); leave it out for a token that does not expire".into(),
        ));
    }
    let id = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
    let secret = nr_auth::password::random_secret();
    let expires_at = body.expires_in_s.map(|s| {
        rfc3339(time::OffsetDateTime::now_utc().unix_timestamp() + s.min(10 * 365 * 86400) as i64)
    });
    state
        .rbac_change(
            &caller,
            RbacChange::TokenIssued {
                id: id.clone(),
                name: body.name.clone(),
                owner: caller.0.sub.clone(),
                roles: body.roles.clone(),
                secret_hash: nr_auth::rbac::hash_secret(&secret),
                expires_at: expires_at.clone(),
            },
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(NewTokenView {
            token: format!("{}{id}.{secret}", nr_auth::rbac::TOKEN_PREFIX),
            id,
            name: body.name,
            roles: body.roles,
            expires_at,
            note: "this token is shown once; store it now".into(),
        }),
    ))
}

#[utoipa::path(
    delete,
    path = "/admin/api/tokens/{id}",
    tag = "admin",
    params(("id" = String, Path, description = "The token's id")),
    responses(
        (status = 200, description = "Revoked; sockets opened with it close", body = TokenRevoked),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "The `rbac:manage` permission is missing", body = ErrorBody),
        (status = 404, description = "Not a token id", body = ErrorBody),
        (status = 503, description = "The registry has not applied the change (is it running?)", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn revoke_token(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<TokenRevoked>, ApiError> {
    caller.require(perms::RBAC_MANAGE)?;
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ApiError::NotFound(format!("token {id:?} not found")));
    }
    let token: Option<(String, Vec<String>)> =
        sqlx::query_as("SELECT owner, roles FROM noderouter_core.api_tokens WHERE id = $1")
            .bind(&id)
            .fetch_optional(&state.db)
            .await
            .map_err(internal)?;
    let Some((owner, roles)) = token else {
        return Err(ApiError::NotFound(format!("token {id:?} not found")));
    };
    // Taking a token away takes its roles away: as for a user's roles, the caller needs
    // them, unless the token is the caller's own.
    if owner != caller.0.sub {
        caller.require_roles(&roles, "revoke a token with")?;
    }
    state
        .rbac_change(&caller, RbacChange::TokenRevoked { id: id.clone() })
        .await?;
    Ok(Json(TokenRevoked { id, revoked: true }))
}

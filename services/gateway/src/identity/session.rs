//! Sign-in and sign-out, the caller's own view, and a user's own password change.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;

use super::*;

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct Login {
    username: String,
    password: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Session {
    /// A bearer token (also set as the `nr_session` cookie).
    token: String,
    #[schema(format = DateTime)]
    expires_at: String,
    user: SessionUser,
}

fn session_cookie(state: &AppState, value: &str, max_age: i64) -> Result<HeaderValue, ApiError> {
    let secure = if state.auth_args.cookie_secure {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .map_err(internal)
}

/// `{id, username, roles}` of a session's user.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SessionUser {
    id: String,
    username: String,
    roles: Vec<String>,
}

/// The caller as the platform sees it now.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Me {
    id: String,
    username: String,
    roles: Vec<String>,
    /// Effective permissions (sorted); an admin holds every permission.
    permissions: Vec<String>,
    admin: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct LoggedOut {
    /// Whether a session was ended (false for an API token, which logout does not end).
    logged_out: bool,
    /// Why nothing was ended, when nothing was.
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<&'static str>,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// The client address of a request (the TCP peer), for login throttling.
fn client_ip(connect: Option<&ConnectInfo<SocketAddr>>) -> Option<IpAddr> {
    connect.map(|c| c.0.ip())
}

/// 429 with `Retry-After` (whole seconds, at least 1).
fn throttled(wait: Duration) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut res = (
        StatusCode::TOO_MANY_REQUESTS,
        Json(json!({
            "error": format!("too many failed logins: try again in {secs} s"),
            "code": "too_many_requests",
        })),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

/// 400 unless `password` meets the configured policy.
pub(super) fn check_password(
    state: &AppState,
    field: &str,
    password: &str,
) -> Result<(), ApiError> {
    let min = state.auth_args.password_min_length.max(1);
    if password.chars().count() < min {
        return Err(ApiError::BadRequest(format!(
            "{field} must have at least {min} characters"
        )));
    }
    if password.len() > 1024 || password.contains('\0') {
        return Err(ApiError::BadRequest(format!(
            "{field} must have at most 1024 bytes and no NUL characters"
        )));
    }
    Ok(())
}

/// A session for user `id`: the token and its cookie.
async fn start_session(state: &AppState, id: &str) -> Result<Response, ApiError> {
    let user = state
        .rbac
        .user(id)
        .await
        .map_err(crate::auth::to_api)?
        .ok_or_else(|| ApiError::Unauthorized("invalid username or password".into()))?;
    let (token, claims) = state
        .jwt
        .issue(id, &user.username, user.roles.clone(), &user.stamp)
        .map_err(internal)?;
    let max_age = claims.exp - claims.iat;
    let cookie = session_cookie(state, &token, max_age)?;
    let body = Session {
        token,
        expires_at: rfc3339(claims.exp),
        user: SessionUser {
            id: id.to_owned(),
            username: user.username,
            roles: user.roles,
        },
    };
    Ok((
        [(header::SET_COOKIE, cookie)],
        [crate::server::CLEAR_SITE_DATA],
        Json(body),
    )
        .into_response())
}

#[utoipa::path(
    post,
    path = "/api/auth/login",
    tag = "auth",
    request_body = Login,
    responses(
        (status = 200, description = "Logged in; the token is also set as the HttpOnly `nr_session` cookie", body = Session),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Invalid username or password (unknown and disabled users answer the same, in the same time)", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody),
        (status = 422, description = "Missing or mistyped fields", body = ErrorBody),
        (status = 429, description = "Too many failed logins for this account or address; `Retry-After` says when to try again", body = ErrorBody),
    ),
    security(())
)]
pub(crate) async fn login(
    State(state): State<Arc<AppState>>,
    connect: Option<axum::extract::Extension<ConnectInfo<SocketAddr>>>,
    Json(body): Json<Login>,
) -> Result<Response, ApiError> {
    let refused = || ApiError::Unauthorized("invalid username or password".into());
    if body.username.is_empty() || body.username.len() > 256 || body.username.contains('\0') {
        return Err(refused());
    }
    let ip = client_ip(connect.as_ref().map(|c| &c.0));
    if let Some(wait) = state.throttle.wait(&body.username, ip) {
        return Ok(throttled(wait));
    }
    let creds = state
        .rbac
        .credentials(&body.username)
        .await
        .map_err(crate::auth::to_api)?;
    // Unknown and disabled users are checked against a dummy hash: the same work as
    // a wrong password, so timing does not tell which usernames exist.
    let hash = creds
        .as_ref()
        .filter(|(_, _, disabled)| !disabled)
        .map(|(_, hash, _)| hash.as_str());
    let ok = state
        .hasher
        .verify(&body.password, hash)
        .await
        .map_err(ApiError::Internal)?;
    let Some((id, _, _)) = creds.filter(|_| ok) else {
        state.throttle.failed(&body.username, ip);
        return Err(refused());
    };
    state.throttle.succeeded(&body.username);
    start_session(&state, &id).await
}

#[utoipa::path(
    post,
    path = "/api/auth/password",
    tag = "auth",
    request_body = PasswordChange,
    responses(
        (status = 200, description = "The password is changed: every other session of the user ends, and this one is renewed (new token and cookie)", body = Session),
        (status = 400, description = "The new password does not meet the policy (`NR_PASSWORD_MIN_LENGTH`)", body = ErrorBody),
        (status = 401, description = "No valid session, or the current password is wrong", body = ErrorBody),
        (status = 403, description = "Not a user's session (API or external token)", body = ErrorBody),
        (status = 429, description = "Too many failed attempts", body = ErrorBody),
        (status = 503, description = "The registry has not applied the change (is it running?)", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn change_password(
    State(state): State<Arc<AppState>>,
    connect: Option<axum::extract::Extension<ConnectInfo<SocketAddr>>>,
    caller: Caller,
    Json(body): Json<PasswordChange>,
) -> Result<Response, ApiError> {
    if caller.0.kind != nr_auth::PrincipalKind::User {
        return Err(ApiError::Forbidden(
            "only a user's session can change its password".into(),
        ));
    }
    let ip = client_ip(connect.as_ref().map(|c| &c.0));
    if let Some(wait) = state.throttle.wait(&caller.0.name, ip) {
        return Ok(throttled(wait));
    }
    check_password(&state, "new_password", &body.new_password)?;
    let creds = state
        .rbac
        .credentials(&caller.0.name)
        .await
        .map_err(crate::auth::to_api)?
        .filter(|(id, _, _)| *id == caller.0.sub);
    let hash = creds.as_ref().map(|(_, h, _)| h.as_str());
    if !state
        .hasher
        .verify(&body.current_password, hash)
        .await
        .map_err(ApiError::Internal)?
    {
        state.throttle.failed(&caller.0.name, ip);
        return Err(ApiError::Unauthorized(
            "current_password is not the account's password".into(),
        ));
    }
    let password_hash = state
        .hasher
        .hash(&body.new_password)
        .await
        .map_err(ApiError::Internal)?;
    state
        .rbac_change(
            &caller,
            RbacChange::PasswordSet {
                id: caller.0.sub.clone(),
                password_hash,
            },
        )
        .await?;
    start_session(&state, &caller.0.sub).await
}

#[utoipa::path(
    post,
    path = "/api/auth/logout",
    tag = "auth",
    responses(
        (status = 200, description = "The session is revoked (its open WebSockets close) and the cookie cleared; with an API token, `logged_out` is false and nothing is revoked", body = LoggedOut),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 503, description = "The registry has not applied the change (is it running?)", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn logout(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let session = caller.0.jti.clone().zip(caller.0.exp);
    let logged_out = session.is_some();
    if let Some((jti, exp)) = session {
        state
            .rbac_change(
                &caller,
                RbacChange::SessionRevoked {
                    jti,
                    expires_at: rfc3339(exp),
                },
            )
            .await?;
    }
    let cookie = session_cookie(&state, "", 0)?;
    Ok((
        [(header::SET_COOKIE, cookie)],
        [crate::server::CLEAR_SITE_DATA],
        Json(LoggedOut {
            logged_out,
            note: (!logged_out).then_some(
                "an API token is not a session: revoke it with DELETE /admin/api/tokens/<id>",
            ),
        }),
    )
        .into_response())
}

#[utoipa::path(
    get,
    path = "/api/auth/me",
    tag = "auth",
    responses(
        (status = 200, description = "The caller", body = Me),
        (status = 401, description = "No valid credential", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn me(caller: Caller) -> Json<Me> {
    let p = caller.0;
    let mut permissions: Vec<String> = p.permissions().iter().cloned().collect();
    permissions.sort();
    Json(Me {
        admin: p.is_admin(),
        id: p.sub,
        username: p.name,
        roles: p.roles,
        permissions,
    })
}

//! The caller's notification subscriptions.

use super::*;

/// The state of one subscription after a change.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Subscription {
    subscribed: bool,
    app_name: String,
    action_name: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SubscriptionRow {
    app_name: String,
    action_name: String,
    #[schema(format = DateTime)]
    created_at: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SubscriptionList {
    subscriptions: Vec<SubscriptionRow>,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct ActionRef {
    app_name: String,
    action_name: String,
}

#[utoipa::path(
    post,
    path = "/api/notify/subscribe",
    tag = "notify",
    request_body = ActionRef,
    responses(
        (status = 200, description = "Subscribed", body = Subscription),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "The app's or the action's `required_permission` is missing", body = ErrorBody),
        (status = 404, description = "No such app or action", body = ErrorBody),
        (status = 422, description = "Missing or mistyped fields", body = ErrorBody),
        (status = 503, description = "The registry has not applied the change (is it running?)", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn subscribe(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Json(body): Json<ActionRef>,
) -> Result<Json<Subscription>, ApiError> {
    let entry = state
        .apps
        .get(&body.app_name)
        .ok_or_else(|| ApiError::NotFound(format!("app '{}' is not deployed", body.app_name)))?;
    let action = entry
        .manifest
        .actions
        .iter()
        .find(|a| a.name == body.action_name)
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "app '{}' declares no action '{}'",
                body.app_name, body.action_name
            ))
        })?;
    // The app's own permission first: an action of an app one may not use is not
    // one's to follow either.
    caller.require(entry.manifest.required_permission.as_deref().unwrap_or(""))?;
    caller.require(action.required_permission.as_deref().unwrap_or(""))?;
    state
        .rbac_change(
            &caller,
            RbacChange::Subscribed {
                user_id: caller.0.sub.clone(),
                app_name: body.app_name.clone(),
                action_name: body.action_name.clone(),
            },
        )
        .await?;
    Ok(Json(Subscription {
        subscribed: true,
        app_name: body.app_name,
        action_name: body.action_name,
    }))
}

#[utoipa::path(
    post,
    path = "/api/notify/unsubscribe",
    tag = "notify",
    request_body = ActionRef,
    responses(
        (status = 200, description = "Unsubscribed (also when there was no subscription)", body = Subscription),
        (status = 400, description = "Malformed JSON or names", body = ErrorBody),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 422, description = "Missing or mistyped fields", body = ErrorBody),
        (status = 503, description = "The registry has not applied the change (is it running?)", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn unsubscribe(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Json(body): Json<ActionRef>,
) -> Result<Json<Subscription>, ApiError> {
    if !crate::jobs::is_app_name(&body.app_name) || !crate::jobs::is_app_name(&body.action_name) {
        return Err(ApiError::BadRequest(
            "app_name and action_name must be names of letters, digits, _ and - (at most 64)"
                .into(),
        ));
    }
    state
        .rbac_change(
            &caller,
            RbacChange::Unsubscribed {
                user_id: caller.0.sub.clone(),
                app_name: body.app_name.clone(),
                action_name: body.action_name.clone(),
            },
        )
        .await?;
    Ok(Json(Subscription {
        subscribed: false,
        app_name: body.app_name,
        action_name: body.action_name,
    }))
}

#[utoipa::path(
    get,
    path = "/api/notify/subscriptions",
    tag = "notify",
    responses(
        (status = 200, description = "The caller's subscriptions", body = SubscriptionList),
        (status = 401, description = "No valid credential", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn subscriptions(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<SubscriptionList>, ApiError> {
    let rows: Vec<(String, String, time::OffsetDateTime)> = sqlx::query_as(
        "SELECT app_name, action_name, created_at FROM noderouter_core.subscriptions \
         WHERE user_id = $1 ORDER BY app_name, action_name",
    )
    .bind(&caller.0.sub)
    .fetch_all(&state.db)
    .await
    .map_err(internal)?;
    let list: Vec<SubscriptionRow> = rows
        .into_iter()
        .map(|(app_name, action_name, t)| SubscriptionRow {
            app_name,
            action_name,
            created_at: rfc3339(t.unix_timestamp()),
        })
        .collect();
    Ok(Json(SubscriptionList {
        subscriptions: list,
    }))
}

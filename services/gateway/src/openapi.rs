//! `GET /api/openapi.json`: the OpenAPI 3.1 document of the public and admin API,
//! generated from the handlers' `#[utoipa::path]` annotations. Public, no credential.

use std::sync::{Arc, OnceLock};

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::ErrorBody;
use crate::AppState;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/openapi.json", get(openapi_json))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "NodeRouter API",
        description = "The public API (`/api/...`) and the admin API (`/admin/api/...`) of the NodeRouter gateway. \
                       Every error is `{\"error\": \"...\", \"code\": \"...\"}`. Authenticate with \
                       `Authorization: Bearer <token>` (a session from `POST /api/auth/login` or an API token) \
                       or the `nr_session` cookie; cookie-authenticated state-changing requests must come from \
                       the site's own origin."
    ),
    paths(
        openapi_json,
        crate::sync::sync_call,
        crate::jobs::submit,
        crate::jobs::list_jobs,
        crate::jobs::get_job,
        crate::jobs::cancel,
        crate::job_ops::requeue_one,
        crate::job_ops::requeue_app,
        crate::job_ops::logs,
        crate::identity::login,
        crate::identity::logout,
        crate::identity::me,
        crate::identity::change_password,
        crate::identity::my_apps,
        crate::identity::subscribe,
        crate::identity::unsubscribe,
        crate::identity::subscriptions,
        notify_ticket,
        notify_ws,
        crate::identity::list_users,
        crate::identity::create_user,
        crate::identity::update_user,
        crate::identity::set_roles,
        crate::identity::list_roles,
        crate::identity::create_role,
        crate::identity::delete_role,
        crate::identity::grant,
        crate::identity::revoke,
        crate::identity::list_permissions,
        crate::identity::list_tokens,
        crate::identity::create_token,
        crate::identity::revoke_token,
        crate::admin::deploy,
        crate::admin::delete_app_named_deploy,
        crate::admin::list_apps,
        crate::admin::delete_app,
        crate::admin::versions,
        crate::admin::rollback,
        crate::app_env::list_env,
        crate::app_env::set_env,
        crate::app_env::unset_env,
        crate::console::audit::audit,
        crate::schedules::admin::list,
        crate::schedules::admin::ticks,
        crate::schedules::admin::pause,
        crate::schedules::admin::resume,
        crate::routes::download::fetch,
        crate::console::series::series,
        crate::console::series::payload,
    ),
    components(schemas(ErrorBody)),
    modifiers(&Security),
    security(("bearer" = []), ("cookie" = [])),
    tags(
        (name = "apps", description = "Calling apps"),
        (name = "jobs", description = "Async jobs"),
        (name = "auth", description = "Sessions"),
        (name = "notify", description = "Notification subscriptions"),
        (name = "admin", description = "Administration: apps, users, roles, grants, API tokens"),
        (name = "files", description = "Files apps return, by their short-lived links"),
        (name = "meta", description = "This document"),
    )
)]
pub struct ApiDoc;

/// The two ways to present a credential.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A session token from POST /api/auth/login, or an API token (nrt_...)",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::auth::SESSION_COOKIE,
                "The HttpOnly session cookie set by POST /api/auth/login",
            ))),
        );
    }
}

/// The document, serialized once.
fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        ApiDoc::openapi().to_json().unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot serialize the OpenAPI document");
            String::from("{}")
        })
    })
}

/// This document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object)),
    security(())
)]
async fn openapi_json() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], document()).into_response()
}

// The two operations below are served by handlers outside this crate's annotated
// modules (the ticket issuer and notify's WebSocket hub); these stubs describe them.

/// A one-time ticket (valid 30 s) that opens one WebSocket at `/api/ws/notify?ticket=…`,
/// for clients that cannot send a credential on the WebSocket handshake.
#[utoipa::path(
    post,
    path = "/api/notify/ticket",
    tag = "notify",
    responses(
        (status = 200, description = "`{ticket, expires_at, expires_in, url}`", body = Object),
        (status = 401, description = "No valid credential", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
#[allow(dead_code)]
fn notify_ticket() {}

/// The notification WebSocket: events of the actions the caller subscribed to.
#[utoipa::path(
    get,
    path = "/api/ws/notify",
    tag = "notify",
    params(
        ("ticket" = Option<String>, Query, description = "A ticket from POST /api/notify/ticket, instead of a credential"),
        ("last_id" = Option<u64>, Query, description = "Replay events after this id"),
    ),
    responses(
        (status = 101, description = "Switched to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket upgrade, or a bad last_id", body = ErrorBody),
        (status = 401, description = "No valid credential or ticket", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []), ())
)]
#[allow(dead_code)]
fn notify_ws() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_is_json_with_the_error_schema_and_security_schemes() {
        let doc: serde_json::Value = serde_json::from_str(document()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
        assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
        assert!(doc["components"]["securitySchemes"]["cookie"].is_object());
        assert!(doc["paths"]["/api/sync/{app}"]["post"].is_object());
    }
}

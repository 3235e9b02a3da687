//! Helpers of the identity tests: a user logged in with some roles, and an app guarded
//! by permissions (its calls, its actions and its menu).

use nr_testkit::{app_name, manifest};
use reqwest::StatusCode;
use serde_json::json;

use super::{client_with_token, post, Harness};

/// Creates a user with `roles` and returns a client logged in as them.
pub async fn user(h: &Harness, name: &str, roles: &[&str]) -> reqwest::Client {
    let (s, b) = post(
        &h.http,
        format!("{}/admin/api/users", h.url),
        json!({"username": name, "password": "password-123", "roles": roles}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = post(
        &reqwest::Client::new(),
        format!("{}/api/auth/login", h.url),
        json!({"username": name, "password": "password-123"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    client_with_token(b["token"].as_str().unwrap())
}

pub async fn guarded_app(h: &Harness) -> String {
    let app = app_name("sales");
    h.deploy_ok(
        &app,
        &[
            (
                "manifest.json",
                &manifest(
                    &app,
                    "1.0.0",
                    json!({
                        "required_permission": "sales:access",
                        "actions": [
                            {"name": "deal_closed", "display_name": "Deal closed", "required_permission": "sales:notify"},
                            {"name": "open_event", "display_name": "Open"}
                        ],
                        "nav": [{"id": format!("{app}:root"), "label": "Sales", "href": format!("/apps/{app}/"),
                                 "children": [{"id": format!("{app}:reports"), "label": "Reports", "href": "/r", "permission": "reports:read"}]}]
                    }),
                ),
            ),
            ("main.py", "def execute(data, conn=None):\n    return {'ok': True, 'job': data.get('_job_id')}\n"),
        ],
    )
    .await;
    app
}

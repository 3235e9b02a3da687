//! Helpers of the admin page tests: a bundle that fires actions, a login through the API
//! returning the session cookie, requests with it, and users with some permissions.

use nr_testkit::manifest;
use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::Harness;

/// A bundle whose call fires the action named in `data["action"]`; `rang` needs
/// `bell:hear`, `open` needs nothing.
pub fn bell_files(app: &str, version: &str) -> Vec<(String, String)> {
    let m = manifest(
        app,
        version,
        json!({
            "display_name": "Bell <Page>",
            "actions": [
                {"name": "rang", "display_name": "Rang", "description": "The bell rang", "required_permission": "bell:hear"},
                {"name": "open", "display_name": "Open", "description": "Anyone may follow this"}
            ]
        }),
    );
    vec![
        ("manifest.json".into(), m),
        (
            "main.py".into(),
            "def execute(data, conn=None):\n    return {'ok': True, '_actions': [{'name': data.get('action', 'open'), 'payload': data.get('payload')}]}\n".into(),
        ),
        (
            "index.html".into(),
            "<!doctype html><html><head><title>b</title></head><body><p class=\"bp-hello\">hello</p></body></html>\n".into(),
        ),
    ]
}

pub fn zip_of(files: &[(String, String)]) -> Vec<u8> {
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    nr_testkit::zip_files(&refs)
}

pub fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub async fn login(h: &Harness, username: &str, password: &str) -> String {
    let res = no_redirects()
        .post(format!("{}/api/auth/login", h.url))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("nr_session="))
        .expect("session cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

pub async fn get_with(h: &Harness, cookie: &str, path: &str) -> reqwest::Response {
    no_redirects()
        .get(format!("{}{path}", h.url))
        .header(COOKIE, format!("nr_session={cookie}"))
        .send()
        .await
        .unwrap()
}

pub async fn post_admin(h: &Harness, path: &str, body: Value) {
    let r = h
        .http
        .post(format!("{}{path}", h.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    let s = r.status();
    assert!(s.is_success(), "{path}: {s} {}", r.text().await.unwrap());
}

pub async fn user_with(h: &Harness, name: &str, permissions: &[&str]) -> String {
    let mut roles = Vec::new();
    if !permissions.is_empty() {
        let role = format!("{name}_role");
        post_admin(h, "/admin/api/roles", json!({"name": role})).await;
        for p in permissions {
            post_admin(
                h,
                &format!("/admin/api/roles/{role}/permissions"),
                json!({"permission": p}),
            )
            .await;
        }
        roles.push(role);
    }
    post_admin(
        h,
        "/admin/api/users",
        json!({"username": name, "password": "password-123", "roles": roles}),
    )
    .await;
    login(h, name, "password-123").await
}

//! Identity and the API's access rules, end to end through the gateway: sessions, a valid
//! credential on every endpoint, API tokens, cross-site writes with a cookie, and bodies
//! checked with the right status. Permissions and roles are in `identity_rbac.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::identity::guarded_app;
use common::{client_with_token, post, role, Harness, ADMIN_PASSWORD};
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_issues_a_session_and_logout_revokes_it() {
    let h = Harness::start().await;
    let anon = reqwest::Client::new();
    let (s, _) = post(
        &anon,
        format!("{}/api/auth/login", h.url),
        json!({"username": "admin", "password": "wrong"}),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let res = anon
        .post(format!("{}/api/auth/login", h.url))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.starts_with("nr_session=")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let body: Value = res.json().await.unwrap();
    assert!(body["expires_at"].as_str().is_some());
    let token = body["token"].as_str().unwrap();
    let me = client_with_token(token);
    let r = me
        .get(format!("{}/api/auth/me", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["username"], "admin");
    let r = me
        .post(format!("{}/api/auth/logout", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        serde_json::json!({"logged_out": true})
    );
    let r = me
        .get(format!("{}/api/auth/me", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "a logged-out token is refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_needs_a_valid_credential() {
    let h = Harness::start().await;
    let app = guarded_app(&h).await;
    let anon = reqwest::Client::new();
    for (method, path) in [
        ("POST", format!("/api/sync/{app}")),
        ("POST", format!("/api/async/{app}")),
        ("GET", "/api/async/jobs".to_owned()),
        ("GET", "/admin/api/apps".to_owned()),
        ("GET", "/admin/api/users".to_owned()),
        ("GET", "/api/apps".to_owned()),
        ("POST", "/api/notify/subscribe".to_owned()),
    ] {
        let url = format!("{}{path}", h.url);
        let req = if method == "GET" {
            anon.get(&url)
        } else {
            anon.post(&url).json(&json!({}))
        };
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], "unauthorized");
    }
    let forged = client_with_token("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.");
    let (s, _) = post(&forged, format!("{}/api/sync/{app}", h.url), json!({})).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_tokens_work_until_revoked() {
    let h = Harness::start().await;
    let app = guarded_app(&h).await;
    role(&h, "robots", &["sales:access"]).await;
    let (s, made) = post(
        &h.http,
        format!("{}/admin/api/tokens", h.url),
        json!({"name": "ci", "roles": ["robots"]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{made}");
    let token = made["token"].as_str().unwrap();
    assert!(token.starts_with("nrt_"));
    // A misspelt expiry is refused, not ignored (it made a token that never expires).
    let (s, b) = post(
        &h.http,
        format!("{}/admin/api/tokens", h.url),
        json!({"name": "typo", "roles": ["robots"], "expires_in_days": 30}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(
        b["error"]
            .as_str()
            .unwrap()
            .contains("unknown field `expires_in_days`"),
        "{b}"
    );
    // A token that would end at once is refused (it was issued, already expired).
    for short in [0, 59] {
        let (s, b) = post(
            &h.http,
            format!("{}/admin/api/tokens", h.url),
            json!({"name": "brief", "roles": ["robots"], "expires_in_s": short}),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
        assert!(
            b["error"]
                .as_str()
                .unwrap()
                .starts_with("expires_in_s must be at least 60"),
            "{b}"
        );
    }
    let robot = client_with_token(token);
    assert_eq!(
        post(&robot, format!("{}/api/sync/{app}", h.url), json!({}))
            .await
            .0,
        StatusCode::OK
    );
    // Logging out with it says it ended nothing, and how to end it; it still works.
    let (s, b) = post(&robot, format!("{}/api/auth/logout", h.url), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["logged_out"], json!(false), "{b}");
    assert!(
        b["note"]
            .as_str()
            .unwrap()
            .contains("DELETE /admin/api/tokens/"),
        "{b}"
    );
    assert_eq!(
        post(&robot, format!("{}/api/sync/{app}", h.url), json!({}))
            .await
            .0,
        StatusCode::OK
    );
    let listed: Value = h
        .http
        .get(format!("{}/admin/api/tokens", h.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        listed.to_string().find(token).is_none(),
        "the secret is shown once only"
    );
    let r = h
        .http
        .delete(format!(
            "{}/admin/api/tokens/{}",
            h.url,
            made["id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        post(&robot, format!("{}/api/sync/{app}", h.url), json!({}))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let bad = client_with_token(&format!("{}x", &token[..token.len() - 1]));
    assert_eq!(
        post(&bad, format!("{}/api/sync/{app}", h.url), json!({}))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_sessions_refuse_cross_site_writes() {
    let h = Harness::start().await;
    let app = guarded_app(&h).await;
    let login: Value = post(
        &reqwest::Client::new(),
        format!("{}/api/auth/login", h.url),
        json!({"username": "admin", "password": ADMIN_PASSWORD}),
    )
    .await
    .1;
    let cookie = format!("nr_session={}", login["token"].as_str().unwrap());
    let browser = reqwest::Client::new();
    let call = |origin: Option<&str>| {
        let mut r = browser
            .post(format!("{}/api/sync/{app}", h.url))
            .header("cookie", &cookie)
            .json(&json!({}));
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        r.send()
    };
    assert_eq!(
        call(Some("https://evil.example")).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(call(None).await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(call(Some(&h.url)).await.unwrap().status(), StatusCode::OK);
    // Reads with the cookie need no origin.
    let r = browser
        .get(format!("{}/api/auth/me", h.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_checked_with_the_right_status() {
    let h = Harness::start_with(&["--max-body-bytes", "1000"]).await;
    let app = guarded_app(&h).await;
    let url = format!("{}/api/sync/{app}", h.url);
    let r = h
        .http
        .post(&url)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        r.json::<Value>().await.unwrap()["code"],
        "unsupported_media_type"
    );
    let r = h
        .http
        .post(&url)
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let big = json!({"blob": "x".repeat(5000)});
    let r = h.http.post(&url).json(&big).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "payload_too_large", "{body}");
    // The limit and the setting that raises it are named.
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("bytes (NR_MAX_BODY_BYTES"),
        "{body}"
    );
    // The admin API's JSON endpoints hold to the same limit, so its 413 says what applied
    // there too (an app variable of 5000 bytes is within its own 32 KiB bound).
    let (s, b) = post(
        &h.http,
        format!("{}/admin/api/apps/{app}/env", h.url),
        json!({"name": "BIG", "value": "x".repeat(5000)}),
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{b}");
    assert!(
        b["error"]
            .as_str()
            .unwrap()
            .contains("1000 bytes (NR_MAX_BODY_BYTES"),
        "{b}"
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
}

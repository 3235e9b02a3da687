//! Access rules an attacker probed (issue 10): each test attacks one rule through the
//! real gateway, registry, Postgres and NATS.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{client_with_token, post, role, Harness};
use nr_testkit::{app_name, manifest};
use reqwest::StatusCode;
use serde_json::{json, Value};

const PASSWORD: &str = "password-123";

/// Creates a user with `roles`; returns its id and a client logged in as it.
async fn user(h: &Harness, name: &str, roles: &[&str]) -> (String, reqwest::Client, String) {
    let (s, b) = post(
        &h.http,
        format!("{}/admin/api/users", h.url),
        json!({"username": name, "password": PASSWORD, "roles": roles}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let id = b["id"].as_str().unwrap().to_owned();
    let token = login(h, name, PASSWORD).await;
    (id, client_with_token(&token), token)
}

async fn login(h: &Harness, name: &str, password: &str) -> String {
    let (s, b) = post(
        &reqwest::Client::new(),
        format!("{}/api/auth/login", h.url),
        json!({"username": name, "password": password}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["token"].as_str().unwrap().to_owned()
}

async fn put(c: &reqwest::Client, url: String, body: Value) -> (StatusCode, Value) {
    let r = c.put(url).json(&body).send().await.unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn get(c: &reqwest::Client, url: String) -> (StatusCode, Value) {
    let r = c.get(url).send().await.unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn gated_app(h: &Harness, body: &str) -> String {
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
                        "actions": [{"name": "deal_closed", "display_name": "Deal closed", "required_permission": "sales:notify"}]
                    }),
                ),
            ),
            ("main.py", body),
        ],
    )
    .await;
    app
}

const QUICK: &str = "def execute(data, conn=None):\n    return {'ok': True}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribing_needs_the_apps_permission_as_well_as_the_actions() {
    let h = Harness::start().await;
    let app = gated_app(&h, QUICK).await;
    role(&h, "notified", &["sales:notify"]).await;
    role(&h, "seller", &["sales:access"]).await;
    let (_, only_action, _) = user(&h, "only-action", &["notified"]).await;
    let (_, both, _) = user(&h, "both", &["notified", "seller"]).await;
    let body = json!({"app_name": app, "action_name": "deal_closed"});
    let (s, b) = post(
        &only_action,
        format!("{}/api/notify/subscribe", h.url),
        body.clone(),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert!(b["error"].as_str().unwrap().contains("sales:access"), "{b}");
    let (s, b) = post(&both, format!("{}/api/notify/subscribe", h.url), body).await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_token_never_carries_more_than_its_owner_holds_now() {
    let h = Harness::start().await;
    let app = gated_app(&h, QUICK).await;
    role(&h, "managers", &["rbac:manage"]).await;
    role(&h, "seller", &["sales:access"]).await;
    let (mgr_id, mgr, _) = user(&h, "mgr", &["managers", "seller"]).await;
    let (s, b) = post(
        &mgr,
        format!("{}/admin/api/tokens", h.url),
        json!({"name": "ci", "roles": ["seller"]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let token = client_with_token(b["token"].as_str().unwrap());
    let call = |c: reqwest::Client| {
        let url = format!("{}/api/sync/{app}", h.url);
        async move { c.post(url).json(&json!({})).send().await.unwrap().status() }
    };
    assert_eq!(call(token.clone()).await, StatusCode::OK);

    // The owner loses the role: the token loses it with them, at once.
    let (s, b) = put(
        &h.http,
        format!("{}/admin/api/users/{mgr_id}/roles", h.url),
        json!({"roles": ["managers"]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(call(token.clone()).await, StatusCode::FORBIDDEN);
    let (s, me) = get(&token, format!("{}/api/auth/me", h.url)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(me["roles"], json!([]), "{me}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn granting_needs_at_least_what_is_granted() {
    let h = Harness::start().await;
    role(&h, "managers", &["rbac:manage"]).await;
    role(&h, "deployers", &["apps:deploy"]).await;
    let (mgr_id, mgr, _) = user(&h, "mgr", &["managers"]).await;
    let admin_id = get(&h.http, format!("{}/api/auth/me", h.url)).await.1["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Giving itself admin, or a role it does not hold.
    for roles in [
        json!(["managers", "admin"]),
        json!(["managers", "deployers"]),
    ] {
        let (s, b) = put(
            &mgr,
            format!("{}/admin/api/users/{mgr_id}/roles", h.url),
            json!({ "roles": roles }),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{roles}: {b}");
    }
    // A new user holding admin.
    let (s, b) = post(
        &mgr,
        format!("{}/admin/api/users", h.url),
        json!({"username": "sock-puppet", "password": PASSWORD, "roles": ["admin"]}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    // A permission it does not hold, into its own role.
    let (s, b) = post(
        &mgr,
        format!("{}/admin/api/roles/managers/permissions", h.url),
        json!({"permission": "apps:deploy"}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    // Taking over the admin account by setting its password, or taking its role away.
    let r = mgr
        .patch(format!("{}/admin/api/users/{admin_id}", h.url))
        .json(&json!({"password": "taken-over-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let (s, _) = put(
        &mgr,
        format!("{}/admin/api/users/{admin_id}/roles", h.url),
        json!({"roles": []}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Revoking an admin's token (before: 200, and the token was dead); its own is fine.
    let (s, b) = post(
        &h.http,
        format!("{}/admin/api/tokens", h.url),
        json!({"name": "admin-ci", "roles": ["admin"]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let admin_token = client_with_token(b["token"].as_str().unwrap());
    let revoke = |who: &reqwest::Client, id: &str| {
        who.delete(format!("{}/admin/api/tokens/{id}", h.url))
            .send()
    };
    let r = revoke(&mgr, b["id"].as_str().unwrap()).await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("'admin'"));
    assert_eq!(
        get(&admin_token, format!("{}/api/auth/me", h.url)).await.0,
        StatusCode::OK
    );
    let (s, b) = post(
        &mgr,
        format!("{}/admin/api/tokens", h.url),
        json!({"name": "mine", "roles": ["managers"]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    // A token issuing tokens: they would be owned by no user and never work (before:
    // 201, owner "token:<id>").
    let mine = client_with_token(b["token"].as_str().unwrap());
    let (s, e) = post(
        &mine,
        format!("{}/admin/api/tokens", h.url),
        json!({"name": "grandchild", "roles": ["managers"]}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    assert!(
        e["error"].as_str().unwrap().contains("platform user"),
        "{e}"
    );
    let r = revoke(&mgr, b["id"].as_str().unwrap()).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = revoke(&mgr, "nosuchtoken").await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let (_, me) = get(&mgr, format!("{}/api/auth/me", h.url)).await;
    assert_eq!(me["roles"], json!(["managers"]), "{me}");

    // What it holds, it may grant.
    let (s, b) = post(
        &mgr,
        format!("{}/admin/api/users", h.url),
        json!({"username": "helper", "password": PASSWORD, "roles": ["managers"]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_needs_the_submitter_or_a_cancel_permission() {
    let h = Harness::start().await;
    let app = app_name("slow");
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
            (
                "main.py",
                "import time\ndef execute(data, conn=None):\n    time.sleep(20)\n    return {}\n",
            ),
        ],
    )
    .await;
    role(&h, "auditors", &["jobs:read_all"]).await;
    role(&h, "operators", &["jobs:read_all", "jobs:cancel_all"]).await;
    let (_, alice, _) = user(&h, "alice", &[]).await;
    let (_, auditor, _) = user(&h, "auditor", &["auditors"]).await;
    let (_, operator, _) = user(&h, "operator", &["operators"]).await;
    let submit = || async {
        let (s, b) = post(&alice, format!("{}/api/async/{app}", h.url), json!({})).await;
        assert_eq!(s.as_u16() / 100, 2, "{b}");
        b["job_id"].as_str().unwrap().to_owned()
    };
    let job = submit().await;
    let url = format!("{}/api/async/jobs/{job}", h.url);
    assert_eq!(
        get(&auditor, url.clone()).await.0,
        StatusCode::OK,
        "auditors see it"
    );
    let r = auditor.delete(&url).send().await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "seeing is not cancelling"
    );
    let r = operator.delete(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let own = submit().await;
    let r = alice
        .delete(format!("{}/api/async/jobs/{own}", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the submitter cancels its own");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_ends_the_users_other_sessions() {
    let h = Harness::start().await;
    let (id, here, _) = user(&h, "carol", &[]).await;
    let elsewhere = client_with_token(&login(&h, "carol", PASSWORD).await);
    let me = format!("{}/api/auth/me", h.url);
    let change = format!("{}/api/auth/password", h.url);

    let (s, b) = post(
        &here,
        change.clone(),
        json!({"current_password": PASSWORD, "new_password": "short-pw"}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(b["error"].as_str().unwrap().contains("12"), "{b}");
    let (s, _) = post(
        &here,
        change.clone(),
        json!({"current_password": "not-the-password", "new_password": "a-new-password-1"}),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let (s, b) = post(
        &here,
        change,
        json!({"current_password": PASSWORD, "new_password": "a-new-password-1"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let renewed = client_with_token(b["token"].as_str().unwrap());
    assert_eq!(get(&renewed, me.clone()).await.0, StatusCode::OK);
    assert_eq!(
        get(&elsewhere, me.clone()).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(get(&here, me.clone()).await.0, StatusCode::UNAUTHORIZED);

    // An administrator's reset ends every session of the user.
    let r = h
        .http
        .patch(format!("{}/admin/api/users/{id}", h.url))
        .json(&json!({"password": "reset-by-the-admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(get(&renewed, me).await.0, StatusCode::UNAUTHORIZED);
    // The policy applies to the admin API too.
    let (s, b) = post(
        &h.http,
        format!("{}/admin/api/users", h.url),
        json!({"username": "dave", "password": "eight-ch"}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_a_user_ends_their_sessions_for_good() {
    let h = Harness::start().await;
    role(&h, "token-makers", &["rbac:manage"]).await;
    let (id, session, _) = user(&h, "gina", &["token-makers"]).await;
    let me = format!("{}/api/auth/me", h.url);
    let (s, b) = post(
        &session,
        format!("{}/admin/api/tokens", h.url),
        json!({"name": "gina-automation", "roles": []}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let api_token = client_with_token(b["token"].as_str().unwrap());
    assert_eq!(get(&session, me.clone()).await.0, StatusCode::OK);
    assert_eq!(get(&api_token, me.clone()).await.0, StatusCode::OK);

    let set = |disabled: bool| {
        h.http
            .patch(format!("{}/admin/api/users/{id}", h.url))
            .json(&json!({ "disabled": disabled }))
            .send()
    };
    assert_eq!(set(true).await.unwrap().status(), StatusCode::OK);
    assert_eq!(get(&session, me.clone()).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        get(&api_token, me.clone()).await.0,
        StatusCode::UNAUTHORIZED
    );

    // Enabled again: the session from before stays ended (a stolen cookie of a
    // suspended account is worth nothing), a new sign-in works, and the API token,
    // a credential an operator revokes on its own, is usable again.
    assert_eq!(set(false).await.unwrap().status(), StatusCode::OK);
    assert_eq!(get(&session, me.clone()).await.0, StatusCode::UNAUTHORIZED);
    let fresh = client_with_token(&login(&h, "gina", PASSWORD).await);
    assert_eq!(get(&fresh, me.clone()).await.0, StatusCode::OK);
    assert_eq!(get(&api_token, me.clone()).await.0, StatusCode::OK);
    // Enabling an enabled user ends nothing.
    assert_eq!(set(false).await.unwrap().status(), StatusCode::OK);
    assert_eq!(get(&fresh, me).await.0, StatusCode::OK);
}

async fn metrics(c: &reqwest::Client, base: &str) -> StatusCode {
    c.get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_a_credential_with_metrics_read() {
    let h = Harness::start().await;
    role(&h, "monitoring", &["metrics:read"]).await;
    let (_, plain, _) = user(&h, "plain", &[]).await;
    let (_, monitor, _) = user(&h, "monitor", &["monitoring"]).await;
    assert_eq!(
        metrics(&reqwest::Client::new(), &h.url).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(metrics(&plain, &h.url).await, StatusCode::FORBIDDEN);
    assert_eq!(metrics(&monitor, &h.url).await, StatusCode::OK);
    assert_eq!(metrics(&h.http, &h.url).await, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_on_an_internal_address_leave_the_public_one() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let internal = format!("127.0.0.1:{port}");
    let h = Harness::start_with(&["--metrics-addr", &internal]).await;
    assert_eq!(metrics(&h.http, &h.url).await, StatusCode::NOT_FOUND);
    let mut status = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..50 {
        if let Ok(r) = reqwest::get(format!("http://{internal}/metrics")).await {
            status = r.status();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        status,
        StatusCode::OK,
        "the internal address serves metrics without a credential"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_queueing_takes_the_apps_permission_now() {
    let h = Harness::start().await;
    role(&h, "sales", &["sales:access"]).await;
    let app = gated_app(
        &h,
        "def execute(data, conn=None):\n    raise RuntimeError('no')\n",
    )
    .await;
    let (id, seller, _) = user(&h, "seller", &["sales"]).await;
    let (s, b) = post(&seller, format!("{}/api/async/{app}", h.url), json!({})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let job = b["job_id"].as_str().unwrap().to_owned();
    let mut failed = Value::Null;
    for _ in 0..600 {
        let (_, j) = get(&seller, format!("{}/api/async/jobs/{job}", h.url)).await;
        if j["status"] == "failed" {
            failed = j;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(failed["status"], "failed", "{failed}");
    // The seller loses the app's permission.
    let (s, b) = put(
        &h.http,
        format!("{}/admin/api/users/{id}/roles", h.url),
        json!({"roles": []}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = post(
        &seller,
        format!("{}/api/async/jobs/{job}/requeue", h.url),
        json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    let (s, b) = post(
        &seller,
        format!("{}/api/async/requeue", h.url),
        json!({"app_name": app}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    // Nothing was run again.
    let (_, j) = get(&h.http, format!("{}/api/async/jobs/{job}", h.url)).await;
    assert_eq!(j["status"], "failed", "{j}");
}

//! Identity, RBAC and the API's access rules, end to end through the gateway.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{client_with_token, post, role, Harness, ADMIN_PASSWORD};
use nr_testkit::{app_name, manifest};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Creates a user with `roles` and returns a client logged in as them.
async fn user(h: &Harness, name: &str, roles: &[&str]) -> reqwest::Client {
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

async fn guarded_app(h: &Harness) -> String {
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
async fn required_permission_gates_calls_and_grants_take_effect_at_once() {
    let h = Harness::start().await;
    let app = guarded_app(&h).await;
    role(&h, "sales", &[]).await;
    let bob = user(&h, "bob", &["sales"]).await;
    let (s, b) = post(&bob, format!("{}/api/sync/{app}", h.url), json!({})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(b["error"].as_str().unwrap().contains("sales:access"), "{b}");
    let (s, _) = post(&bob, format!("{}/api/async/{app}", h.url), json!({})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    let (s, _) = post(
        &h.http,
        format!("{}/admin/api/roles/sales/permissions", h.url),
        json!({"permission": "sales:access"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = post(&bob, format!("{}/api/sync/{app}", h.url), json!({})).await;
    assert_eq!(
        s,
        StatusCode::OK,
        "the grant applies without a restart: {b}"
    );

    let r = h
        .http
        .delete(format!(
            "{}/admin/api/roles/sales/permissions/sales:access",
            h.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (s, _) = post(&bob, format!("{}/api/sync/{app}", h.url), json!({})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "revoking applies at once");

    // Admin endpoints need their own permission.
    let r = bob
        .get(format!("{}/admin/api/users", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("rbac:manage"));

    // The app's permissions joined the catalogue.
    let cat: Value = h
        .http
        .get(format!("{}/admin/api/permissions", h.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = cat["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for p in ["sales:access", "sales:notify", "apps:deploy", "rbac:manage"] {
        assert!(names.contains(&p), "{p} missing from {names:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_change_of_a_user_takes_effect_on_live_sessions() {
    let h = Harness::start().await;
    let app = guarded_app(&h).await;
    role(&h, "sellers", &["sales:access"]).await;
    role(&h, "nobody", &[]).await;
    let carol = user(&h, "carol", &["sellers"]).await;
    assert_eq!(
        post(&carol, format!("{}/api/sync/{app}", h.url), json!({}))
            .await
            .0,
        StatusCode::OK
    );
    let users: Value = h
        .http
        .get(format!("{}/admin/api/users", h.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "carol")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = h
        .http
        .put(format!("{}/admin/api/users/{id}/roles", h.url))
        .json(&json!({"roles": ["nobody"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        post(&carol, format!("{}/api/sync/{app}", h.url), json!({}))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    let r = h
        .http
        .put(format!("{}/admin/api/users/{id}/roles", h.url))
        .json(&json!({"roles": ["ghost"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "unknown roles are refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_private_to_their_submitter_and_submit_is_idempotent() {
    let h = Harness::start().await;
    let app = guarded_app(&h).await;
    role(&h, "sellers", &["sales:access"]).await;
    let alice = user(&h, "alice", &["sellers"]).await;
    let bob = user(&h, "bob", &["sellers"]).await;
    let submit = |key: &'static str| {
        alice
            .post(format!("{}/api/async/{app}", h.url))
            .header("Idempotency-Key", key)
            .json(&json!({"n": 1}))
            .send()
    };
    let first: Value = submit("order-1").await.unwrap().json().await.unwrap();
    let again: Value = submit("order-1").await.unwrap().json().await.unwrap();
    assert_eq!(
        first["job_id"], again["job_id"],
        "a retry returns the same job"
    );
    let other: Value = submit("order-2").await.unwrap().json().await.unwrap();
    assert_ne!(first["job_id"], other["job_id"]);
    let id = first["job_id"].as_str().unwrap();
    // A retry after the job ran answers its status now (before: always "pending").
    let done = h
        .wait_job(id, |j| {
            j["status"] == "completed" || j["status"] == "failed"
        })
        .await;
    let r = submit("order-1").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let again: Value = r.json().await.unwrap();
    assert_eq!(
        (&again["job_id"], &again["status"]),
        (&first["job_id"], &done["status"]),
        "{again}"
    );
    // The key with another body is a mistake, said so (before: 200 and the old job,
    // the new request silently not run). Key order and spacing do not count.
    let r = alice
        .post(format!("{}/api/async/{app}", h.url))
        .header("Idempotency-Key", "order-1")
        .json(&json!({"n": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let b: Value = r.json().await.unwrap();
    assert!(b["error"].as_str().unwrap().contains("another body"), "{b}");
    let r = alice
        .post(format!("{}/api/async/{app}", h.url))
        .header("Idempotency-Key", "order-1")
        .header("content-type", "application/json")
        .body("{ \"n\" : 1 }")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let r = alice
        .get(format!("{}/api/async/jobs/{id}", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = bob
        .get(format!("{}/api/async/jobs/{id}", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "another user's job does not exist for bob"
    );
    let r = bob
        .delete(format!("{}/api/async/jobs/{id}", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = h
        .http
        .get(format!("{}/api/async/jobs/{id}", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "jobs:read_all (admin) sees every job"
    );

    let mine: Value = alice
        .get(format!("{}/api/async/jobs?limit=1", h.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(mine["jobs"].as_array().unwrap().len(), 1);
    let next = mine["next_before"].as_str().unwrap();
    let page2: Value = alice
        .get(format!("{}/api/async/jobs?limit=1&before={next}", h.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page2["jobs"].as_array().unwrap().len(), 1);
    assert!(page2["next_before"].is_null());
    // A page size out of range is refused, not quietly changed (limit=0 listed a job).
    for limit in ["0", "501", "-1"] {
        let r = alice
            .get(format!("{}/api/async/jobs?limit={limit}", h.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "limit={limit}");
        let b: Value = r.json().await.unwrap();
        assert_eq!(
            b["error"],
            format!("limit must be from 1 to 500 (got {limit})"),
            "{b}"
        );
    }
    let bobs: Value = bob
        .get(format!("{}/api/async/jobs", h.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(bobs["jobs"].as_array().unwrap().is_empty());
    let r = bob
        .get(format!("{}/api/async/jobs?all=true", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
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
async fn subscriptions_follow_the_action_permission_and_the_menu_is_filtered() {
    let h = Harness::start().await;
    let app = guarded_app(&h).await;
    role(&h, "sellers", &["sales:access"]).await;
    let dave = user(&h, "dave", &["sellers"]).await;
    let sub = |action: &str| json!({"app_name": app, "action_name": action});
    let (s, b) = post(
        &dave,
        format!("{}/api/notify/subscribe", h.url),
        sub("deal_closed"),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(b["error"].as_str().unwrap().contains("sales:notify"));
    let (s, _) = post(
        &dave,
        format!("{}/api/notify/subscribe", h.url),
        sub("open_event"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = post(
        &dave,
        format!("{}/api/notify/subscribe", h.url),
        sub("no_such_action"),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let list: Value = dave
        .get(format!("{}/api/notify/subscriptions", h.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["subscriptions"].as_array().unwrap().len(), 1);
    let (s, _) = post(
        &dave,
        format!("{}/api/notify/unsubscribe", h.url),
        sub("open_event"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let list: Value = dave
        .get(format!("{}/api/notify/subscriptions", h.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(list["subscriptions"].as_array().unwrap().is_empty());

    let apps: Value = dave
        .get(format!("{}/api/apps", h.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(apps["apps"][0]["app_name"], app.as_str());
    let nav = &apps["nav"][0];
    assert_eq!(nav["label"], "Sales");
    assert!(
        nav["children"].as_array().unwrap().is_empty(),
        "reports:read child hidden: {nav}"
    );
    let eve = user(&h, "eve", &[]).await;
    let apps: Value = eve
        .get(format!("{}/api/apps", h.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(apps["apps"].as_array().unwrap().is_empty());
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_cancelled_by_an_admin_is_announced_to_its_submitter() {
    use futures::StreamExt;
    // No runner: the job stays pending until it is cancelled.
    let h = Harness::start_with(&["--runners", "0"]).await;
    let app = guarded_app(&h).await;
    role(&h, "sellers", &["sales:access"]).await;
    let alice = user(&h, "alice", &["sellers"]).await;
    let me: Value = alice
        .get(format!("{}/api/auth/me", h.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (s, sub) = post(&alice, format!("{}/api/async/{app}", h.url), json!({})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{sub}");
    let id = sub["job_id"].as_str().unwrap();
    let nats = h.nats_client().await;
    let mut events = nats
        .subscribe(format!("job.progress.{app}.{id}"))
        .await
        .unwrap();
    h.nats
        .subscribed(&nats, &format!("job.progress.{app}.{id}"))
        .await;
    let r = h
        .http
        .delete(format!("{}/api/async/jobs/{id}", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let msg = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .unwrap()
        .unwrap();
    let ev: nr_contracts::Envelope<nr_contracts::events::JobProgress> =
        nr_contracts::decode(&msg.payload).unwrap();
    assert_eq!(ev.data.status, nr_contracts::events::JobStatus::Cancelled);
    assert_eq!(
        ev.data.submitted_by.as_deref(),
        me["id"].as_str(),
        "the submitter, not the admin"
    );
}

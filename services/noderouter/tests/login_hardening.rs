//! Sign-in under attack (issue 10): throttling per account and per address, the same
//! time for unknown, disabled and wrong, argon2 off the async threads, and `next`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{post, Harness};
use reqwest::StatusCode;
use serde_json::json;

async fn attempt(h: &Harness, name: &str, password: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/api/auth/login", h.url))
        .json(&json!({"username": name, "password": password}))
        .send()
        .await
        .unwrap()
}

async fn create(h: &Harness, name: &str) -> String {
    let (s, b) = post(
        &h.http,
        format!("{}/admin/api/users", h.url),
        json!({"username": name, "password": "password-123"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    b["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_throttled_per_account_and_per_address_with_growing_delays() {
    let h = Harness::start_with(&[
        "--login-free-failures",
        "3",
        "--login-free-failures-per-addr",
        "6",
    ])
    .await;
    create(&h, "bob").await;
    for _ in 0..3 {
        assert_eq!(
            attempt(&h, "bob", "wrong").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // Even the right password waits now.
    let r = attempt(&h, "bob", "password-123").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(wait, 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // One more failure doubles the delay.
    assert_eq!(
        attempt(&h, "bob", "wrong").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let r = attempt(&h, "bob", "password-123").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "2");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        attempt(&h, "bob", "password-123").await.status(),
        StatusCode::OK
    );

    // The address has 4 failures; two more on other names, and every name waits.
    for name in ["u1", "u2"] {
        assert_eq!(
            attempt(&h, name, "x").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let r = attempt(&h, "someone-else", "x").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "too_many_requests");
}

/// The fastest of several tries: a busy machine only ever adds time, so the minimum is
/// the closest to what the server itself spends.
fn fastest(v: &[Duration]) -> Duration {
    v.iter().copied().min().unwrap_or_default()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn timed(h: &Harness, name: &str, password: &str) -> Duration {
    let t = Instant::now();
    let r = attempt(h, name, password).await;
    let d = t.elapsed();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_disabled_users_answer_in_the_time_of_a_wrong_password() {
    let h = Harness::start_with(&[
        "--login-free-failures",
        "1000",
        "--login-free-failures-per-addr",
        "1000",
    ])
    .await;
    create(&h, "erin").await;
    let id = create(&h, "frank").await;
    let r = h
        .http
        .patch(format!("{}/admin/api/users/{id}", h.url))
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (mut wrong, mut unknown, mut disabled) = (vec![], vec![], vec![]);
    for _ in 0..9 {
        wrong.push(timed(&h, "erin", "not-her-password").await);
        unknown.push(timed(&h, "nobody-by-this-name", "whatever").await);
        // The right password of a disabled user: refused, in the same time.
        disabled.push(timed(&h, "frank", "password-123").await);
    }
    let (w, u, d) = (fastest(&wrong), fastest(&unknown), fastest(&disabled));
    for (what, t) in [("unknown", u), ("disabled", d)] {
        assert!(
            t * 2 >= w && t <= w * 2,
            "{what} took {t:?}, a wrong password {w:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_logins_does_not_stall_other_requests() {
    let h = Harness::start_with(&["--login-free-failures-per-addr", "100000"]).await;
    let storm: Vec<_> = (0..60)
        .map(|i| {
            let url = format!("{}/api/auth/login", h.url);
            tokio::spawn(async move {
                reqwest::Client::new()
                    .post(url)
                    .json(&json!({"username": format!("ghost-{i}"), "password": "x"}))
                    .send()
                    .await
                    .map(|r| r.status())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let client = reqwest::Client::new();
    let mut times = Vec::new();
    for _ in 0..15 {
        let t = Instant::now();
        let r = client
            .get(format!("{}/healthz", h.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        times.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for s in storm {
        assert_eq!(s.await.unwrap().unwrap(), StatusCode::UNAUTHORIZED);
    }
    let m = median(times);
    assert!(
        m < Duration::from_millis(150),
        "median /healthz during the storm: {m:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_page_takes_same_site_paths_only_as_next() {
    let h = Harness::start().await;
    let page = |q: &'static str| {
        let url = format!("{}/login?next={q}", h.url);
        async move {
            let r = reqwest::get(url).await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            r.text().await.unwrap()
        }
    };
    for attack in [
        "/%09/evil.example/phish",
        "//evil.example",
        "/%5Cevil.example",
        "https://evil.example/",
        "/%0A/evil.example",
        // Dot segments a browser resolves down to "//evil.example".
        "/.//evil.example/phish/",
        "/apps/../..//evil.example",
        "/%2e%2e/%2f%2fevil.example",
        "/a/%2E./..//evil.example",
        "/admin//evil.example",
    ] {
        let html = page(attack).await;
        assert!(html.contains(r#"data-next="/admin""#), "{attack}: {html}");
        assert!(!html.contains("evil.example"), "{attack}");
    }
    let html = page("/apps/sales/%3Fx%3D1").await;
    assert!(html.contains(r#"data-next="/apps/sales/?x=1""#), "{html}");
    let html = page("/apps/sales/").await;
    assert!(html.contains(r#"data-next="/apps/sales/""#), "{html}");
    let html = page("/apps/v1.2/report.html").await;
    assert!(
        html.contains(r#"data-next="/apps/v1.2/report.html""#),
        "{html}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_carrying_a_session_or_data_are_never_cached() {
    let h = Harness::start().await;
    create(&h, "gail").await;
    let login = attempt(&h, "gail", "password-123").await;
    assert_eq!(login.status(), StatusCode::OK);
    let no_store = |r: &reqwest::Response| {
        r.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(no_store(&login).as_deref(), Some("no-store"), "login");
    // A session's start and end clear the browser's storage for the origin, service
    // workers included: nothing an earlier session left behind runs in this one.
    let clears = |r: &reqwest::Response| {
        r.headers()
            .get("clear-site-data")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(
        clears(&login).as_deref(),
        Some("\"cache\", \"storage\""),
        "login"
    );
    let token = login.json::<serde_json::Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = common::client_with_token(&token)
        .post(format!("{}/api/auth/logout", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::OK);
    assert_eq!(
        clears(&out).as_deref(),
        Some("\"cache\", \"storage\""),
        "logout"
    );
    // A service worker's script is refused wherever it would come from.
    for path in ["/files/anything", "/apps/hello/sw.js", "/admin", "/"] {
        let r = reqwest::Client::new()
            .get(format!("{}{path}", h.url))
            .header("service-worker", "script")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
    }
    for path in ["/api/auth/me", "/admin/api/apps", "/admin/api/users"] {
        let r = h.http.get(format!("{}{path}", h.url)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(no_store(&r).as_deref(), Some("no-store"), "{path}");
    }
    // Refusals too (they name what exists).
    let r = reqwest::get(format!("{}/admin/api/users", h.url))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(no_store(&r).as_deref(), Some("no-store"));
}

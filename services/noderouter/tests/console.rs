//! The console's own endpoints and pages, attacked through the real gateway, registry,
//! Postgres and NATS (with per-service credentials): the audit trail read from the
//! event log, the dashboard's series, a job's body for "run again", and the pages'
//! access rules. The pages in a browser are `e2e/` (Playwright).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{client_with_token, post, role, Harness};
use nr_testkit::{app_name, manifest};
use reqwest::StatusCode;
use serde_json::{json, Value};

const PASSWORD: &str = "password-123";

async fn user(h: &Harness, name: &str, roles: &[&str]) -> reqwest::Client {
    let (s, b) = post(
        &h.http,
        format!("{}/admin/api/users", h.url),
        json!({"username": name, "password": PASSWORD, "roles": roles}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = post(
        &reqwest::Client::new(),
        format!("{}/api/auth/login", h.url),
        json!({"username": name, "password": PASSWORD}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    client_with_token(b["token"].as_str().unwrap())
}

async fn get(c: &reqwest::Client, url: String) -> (StatusCode, Value) {
    let r = c.get(url).send().await.unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

const QUICK: &str = "def execute(data, conn=None):\n    return {'ok': True}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_trail_reads_the_log_newest_first_without_secrets_and_only_for_audit_read() {
    let h = Harness::start().await;
    let app = app_name("audited");
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
            ("main.py", QUICK),
        ],
    )
    .await;
    role(&h, "auditors", &["audit:read"]).await;
    role(&h, "plain", &[]).await;
    let auditor = user(&h, "auditor", &["auditors"]).await;
    let plain = user(&h, "plain-user", &["plain"]).await;

    // Without the permission: refused, whatever the filter.
    for q in ["", "?kind=access", "?before=a:1000000"] {
        let (s, b) = get(&plain, format!("{}/admin/api/audit{q}", h.url)).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{q}: {b}");
    }
    // The page says so too, as a page.
    let r = plain
        .get(format!("{}/admin/audit", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("audit:read"));

    let (s, b) = get(&auditor, format!("{}/admin/api/audit", h.url)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let entries = b["entries"].as_array().unwrap();
    let text = b.to_string();
    assert!(
        !text.contains("password_hash") && !text.contains("argon2"),
        "{text}"
    );
    assert!(
        !text.contains("secret_hash") && !text.contains("\"manifest\""),
        "{text}"
    );
    // Newest first: the auditor's own creation comes before the deploy.
    let pos = |action: &str, target: &str| {
        entries
            .iter()
            .position(|e| e["action"] == action && e["target"] == target)
            .unwrap_or_else(|| panic!("no {action} {target} in {text}"))
    };
    assert!(pos("user_created", "auditor") < pos("deployed", &app));
    assert!(pos("deployed", &app) < pos("bootstrap", "admin"));

    // Filters: one kind, a text.
    let (_, b) = get(&auditor, format!("{}/admin/api/audit?kind=apps", h.url)).await;
    assert!(b["entries"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["kind"] == "apps"));
    let (_, b) = get(&auditor, format!("{}/admin/api/audit?q=plain-user", h.url)).await;
    let found = b["entries"].as_array().unwrap();
    assert!(
        !found.is_empty() && found.iter().all(|e| e.to_string().contains("plain-user")),
        "{b}"
    );

    // Pages of one entry walk the whole trail once, in order, without repeats.
    let mut seen = Vec::new();
    let mut before = String::new();
    for _ in 0..100 {
        let (s, b) = get(
            &auditor,
            format!("{}/admin/api/audit?limit=1&before={before}", h.url),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        for e in b["entries"].as_array().unwrap() {
            seen.push(format!("{}:{}", e["kind"], e["seq"]));
        }
        match b["next_before"].as_str() {
            Some(n) => before = n.to_owned(),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "{seen:?}");
    assert_eq!(seen.len(), entries.len(), "{seen:?}");

    // A forged cursor is a clear 400.
    let (s, b) = get(&auditor, format!("{}/admin/api/audit?before=x:1", h.url)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(b["error"].as_str().unwrap().contains("before"), "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_series_counts_calls_and_needs_metrics_read() {
    let h = Harness::start().await;
    let app = app_name("charted");
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
            ("main.py", QUICK),
        ],
    )
    .await;
    for _ in 0..3 {
        let (s, b) = h.sync(&app, json!({})).await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    let (s, b) = get(&h.http, format!("{}/admin/api/console/metrics", h.url)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let live = b["points"].as_array().unwrap().last().unwrap().clone();
    assert!(live["apps"][&app]["calls"].as_u64().unwrap() >= 3, "{b}");
    assert_eq!(live["apps"][&app]["errors"], 0, "{b}");
    assert!(live["apps"][&app]["p95_ms"].as_f64().unwrap() > 0.0, "{b}");
    assert!(live["jobs"]["pending"].is_i64(), "{b}");
    assert!(b["runners"]["healthy"].is_boolean(), "{b}");

    role(&h, "nobody", &[]).await;
    let plain = user(&h, "no-metrics", &["nobody"]).await;
    let (s, _) = get(&plain, format!("{}/admin/api/console/metrics", h.url)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_body_is_shown_to_its_submitter_only_and_pages_need_a_session() {
    let h = Harness::start().await;
    let app = app_name("again");
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
            ("main.py", QUICK),
        ],
    )
    .await;
    role(&h, "caller", &[]).await;
    let ann = user(&h, "ann-runs", &["caller"]).await;
    let bob = user(&h, "bob-looks", &["caller"]).await;
    let (s, b) = post(
        &ann,
        format!("{}/api/async/{app}", h.url),
        json!({"region": "north"}),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let id = b["job_id"].as_str().unwrap();
    let url = format!("{}/admin/api/console/jobs/{id}/payload", h.url);
    let (s, b) = get(&ann, url.clone()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["payload"]["region"], "north");
    assert_eq!(b["app_name"], app.as_str());
    // Another user is told it does not exist; an admin (jobs:read_all) sees it.
    let (s, _) = get(&bob, url.clone()).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = get(&h.http, url).await;
    assert_eq!(s, StatusCode::OK);

    // Pages: no session → the login page; a page needing rbac:manage → a 403 page;
    // every page carries a CSP allowing scripts from the origin only.
    let anon = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for path in [
        "/admin/jobs",
        "/admin/users",
        "/admin/run/x",
        "/admin/inbox",
    ] {
        let r = anon.get(format!("{}{path}", h.url)).send().await.unwrap();
        assert!(r.status().is_redirection(), "{path}");
    }
    let r = bob
        .get(format!("{}/admin/users", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = bob
        .get(format!("{}/admin/jobs", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self';"), "{csp}");
    let page = r.text().await.unwrap();
    assert!(
        page.contains("/assets/console/jobs.js") && !page.contains("<script>"),
        "{page}"
    );
    let r = anon
        .get(format!("{}/assets/console/jobs.js", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    let r = anon
        .get(format!("{}/assets/console/..%2Fsecret.js", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

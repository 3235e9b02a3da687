//! Re-queueing a failed job runs the app's code again, so it takes what calling the
//! app takes now: the routes' gates included. A user who lost a route's permission
//! cannot run that route's action again by re-queueing an old job of it, one by one
//! or in bulk; jobs of actions they may still run are re-queued as before. Real
//! Postgres, NATS and Python workers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{client_with_token, post, role, Harness};
use nr_testkit::{app_name, manifest};
use reqwest::StatusCode;
use serde_json::{json, Value};

const MAIN: &str = r#"
def execute(data, conn=None):
    raise RuntimeError("failed on purpose: " + str(data.get("action")))
"#;

fn is_final(j: &Value) -> bool {
    j["status"] == "failed" || j["status"] == "completed"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routes_permission_holds_when_a_job_of_its_action_is_requeued() {
    let h = Harness::start().await;
    let app = app_name("gate");
    let extra = json!({
        "actions": [
            {"name": "gated", "display_name": "Gated"},
            {"name": "open", "display_name": "Open"}
        ],
        "routes": [{"method": "GET", "path": "/gated", "action": "gated", "permission": "gate:secret"}],
        "job_retry": {"attempts": 1}
    });
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", extra)),
            ("main.py", MAIN),
        ],
    )
    .await;
    role(&h, "keepers", &["gate:secret"]).await;
    let (s, b) = post(
        &h.http,
        format!("{}/admin/api/users", h.url),
        json!({"username": "uma", "password": "password-123", "roles": ["keepers"]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let uma_id = b["id"].as_str().unwrap().to_owned();
    let (s, b) = post(
        &reqwest::Client::new(),
        format!("{}/api/auth/login", h.url),
        json!({"username": "uma", "password": "password-123"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let uma = client_with_token(b["token"].as_str().unwrap());

    let mut jobs = Vec::new();
    // The same action spelled as an app that strips and folds `action` reads it.
    for action in ["gated", "gated", "open", "GATED", " gated\n"] {
        let (s, b) = post(
            &uma,
            format!("{}/api/async/{app}", h.url),
            json!({ "action": action }),
        )
        .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{b}");
        let id = b["job_id"].as_str().unwrap().to_owned();
        assert_eq!(h.wait_job(&id, is_final).await["status"], "failed");
        jobs.push(id);
    }

    // Uma loses the route's permission: calling the action is refused...
    let r = h
        .http
        .put(format!("{}/admin/api/users/{uma_id}/roles", h.url))
        .json(&json!({"roles": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (s, b) = post(
        &uma,
        format!("{}/api/sync/{app}", h.url),
        json!({"action": "gated"}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");

    // ...and so is re-queueing her job of it (before: 200, and the action ran again).
    let (s, b) = post(
        &uma,
        format!("{}/api/async/jobs/{}/requeue", h.url, jobs[0]),
        json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert!(b["error"].as_str().unwrap().contains("gate:secret"), "{b}");
    let (s, b) = post(
        &uma,
        format!("{}/api/async/jobs/{}/requeue", h.url, jobs[4]),
        json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    // In bulk, only the job of the action she may still run goes back.
    let (s, b) = post(
        &uma,
        format!("{}/api/async/requeue", h.url),
        json!({ "app_name": app }),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["job_ids"], json!([jobs[2]]), "{b}");
    for id in [&jobs[0], &jobs[1], &jobs[3], &jobs[4]] {
        let job = h.job(id).await;
        assert_eq!(job["status"], "failed", "{job}");
        assert_eq!(job["attempt"], 1, "{job}");
    }
}

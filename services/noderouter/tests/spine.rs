//! The spine end to end: deploy through the gateway, projection by the registry, hot
//! reload in the runner, sync calls through NATS to real Python workers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{guide_starter_main, Harness};
use nr_testkit::{app_name, manifest};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guide_starter_bundle_deploys_and_lists_back_what_it_created() {
    let h = Harness::start().await;
    let app = app_name("starter");
    let report = h
        .deploy_ok(
            &app,
            &[
                (
                    "manifest.json",
                    &manifest(
                        &app,
                        "1.0.0",
                        json!({"display_name": "Starter", "actions": []}),
                    ),
                ),
                ("main.py", &guide_starter_main(&app)),
                ("index.html", "<div class=\"st-root\"></div>"),
            ],
        )
        .await;
    assert_eq!(report["app_name"], app.as_str());
    assert_eq!(report["version"], "1.0.0");
    assert_eq!(report["sha256"].as_str().map(str::len), Some(64));

    let (status, created) = h
        .sync(&app, json!({"action": "create", "name": "first item"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let id = created["id"].as_i64().expect("created id");
    let (status, listed) = h.sync(&app, json!({"action": "list"})).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["rows"], json!([{"id": id, "name": "first item"}]));

    // The module-level migration ran against the platform's database.
    let pool = common::app_tables(&h).await;
    let (count,): (i64,) = sqlx::query_as(&format!("SELECT count(*) FROM {app}_items"))
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployed_apps_are_listed_with_their_current_version() {
    let h = Harness::start().await;
    let app = app_name("listed");
    let main = "def execute(data):\n    return {}\n";
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
            ("main.py", main),
        ],
    )
    .await;
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.1.0", json!({}))),
            ("main.py", main),
        ],
    )
    .await;
    let mut found = None;
    for _ in 0..50 {
        let list: serde_json::Value = h
            .http
            .get(format!("{}/admin/api/apps", h.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        found = list["apps"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["app_name"] == app.as_str()).cloned());
        if found.as_ref().is_some_and(|f| f["version"] == "1.1.0") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(found.expect("app listed")["version"], "1.1.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runners_side_by_side_both_serve_calls() {
    let h = Harness::start_with(&["--runners", "2"]).await;
    let app = app_name("whoami");
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
            ("main.py", "import os\n\ndef execute(data):\n    return {\"runner\": os.environ[\"NR_RUNNER_ID\"]}\n"),
        ],
    )
    .await;
    let mut seen = HashSet::new();
    for _ in 0..60 {
        let (status, body) = h.sync(&app, json!({})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        seen.insert(body["runner"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen.len(), 2, "calls were served by {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redeploy_is_served_as_soon_as_the_deploy_returns() {
    let h = Harness::start().await;
    let app = app_name("reload");
    for n in 1..=4 {
        let version = format!("1.0.{n}");
        h.deploy_ok(
            &app,
            &[
                ("manifest.json", &manifest(&app, &version, json!({}))),
                (
                    "main.py",
                    &format!("def execute(data):\n    return {{\"generation\": {n}}}\n"),
                ),
            ],
        )
        .await;
        let (status, body) = h.sync(&app, json!({})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body["generation"], n,
            "call after deploy {n} hit an old version"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_json_with_the_right_status() {
    let h = Harness::start().await;
    let app = app_name("errs");
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", json!({"timeout_s": 1}))),
            (
                "main.py",
                "import os, time\n\ndef execute(data):\n    a = data.get('action')\n    if a == 'boom':\n        raise ValueError('bad input: 42')\n    if a == 'sleep':\n        time.sleep(5)\n    if a == 'die':\n        os._exit(3)\n    return {'ok': True}\n",
            ),
        ],
    )
    .await;

    let (status, body) = h.sync("no_such_app", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["error"].as_str().unwrap().contains("no_such_app"),
        "{body}"
    );

    let (status, body) = h.sync(&app, json!({"action": "boom"})).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["error"], "ValueError: bad input: 42");

    let (status, body) = h.sync(&app, json!({"action": "sleep"})).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("time limit"),
        "{body}"
    );

    let (status, body) = h.sync(&app, json!({"action": "die"})).await;
    assert!(status.is_server_error(), "{status} {body}");
    assert!(body["error"].as_str().unwrap().contains("died"), "{body}");

    // The pool refilled: the app still answers.
    let (status, body) = h.sync(&app, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let res = h
        .http
        .post(format!("{}/api/sync/{app}", h.url))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["code"], "bad_request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_runner_calls_answer_503() {
    let h = Harness::start_with(&["--runners", "0"]).await;
    let app = app_name("orphan");
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
            ("main.py", "def execute(d):\n    return {}\n"),
        ],
    )
    .await;
    let (status, body) = h.sync(&app, json!({})).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("no runner"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_deploy_leaves_the_previous_version_serving() {
    let h = Harness::start().await;
    let app = app_name("keep");
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
            ("main.py", "def execute(d):\n    return {'v': 1}\n"),
        ],
    )
    .await;
    let (status, body) = h
        .deploy(
            &format!("{app}.zip"),
            nr_testkit::zip_files(&[("manifest.json", &manifest(&app, "2.0.0", json!({})))]),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["details"][0]["rule"], "bundle.main_py");
    assert!(body["error"].as_str().unwrap().contains("main.py"));
    let (status, body) = h.sync(&app, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["v"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics_endpoints_answer() {
    let h = Harness::start().await;
    let anon = reqwest::Client::new();
    let res = anon.get(format!("{}/healthz", h.url)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    let res = anon.get(format!("{}/readyz", h.url)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap()["status"],
        "ready"
    );

    let app = app_name("metered");
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
            ("main.py", "def execute(d):\n    return {}\n"),
        ],
    )
    .await;
    assert_eq!(h.sync(&app, json!({})).await.0, StatusCode::OK);
    // `/metrics` needs a credential holding `metrics:read` (docs/security.md).
    let text = h
        .http
        .get(format!("{}/metrics", h.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(&format!(
            "nr_app_calls_total{{app=\"{app}\",status=\"200\"}}"
        )),
        "{text}"
    );
    assert!(text.contains("nr_http_requests_total{service=\"gateway\",method=\"POST\",route=\"/api/sync/{app}\",status=\"200\"}"), "{text}");
    assert!(
        text.contains("nr_deploys_total{outcome=\"deployed\"}"),
        "{text}"
    );
}

//! The runner's execution contract for calls, against real NATS, Postgres and Python
//! workers: the injected connection, async `execute`, vendored libs, actions published,
//! redeploys under load, module code run once per version, and the memory limit. Jobs are
//! in `runner_jobs.rs` and `runner_failover.rs`, signed and late calls in
//! `runner_requests.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::Harness;
use futures::StreamExt;
use nr_contracts::events::ActionTriggered;
use nr_contracts::{decode, Envelope};
use nr_testkit::{app_name, manifest};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_injected_connection_comes_back_clean_after_every_call() {
    let h = Harness::start_with(&["--pool-size", "1"]).await;
    let app = app_name("hygiene");
    let main = format!(
        r#"
import os, psycopg2
with psycopg2.connect(os.environ["DATABASE_URL"]) as c:
    with c.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS {app}_t (n INT)")
    c.commit()

def execute(data, conn=None):
    a = data.get("action")
    status = conn.get_transaction_status()
    with conn.cursor() as cur:
        if a == "leave_open":
            cur.execute("INSERT INTO {app}_t VALUES (1)")
        elif a == "close":
            conn.close()
            return {{"closed": True}}
        elif a == "fail":
            cur.execute("SELECT 1/0")
        cur.execute("SELECT count(*) FROM {app}_t") if not conn.closed else None
        n = cur.fetchone()[0]
    return {{"status_at_start": status, "rows": n}}
"#
    );
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
            ("main.py", &main),
        ],
    )
    .await;
    let (_, body) = h.sync(&app, json!({"action": "leave_open"})).await;
    assert_eq!(body["rows"], 1, "{body}");
    // The uncommitted insert was rolled back and the next call starts idle (status 0).
    let (_, body) = h.sync(&app, json!({})).await;
    assert_eq!(body, json!({"status_at_start": 0, "rows": 0}));
    // An aborted transaction is cleaned too.
    let (status, _) = h.sync(&app, json!({"action": "fail"})).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let (_, body) = h.sync(&app, json!({})).await;
    assert_eq!(body, json!({"status_at_start": 0, "rows": 0}));
    // A connection the app closed is replaced.
    let (_, body) = h.sync(&app, json!({"action": "close"})).await;
    assert_eq!(body["closed"], true);
    let (status, body) = h.sync(&app, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rows"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_def_execute_is_awaited_and_apps_without_conn_get_none() {
    let h = Harness::start().await;
    let app = app_name("coro");
    let main = "import asyncio\n\nasync def execute(data):\n    await asyncio.sleep(0.01)\n    return {'echo': data.get('x')}\n";
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
            ("main.py", main),
        ],
    )
    .await;
    let (status, body) = h.sync(&app, json!({"x": [1, 2]})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"echo": [1, 2]}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_app_gets_its_own_vendored_libs() {
    let h = Harness::start().await;
    let main = "import sys, os\nsys.path.insert(0, os.path.join(os.path.dirname(__file__), 'libs'))\nimport vendored\n\ndef execute(data):\n    return {'version': vendored.VERSION}\n";
    let a = app_name("liba");
    let b = app_name("libb");
    for (app, version) in [(&a, "1.0"), (&b, "2.0")] {
        let lib = format!("VERSION = '{version}'\n");
        h.deploy_ok(
            app,
            &[
                ("manifest.json", &manifest(app, "1.0.0", json!({}))),
                ("main.py", main),
                ("libs/vendored/__init__.py", &lib),
            ],
        )
        .await;
    }
    assert_eq!(h.sync(&a, json!({})).await.1["version"], "1.0");
    assert_eq!(h.sync(&b, json!({})).await.1["version"], "2.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_are_stripped_from_the_reply_and_published_on_nats() {
    let h = Harness::start().await;
    let app = app_name("acts");
    let main = "def execute(data):\n    return {'ok': 1, '_actions': [{'name': 'done', 'payload': {'x': 1}}, 'plain', {'name': 'undeclared'}, {'payload': 3}]}\n";
    h.deploy_ok(
        &app,
        &[
            (
                "manifest.json",
                &manifest(
                    &app,
                    "1.0.0",
                    json!({"actions": [{"name": "done", "display_name": "Done"}]}),
                ),
            ),
            ("main.py", main),
        ],
    )
    .await;
    let nats = h.nats_client().await;
    let mut sub = nats
        .subscribe(format!("action.triggered.{app}.>"))
        .await
        .unwrap();
    h.nats
        .subscribed(&nats, &format!("action.triggered.{app}.>"))
        .await;
    let (status, body) = h.sync(&app, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"ok": 1}), "_actions must not reach the caller");
    let mut got = Vec::new();
    for _ in 0..2 {
        let msg = tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .unwrap()
            .unwrap();
        let ev: Envelope<ActionTriggered> = decode(&msg.payload).unwrap();
        assert_eq!(ev.kind, "action.triggered");
        got.push((msg.subject.to_string(), ev.data));
    }
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got[0].0, format!("action.triggered.{app}.done"));
    assert_eq!(got[0].1.payload, json!({"x": 1}));
    assert!(got[0].1.declared);
    assert_eq!(got[1].0, format!("action.triggered.{app}.undeclared"));
    assert!(!got[1].1.declared);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), sub.next())
            .await
            .is_err(),
        "strings and nameless entries are ignored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_call_fails_across_five_redeploys_under_load() {
    let h = Arc::new(Harness::start().await);
    let app = app_name("steady");
    let deploy = |n: u32| {
        let h = h.clone();
        let app = app.clone();
        async move {
            h.deploy_ok(
                &app,
                &[
                    ("manifest.json", &manifest(&app, &format!("1.0.{n}"), json!({}))),
                    ("main.py", &format!("import time\ntime.sleep(0.2)\n\ndef execute(data):\n    return {{'v': {n}}}\n")),
                ],
            )
            .await;
        }
    };
    deploy(0).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut loaders = Vec::new();
    for _ in 0..8 {
        let (h, app, stop, ok, failed) = (
            h.clone(),
            app.clone(),
            stop.clone(),
            ok.clone(),
            failed.clone(),
        );
        loaders.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let (status, body) = h.sync(&app, json!({})).await;
                if status == StatusCode::OK {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.lock().unwrap().push((status, body));
                }
            }
        }));
    }
    for n in 1..=5 {
        deploy(n).await;
        assert_eq!(h.sync(&app, json!({})).await.1["v"], n);
    }
    stop.store(true, Ordering::Relaxed);
    for l in loaders {
        l.await.unwrap();
    }
    assert!(
        failed.lock().unwrap().is_empty(),
        "failed calls: {:?}",
        failed.lock().unwrap()
    );
    assert!(
        ok.load(Ordering::Relaxed) > 50,
        "too little load: {}",
        ok.load(Ordering::Relaxed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_code_runs_once_per_version_per_runner_and_never_concurrently() {
    let h = Harness::start_with(&["--runners", "2"]).await;
    let app = app_name("once");
    let main = format!(
        r#"
import os, time, psycopg2
with psycopg2.connect(os.environ["DATABASE_URL"]) as c:
    with c.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS {app}_loads (runner TEXT, started TIMESTAMPTZ, finished TIMESTAMPTZ)")
        cur.execute("INSERT INTO {app}_loads VALUES (%s, clock_timestamp(), NULL)", (os.environ.get("NR_RUNNER_ID", "deploy-check"),))
    c.commit()
    time.sleep(0.3)
    with c.cursor() as cur:
        cur.execute("UPDATE {app}_loads SET finished = clock_timestamp() WHERE runner = %s AND finished IS NULL", (os.environ.get("NR_RUNNER_ID", "deploy-check"),))
    c.commit()

def execute(data):
    return {{}}
"#
    );
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
            ("main.py", &main),
        ],
    )
    .await;
    for _ in 0..20 {
        h.sync(&app, json!({})).await;
    }
    let pool = common::app_tables(&h).await;
    let mut rows: Vec<(String, time::OffsetDateTime, Option<time::OffsetDateTime>)> = Vec::new();
    for _ in 0..50 {
        rows = sqlx::query_as(&format!(
            "SELECT runner, started, finished FROM {app}_loads WHERE runner LIKE 'runner-%' ORDER BY started"
        ))
        .fetch_all(&pool)
        .await
        .unwrap();
        if rows.len() == 2 && rows.iter().all(|r| r.2.is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(rows.len(), 2, "one load per runner: {rows:?}");
    assert_ne!(rows[0].0, rows[1].0);
    assert!(
        rows[0].2.unwrap() <= rows[1].1,
        "module code overlapped across runners: {rows:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_over_its_memory_limit_fails_that_call_only() {
    let h = Harness::start_with(&["--worker-memory-mb", "300"]).await;
    let app = app_name("hog");
    let other = app_name("calm");
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
            ("main.py", "def execute(data):\n    if data.get('hog'):\n        b = bytearray(1024 * 1024 * 1024)\n    return {'ok': True}\n"),
        ],
    )
    .await;
    h.deploy_ok(
        &other,
        &[
            ("manifest.json", &manifest(&other, "1.0.0", json!({}))),
            ("main.py", "def execute(d):\n    return {'ok': True}\n"),
        ],
    )
    .await;
    let (status, body) = h.sync(&app, json!({"hog": true})).await;
    assert!(status.is_server_error(), "{status} {body}");
    assert!(
        body["error"].as_str().unwrap().contains("MemoryError"),
        "{body}"
    );
    assert_eq!(h.sync(&app, json!({})).await.0, StatusCode::OK);
    assert_eq!(h.sync(&other, json!({})).await.0, StatusCode::OK);
}

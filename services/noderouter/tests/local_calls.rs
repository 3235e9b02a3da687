//! Sync calls inside one process: `noderouter up` hands them to its own runner in
//! memory, `NR_BUS_CALLS` sends them over NATS as separate services do, and a caller
//! that goes away never leaves a worker half-way through a call. Real NATS, Postgres
//! and Python workers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::Harness;
use futures::StreamExt as _;
use nr_testkit::{app_name, manifest};
use reqwest::StatusCode;
use serde_json::json;

const MAIN: &str = r#"
import time

def execute(data, conn=None):
    time.sleep(data.get("sleep", 0))
    return {"n": data.get("n"), "fired": True, "_actions": [{"name": "done", "payload": {"n": data.get("n")}}]}
"#;

async fn deploy(h: &Harness) -> String {
    let app = app_name("local");
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
            ("main.py", MAIN),
        ],
    )
    .await;
    app
}

/// Calls `app` `n` times while watching `runner.exec.>` with the operators'
/// credentials; returns how many requests crossed the bus.
async fn calls_on_the_bus(h: &Harness, app: &str, n: i64) -> usize {
    let admin = h.nats_client().await;
    let mut seen = admin.subscribe("runner.exec.>").await.unwrap();
    let mut actions = admin
        .subscribe(format!("action.triggered.{app}.done"))
        .await
        .unwrap();
    h.nats.subscribed(&admin, "runner.exec.>").await;
    h.nats
        .subscribed(&admin, &format!("action.triggered.{app}.done"))
        .await;
    for i in 0..n {
        let (status, body) = h.sync(app, json!({"n": i})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["n"], i, "{body}");
    }
    // The `_actions` of every call are published, whichever way the call went.
    for _ in 0..n {
        tokio::time::timeout(Duration::from_secs(10), actions.next())
            .await
            .expect("the call's action was published")
            .unwrap();
    }
    let mut count = 0;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(300), seen.next()).await {
        count += 1;
    }
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_go_to_the_runner_of_this_process_in_memory_unless_the_bus_is_asked_for() {
    let h = Harness::start().await;
    let app = deploy(&h).await;
    assert_eq!(
        calls_on_the_bus(&h, &app, 5).await,
        0,
        "a call to a runner of the same process crossed the bus"
    );
    drop(h);

    let h = Harness::start_with(&["--bus-calls"]).await;
    let app = deploy(&h).await;
    assert_eq!(
        calls_on_the_bus(&h, &app, 5).await,
        5,
        "with NR_BUS_CALLS every call is a runner request on the bus"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_goes_away_leaves_the_worker_ready_for_the_next_call() {
    // One worker: the next call must wait for the abandoned one, then get its own answer.
    let h = Harness::start_with(&["--pool-size", "1"]).await;
    let app = deploy(&h).await;
    for n in 0..3 {
        let gone = h
            .http
            .post(format!("{}/api/sync/{app}", h.url))
            .timeout(Duration::from_millis(200))
            .json(&json!({"n": 100 + n, "sleep": 0.6}))
            .send()
            .await;
        assert!(gone.is_err(), "the client gave up before the app answered");
        let (status, body) = h.sync(&app, json!({"n": n})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["n"], n, "call {n} got another call's answer: {body}");
    }
}

//! The host survives its apps: huge output lines, results over the bus limit, floods of
//! `_actions`, and a worker that kills its own app host. Real NATS, Postgres and Python
//! workers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::procs::status_kib;
use common::Harness;
use nr_testkit::{app_name, manifest};
use reqwest::StatusCode;
use serde_json::json;

const MAIN: &str = r#"
import os, sys

def execute(data, conn=None):
    a = data.get("action")
    if a == "shout":
        sys.stderr.write("x" * (32 * 1024 * 1024) + "\n")
        sys.stderr.flush()
        return {"shouted": True}
    if a == "flood":
        for i in range(20000):
            sys.stderr.write("line %d\n" % i)
        sys.stderr.flush()
        return {"flooded": True}
    if a == "big":
        return {"blob": "y" * (2 * 1024 * 1024)}
    if a == "fire":
        n = data["n"]
        return {"fired": n, "_actions": [{"name": "a%d" % i, "payload": {"i": i}} for i in range(n)]}
    if a == "kill_host":
        os.kill(os.getppid(), 9)
        return {"killed": True}
    return {"pid": os.getpid(), "host": os.getppid()}
"#;

async fn deploy(h: &Harness) -> String {
    let app = app_name("survivor");
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
            ("main.py", MAIN),
        ],
    )
    .await;
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_output_lines_and_floods_leave_the_platform_serving() {
    let h = Harness::start().await;
    let app = deploy(&h).await;
    let (s, b) = h.sync(&app, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let before = status_kib("VmRSS:");
    for _ in 0..3 {
        let (s, b) = h.sync(&app, json!({"action": "shout"})).await;
        assert_eq!((s, b), (StatusCode::OK, json!({"shouted": true})));
    }
    let (s, b) = h.sync(&app, json!({"action": "flood"})).await;
    assert_eq!((s, b), (StatusCode::OK, json!({"flooded": true})));
    // Let the output reader drain the pipe.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (s, b) = h.sync(&app, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // A figure, not an assertion (see load-tests/ for measurements).
    println!(
        "platform RSS after 3 x 32 MB lines and 20,000 lines: {} KiB -> {} KiB",
        before,
        status_kib("VmRSS:")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_over_the_bus_limit_answers_413_at_once() {
    let h = Harness::start().await;
    let app = deploy(&h).await;
    let (s, b) = h.sync(&app, json!({"action": "big"})).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{b}");
    assert_eq!(b["code"], "payload_too_large", "{b}");
    let msg = b["error"].as_str().unwrap_or("");
    assert!(msg.contains("over the message limit"), "{b}");
    assert!(msg.contains(&app), "{b}");
    // The worker is fine: the next call is served.
    let (s, b) = h.sync(&app, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

/// Every action is kept for seven days on storage all streams share: a call publishes the
/// first 100 it fires and drops the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_publishes_at_most_a_hundred_actions() {
    use futures::StreamExt as _;
    let h = Harness::start().await;
    let app = deploy(&h).await;
    let nats = h.nats_client().await;
    let subject = format!("action.triggered.{app}.>");
    let mut sub = nats.subscribe(subject.clone()).await.unwrap();
    h.nats.subscribed(&nats, &subject).await;
    let (s, b) = h.sync(&app, json!({"action": "fire", "n": 250})).await;
    assert_eq!((s, b), (StatusCode::OK, json!({"fired": 250})));
    let mut got = Vec::new();
    while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_secs(2), sub.next()).await {
        got.push(msg.subject.to_string());
    }
    assert_eq!(got.len(), 100, "{} actions published", got.len());
    assert_eq!(got[0], format!("action.triggered.{app}.a0"));
    assert_eq!(got[99], format!("action.triggered.{app}.a99"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_kills_its_host_does_not_take_the_app_down() {
    let h = Harness::start_with(&["--pool-size", "1"]).await;
    let app = deploy(&h).await;
    let (s, first) = h.sync(&app, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{first}");
    let mut host = first["host"].clone();
    let mut worker = first["pid"].as_i64().unwrap_or(0);
    for round in 0..2 {
        let (s, b) = h.sync(&app, json!({"action": "kill_host"})).await;
        // The call itself may or may not complete: its host is gone.
        println!("round {round}: the killing call answered {s}: {b}");
        // Bounded recovery: the runner loads the app again on the next call.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut last = (StatusCode::OK, json!(null));
        loop {
            let (s, b) = h.sync(&app, json!({})).await;
            // Until the runner has seen its host die, the orphaned worker may still
            // answer a call or two (it is alive; its host is not): recovery means a new
            // host serves within the deadline.
            if s == StatusCode::OK && b["host"] != host {
                host = b["host"].clone();
                // The dead host's worker, an orphan now, is killed with it: it must not
                // outlive its host (nor serve another call).
                let orphan = worker;
                worker = b["pid"].as_i64().unwrap_or(0);
                let gone = Instant::now() + Duration::from_secs(10);
                while alive(orphan) {
                    assert!(
                        Instant::now() < gone,
                        "round {round}: the dead host's worker {orphan} is still running"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                break;
            }
            last = (s, b);
            assert!(
                Instant::now() < deadline,
                "round {round}: no new host within the deadline: {last:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for _ in 0..3 {
            let (s, b) = h.sync(&app, json!({})).await;
            assert_eq!(s, StatusCode::OK, "round {round}: {b} (before: {last:?})");
        }
    }
}

/// A job writing its progress the guide's way, in a loop, flipping between two values,
/// then settling on 77.
const PROGRESS_LOOP: &str = r#"
import time

def execute(data, conn=None):
    end, n = time.time() + 1.5, 0
    while time.time() < end:
        with conn.cursor() as cur:
            cur.execute(
                "UPDATE noderouter_core.job_queue SET progress = %s, updated_at = NOW() WHERE id = %s",
                (1 + n % 2, data["_job_id"]),
            )
        conn.commit()
        n += 1
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE noderouter_core.job_queue SET progress = 77, updated_at = NOW() WHERE id = %s",
            (data["_job_id"],),
        )
    conn.commit()
    time.sleep(0.5)
    return {"updates": n}
"#;

/// Each progress event is kept a day: a job writing its progress in a loop sends ten
/// events at once, then five a second, and the last value it wrote is among them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_writing_progress_in_a_loop_sends_a_few_events_a_second() {
    use futures::StreamExt as _;
    use nr_contracts::events::{JobProgress, JobStatus};
    let h = Harness::start().await;
    let app = app_name("busy");
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
            ("main.py", PROGRESS_LOOP),
        ],
    )
    .await;
    let nats = h.nats_client().await;
    let subject = format!("job.progress.{app}.>");
    let mut sub = nats.subscribe(subject.clone()).await.unwrap();
    h.nats.subscribed(&nats, &subject).await;
    let (s, b) = h.submit(&app, json!({})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let job = h
        .wait_job(b["job_id"].as_str().unwrap(), |j| {
            j["status"] == "completed"
        })
        .await;
    assert_eq!(job["status"], "completed", "{job}");
    let updates = job["result"]["updates"].as_u64().unwrap();
    let mut running = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(1), sub.next()).await {
        let ev: nr_contracts::Envelope<JobProgress> = nr_contracts::decode(&m.payload).unwrap();
        if ev.data.status == JobStatus::Running {
            running.push(ev.data.progress);
        }
    }
    assert!(updates > 100, "the loop wrote {updates} times only");
    // The first ten at once, then five a second for the job's 2 s, and its start.
    assert!(
        running.len() <= 22,
        "{} progress events for {updates} writes, ending {:?}",
        running.len(),
        &running[running.len().saturating_sub(5)..]
    );
    assert_eq!(running.last(), Some(&77), "{running:?}");
}

/// Whether `pid` is a live process (not gone, not a zombie).
fn alive(pid: i64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

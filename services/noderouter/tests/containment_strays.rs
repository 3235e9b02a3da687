//! Processes a call or a job starts do not outlive it, even when the app switches off
//! the worker's own cleanup (Python in the app's process): the runner's sweep kills what
//! an idle worker still runs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::procs::alive;
use common::Harness;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Turns off the worker's cleanup, then leaves a child in a session of its own that
/// spins (a core for as long as it lives).
const ESCAPER: &str = r#"
import subprocess, sys
import nr_contain

nr_contain.kill_descendants = lambda *a, **k: None

def execute(data, conn=None):
    p = subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
    return {"pid": p.pid}
"#;

async fn gone_within(pid: u64, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

fn pid_of(v: &Value) -> u64 {
    v["pid"].as_u64().unwrap_or_else(|| panic!("no pid in {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_outlive_no_call_even_with_the_workers_cleanup_switched_off() {
    let h = Harness::start().await;
    h.deploy_ok(
        "escaper",
        &[
            (
                "manifest.json",
                r#"{"app_name":"escaper","version":"1.0.0","api_version":"1.0.0"}"#,
            ),
            ("main.py", ESCAPER),
        ],
    )
    .await;

    let (s, b) = h.sync("escaper", json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let pid = pid_of(&b);
    assert!(
        gone_within(pid, Duration::from_secs(4)).await,
        "the call's child {pid} still runs 4 s after the call"
    );

    let (s, b) = h.submit("escaper", json!({})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let job = h
        .wait_job(b["job_id"].as_str().unwrap(), |j| {
            j["status"] == "completed"
        })
        .await;
    let pid = pid_of(&job["result"]);
    assert!(
        gone_within(pid, Duration::from_secs(4)).await,
        "the job's child {pid} still runs 4 s after the job"
    );

    // The app still serves.
    let (s, b) = h.sync("escaper", json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

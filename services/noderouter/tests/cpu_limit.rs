//! The CPU-time limit per call, job and import (`NR_APP_CPU_S`, `limits.cpu_s`): code
//! that passes it fails with an error naming the limit and where it was, and its worker
//! is replaced; code that never returns to Python is stopped all the same; a call
//! stopped while it prints leaves nothing between the runner and the next call.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::Harness;
use reqwest::StatusCode;
use serde_json::json;

const SPIN: &str = r#"
import hashlib, os, time

def spin(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass

def execute(data, conn=None):
    if data.get("c_loop"):
        # One call into C that runs for minutes and never returns to Python.
        hashlib.pbkdf2_hmac("sha256", b"x", b"y", 2**31 - 1)
    if data.get("chatty"):
        # Output frames, back to back, until the limit strikes (inside one, mostly).
        while True:
            print("x" * 4000)
    if "echo" in data:
        return {"echo": data["echo"]}
    try:
        spin(float(data["cpu_s"]))
    except Exception:
        return {"swallowed": True}  # an app's own `except Exception` does not hide it
    return {"pid": os.getpid()}
"#;

fn manifest(app: &str) -> String {
    format!(r#"{{"app_name":"{app}","version":"1.0.0","api_version":"1.0.0"}}"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_time_is_limited_per_call_not_over_a_workers_life() {
    let h = Harness::start_with(&["--app-cpu-s", "1", "--pool-size", "1"]).await;
    h.deploy_ok(
        "spinner",
        &[("manifest.json", &manifest("spinner")), ("main.py", SPIN)],
    )
    .await;
    // Three calls of 0.6 s CPU on one worker: 1.8 s in all, each within its budget.
    let mut pids = Vec::new();
    for _ in 0..3 {
        let (s, b) = h.sync("spinner", json!({"cpu_s": 0.6})).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        pids.push(b["pid"].as_u64().unwrap());
    }
    assert!(pids.windows(2).all(|w| w[0] == w[1]), "{pids:?}");
    // A call that spins past the budget is stopped with an error that names the limit,
    // not left to burn, and the same worker serves the next call.
    let started = Instant::now();
    let (s, b) = h.sync("spinner", json!({"cpu_s": 10})).await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{b}");
    let error = b["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("CpuTimeLimitExceeded: the call used its CPU time limit of 1 s")
            && error.contains("limits.cpu_s"),
        "{b}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    // Stopped at an arbitrary point, the worker is not used again.
    let (s, b) = h.sync("spinner", json!({"cpu_s": 0.1})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_ne!(b["pid"].as_u64(), Some(pids[0]), "the worker served on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_past_its_cpu_limit_fails_once_naming_it() {
    let h = Harness::start_with(&["--app-cpu-s", "1"]).await;
    h.deploy_ok(
        "spinjob",
        &[("manifest.json", &manifest("spinjob")), ("main.py", SPIN)],
    )
    .await;
    let (s, b) = h.submit("spinjob", json!({"cpu_s": 10})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let id = b["job_id"].as_str().unwrap().to_owned();
    let job = h
        .wait_job(&id, |j| {
            matches!(j["status"].as_str(), Some("failed" | "completed"))
        })
        .await;
    assert_eq!(job["status"], "failed", "{job}");
    // An exception of the app's, not a lost worker: no second attempt.
    assert_eq!(job["attempt"], 1, "{job}");
    let error = job["error_message"].as_str().unwrap_or_default();
    assert!(
        error.contains("CpuTimeLimitExceeded: the job used its CPU time limit of 1 s"),
        "{job}"
    );
    let logs = h.get_json(&format!("/api/async/jobs/{id}/logs")).await;
    assert!(
        logs.to_string().contains("in spin"),
        "the traceback shows where the job was: {logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_that_never_returns_to_python_is_stopped_at_the_cpu_limit() {
    let h = Harness::start_with(&["--app-cpu-s", "1", "--pool-size", "1"]).await;
    // A time limit far away, so only the CPU limit can stop the call.
    let long = r#"{"app_name":"cloop","version":"1.0.0","api_version":"1.0.0","timeout_s":300}"#;
    h.deploy_ok("cloop", &[("manifest.json", long), ("main.py", SPIN)])
        .await;
    let started = Instant::now();
    let (s, b) = h.sync("cloop", json!({"c_loop": true, "cpu_s": 0})).await;
    let took = started.elapsed();
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{b}");
    let error = b["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("CpuTimeLimitExceeded: the call went on past its CPU time limit"),
        "{b}"
    );
    // 1 s of budget, 5 s of grace, a check every 2 s: under 10 s on an idle machine.
    assert!(took < Duration::from_secs(60), "{took:?}");
    let (s, b) = h.sync("cloop", json!({"cpu_s": 0.1})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_past_the_cpu_limit_is_refused_naming_it() {
    let h = Harness::start_with(&["--app-cpu-s", "1"]).await;
    let main = format!("{SPIN}\nspin(5)\n");
    let (s, b) = h
        .deploy(
            "heavy.zip",
            nr_testkit::zip_files(&[("manifest.json", &manifest("heavy")), ("main.py", &main)]),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(
        b["error"]
            .as_str()
            .unwrap_or_default()
            .contains("CpuTimeLimitExceeded: the import of main.py used its CPU time limit of 1 s"),
        "{b}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_stopped_while_printing_leaves_later_calls_their_own_answers() {
    let h = Harness::start_with(&["--app-cpu-s", "1", "--pool-size", "1"]).await;
    h.deploy_ok(
        "chatty",
        &[("manifest.json", &manifest("chatty")), ("main.py", SPIN)],
    )
    .await;
    for round in 0..3 {
        let (s, b) = h.sync("chatty", json!({"chatty": true})).await;
        assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "round {round}: {b}");
        assert!(
            b["error"]
                .as_str()
                .unwrap_or_default()
                .starts_with("CpuTimeLimitExceeded: the call used its CPU time limit"),
            "round {round}: {b}"
        );
        // Each next call gets its own answer: nothing of the cut call is left between
        // the runner and a worker.
        for n in 0..3 {
            let (s, b) = h.sync("chatty", json!({"echo": n})).await;
            assert_eq!(
                (s, b["echo"].as_u64()),
                (StatusCode::OK, Some(n)),
                "round {round}: {b}"
            );
        }
    }
}

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

/// Module code forks children that end at once; a call leaves a child that makes
/// itself non-dumpable (the files under its `/proc/<pid>` then show root as owner), in
/// a session of its own, with the worker's cleanup switched off; and reports whether a
/// set-user-ID program would gain privileges, in the worker and in a child.
const SLIPPERY: &str = r#"
import os, subprocess, sys
import nr_contain

for _ in range(50):
    if os.fork() == 0:
        os._exit(0)

nr_contain.kill_descendants = lambda *a, **k: None

HIDE = "import ctypes, time; ctypes.CDLL(None).prctl(4, 0, 0, 0, 0); time.sleep(600)"

def execute(data, conn=None):
    p = subprocess.Popen([sys.executable, "-c", HIDE], start_new_session=True)
    child = subprocess.run(["grep", "NoNewPrivs", "/proc/self/status"], capture_output=True, text=True)
    mine = [l for l in open("/proc/self/status") if l.startswith("NoNewPrivs")]
    return {"pid": p.pid, "host": os.getppid(), "privs": [mine[0].split()[1], child.stdout.split()[1]]}
"#;

/// Ended children of `pid` (zombies), read from /proc.
fn zombies_of(pid: u64) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            let rest = &stat[stat.rfind(')').unwrap() + 1..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            f[0] == "Z" && f[1] == pid.to_string()
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_dumpable_stray_is_killed_ended_children_are_reaped_and_setuid_gains_nothing() {
    let h = Harness::start().await;
    h.deploy_ok(
        "slippery",
        &[
            (
                "manifest.json",
                r#"{"app_name":"slippery","version":"1.0.0","api_version":"1.0.0"}"#,
            ),
            ("main.py", SLIPPERY),
        ],
    )
    .await;
    let (s, b) = h.sync("slippery", json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // No set-user-ID program run by the app (or by anything it starts) gains root
    // (before: a setuid-root helper ran as root, and the sweep, which judged processes
    // by the owner of /proc/<pid>, root's for it, never killed it).
    assert_eq!(b["privs"], json!(["1", "1"]), "{b}");
    // A child that hides its /proc files from the app's own user is still the app's.
    let pid = pid_of(&b);
    assert!(
        gone_within(pid, Duration::from_secs(4)).await,
        "the non-dumpable child {pid} still runs 4 s after the call"
    );
    // Before: the fifty children module code forked stayed zombies under the host, and
    // the runner walked every one of them every second.
    let host = b["host"].as_u64().unwrap();
    assert_eq!(zombies_of(host), 0, "zombies left under the host {host}");
}

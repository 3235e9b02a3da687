//! Hostile apps against the process limits and against the sweep of what module-level
//! code leaves running: a fork bomb stops at the per-uid process limit, a huge file at
//! the file-size limit, and a daemon started at import (by deploy's import check or by
//! the runner's host) does not survive.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::Harness;
use reqwest::StatusCode;
use serde_json::json;

const GREEDY: &str = r#"
import os, time

def execute(data, conn=None):
    forked = 0
    error = None
    try:
        for _ in range(400):
            if os.fork() == 0:
                time.sleep(60)
                os._exit(0)
            forked += 1
    except OSError as exc:
        error = type(exc).__name__
    big = None
    try:
        with open(os.path.join(os.environ["TMPDIR"], "big"), "wb") as fh:
            fh.write(b"x" * (3 * 1024 * 1024))
        big = "written"
    except OSError as exc:
        big = "%s: %s" % (type(exc).__name__, exc)
    return {"forked": forked, "fork_error": error, "big": big}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_bomb_and_a_huge_file_stop_at_the_apps_limits() {
    let h = Harness::start_with(&["--app-max-procs", "40", "--app-max-file-mb", "1"]).await;
    h.deploy_ok(
        "greedy",
        &[
            (
                "manifest.json",
                r#"{"app_name":"greedy","version":"1.0.0","api_version":"1.0.0"}"#,
            ),
            ("main.py", GREEDY),
        ],
    )
    .await;
    let (s, b) = h.sync("greedy", json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let forked = b["forked"].as_u64().unwrap();
    assert!(forked < 40, "forked {forked} processes past the limit: {b}");
    assert_eq!(b["fork_error"], "BlockingIOError", "{b}");
    assert!(b["big"].as_str().unwrap().contains("File too large"), "{b}");
    // The children went with the call, so the next call has its whole budget again.
    let (s, b2) = h.sync("greedy", json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b2}");
    assert!(
        b2["forked"].as_u64().unwrap() + 5 >= forked,
        "{b} then {b2}"
    );
}

/// Module-level code that starts a `setsid` daemon at import and records its pid in
/// the app's own table, with where it ran (deploy's import check or the runner's host).
const DAEMON_AT_IMPORT: &str = r#"
import os, time, psycopg2

def _daemon():
    r, w = os.pipe()
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.write(w, str(os.getpid()).encode())
            time.sleep(300)
            os._exit(0)
        os._exit(0)
    os.close(w)
    pid = int(os.read(r, 32))
    os.waitpid(-1, 0)
    return pid

_where = "check" if os.environ.get("NR_DEPLOY_CHECK") else "host"
with psycopg2.connect(os.environ["DATABASE_URL"]) as _c:
    with _c.cursor() as _cur:
        _cur.execute("CREATE TABLE IF NOT EXISTS lurker_pids (pid INT, at TEXT)")
        _cur.execute("INSERT INTO lurker_pids VALUES (%s, %s)", (_daemon(), _where))
    _c.commit()

def execute(data, conn=None):
    return {"ok": True}
"#;

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s[s.rfind(')').unwrap() + 1..]
                .split_whitespace()
                .next()
                .unwrap()
                .to_owned();
            state != "Z" && state != "X"
        })
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemons_started_by_module_code_do_not_survive() {
    let h = Harness::start().await;
    h.deploy_ok(
        "lurker",
        &[
            (
                "manifest.json",
                r#"{"app_name":"lurker","version":"1.0.0","api_version":"1.0.0"}"#,
            ),
            ("main.py", DAEMON_AT_IMPORT),
        ],
    )
    .await;
    let (s, b) = h.sync("lurker", json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let pool = common::app_tables(&h).await;
    let rows: Vec<(i32, String)> = sqlx::query_as("SELECT pid, at FROM lurker_pids")
        .fetch_all(&pool)
        .await
        .unwrap();
    let at: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    assert!(at.contains(&"check") && at.contains(&"host"), "{rows:?}");
    // The import check's daemon is gone once deploy answered; the host's within the
    // runner's next sweeps.
    let check = rows.iter().find(|r| r.1 == "check").unwrap().0;
    assert!(
        !alive(check),
        "the import check's daemon {check} survived the deploy"
    );
    let host = rows.iter().find(|r| r.1 == "host").unwrap().0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(host) {
        assert!(
            Instant::now() < deadline,
            "the daemon {host} started at import survived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The app still serves.
    let (s, b) = h.sync("lurker", json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

/// Tries to lift its memory limit before any call: at import it replaces the host's
/// limit function and raises its own limits; then each call allocates `mb` MiB and
/// writes a file of `file_mb` MiB.
const HUNGRY: &str = r#"
import os, resource
import __main__

# Hostile: the functions the host would call to limit workers are replaced...
__main__._limit_memory = lambda: None
# ...and the process's own limits raised as far as the kernel lets it.
for res in (resource.RLIMIT_AS, resource.RLIMIT_FSIZE):
    try:
        resource.setrlimit(res, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    except (ValueError, OSError):
        pass

def execute(data, conn=None):
    out = {"as_limit": resource.getrlimit(resource.RLIMIT_AS)[1]}
    try:
        block = bytearray(int(data["mb"]) * 1024 * 1024)
        out["alloc"] = len(block) // (1024 * 1024)
        del block
    except MemoryError:
        out["alloc"] = "MemoryError"
    try:
        with open(os.path.join(os.environ["TMPDIR"], "big"), "wb") as fh:
            fh.write(b"x" * (int(data["file_mb"]) * 1024 * 1024))
        out["file"] = "written"
    except OSError as exc:
        out["file"] = type(exc).__name__
    return out
"#;

fn limited_manifest(app: &str, version: &str, limits: serde_json::Value) -> String {
    json!({"app_name": app, "version": version, "api_version": "1.0.0", "limits": limits})
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apps_manifest_lowers_its_own_limits_which_it_cannot_lift_and_no_other_apps() {
    let h = Harness::start_with(&["--worker-memory-mb", "1024"]).await;
    let tight = json!({"memory_mb": 256, "max_file_mb": 1});
    h.deploy_ok(
        "tight",
        &[
            ("manifest.json", &limited_manifest("tight", "1.0.0", tight)),
            ("main.py", HUNGRY),
        ],
    )
    .await;
    h.deploy_ok(
        "roomy",
        &[
            (
                "manifest.json",
                &limited_manifest("roomy", "1.0.0", json!({})),
            ),
            ("main.py", HUNGRY),
        ],
    )
    .await;
    let ask = json!({"mb": 400, "file_mb": 2});
    let (s, b) = h.sync("tight", ask.clone()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["as_limit"], 256 * 1024 * 1024, "{b}");
    assert_eq!(b["alloc"], "MemoryError", "{b}");
    assert!(b["file"].as_str().unwrap().contains("Error"), "{b}");
    // Its job workers run under the same limits.
    let (s, sub) = h.submit("tight", ask.clone()).await;
    assert!(s.is_success(), "{sub}");
    let job = h
        .wait_job(sub["job_id"].as_str().unwrap(), |j| {
            matches!(j["status"].as_str(), Some("completed" | "failed"))
        })
        .await;
    assert_eq!(job["result"]["alloc"], "MemoryError", "{job}");
    // The other app keeps the platform's limits, though its code tried the same.
    let (s, b) = h.sync("roomy", ask).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["as_limit"], 1024 * 1024 * 1024, "{b}");
    assert_eq!(b["alloc"], 400, "{b}");
    assert_eq!(b["file"], "written", "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_asking_more_than_the_platforms_limits_is_refused_naming_the_setting() {
    let h = Harness::start_with(&["--app-cpu-s", "60"]).await;
    h.deploy_ok(
        "modest",
        &[
            (
                "manifest.json",
                &limited_manifest("modest", "1.0.0", json!({})),
            ),
            (
                "main.py",
                "def execute(data, conn=None):\n    return {'v': 1}\n",
            ),
        ],
    )
    .await;
    let (s, b) = h
        .deploy(
            "modest.zip",
            nr_testkit::zip_files(&[
                (
                    "manifest.json",
                    &limited_manifest("modest", "1.1.0", json!({"cpu_s": 120})),
                ),
                (
                    "main.py",
                    "def execute(data, conn=None):\n    return {'v': 2}\n",
                ),
            ]),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let text = b.to_string();
    assert!(text.contains("manifest.limits"), "{b}");
    assert!(text.contains("limits.cpu_s is 120"), "{b}");
    assert!(text.contains("60 (NR_APP_CPU_S)"), "{b}");
    // The version deployed before keeps serving.
    let (s, b) = h.sync("modest", json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["v"], 1, "{b}");
}

/// Burns CPU outside its calls: a thread started at import (in the host) with
/// `SPIN_AT_IMPORT`, or one a call leaves running (in the worker).
const SPIN_OUTSIDE_CALLS: &str = r#"
import os, threading

def _spin():
    while True:
        pass

if SPIN_AT_IMPORT:
    threading.Thread(target=_spin, daemon=True).start()

def execute(data, conn=None):
    if data.get("spin"):
        threading.Thread(target=_spin, daemon=True).start()
    return {"pid": os.getpid(), "host": os.getppid()}
"#;

async fn gone_within(pid: u64, limit: Duration) -> bool {
    let pid = i32::try_from(pid).unwrap();
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if !alive(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    !alive(pid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_burning_cpu_outside_calls_are_stopped_in_the_host_and_in_idle_workers() {
    let h = Harness::start().await;
    let deploy = |app: &'static str, at_import: bool| {
        let main = SPIN_OUTSIDE_CALLS.replace(
            "SPIN_AT_IMPORT",
            if at_import {
                "os.environ.get('NR_DEPLOY_CHECK') != '1'"
            } else {
                "False"
            },
        );
        let manifest = format!(r#"{{"app_name":"{app}","version":"1.0.0","api_version":"1.0.0"}}"#);
        (app, manifest, main)
    };
    // A call leaves a spinning thread in its worker: the idle worker is killed, and the
    // next call is served by another.
    let (app, manifest, main) = deploy("leaver", false);
    h.deploy_ok(app, &[("manifest.json", &manifest), ("main.py", &main)])
        .await;
    let (s, b) = h.sync(app, json!({"spin": true})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let worker = b["pid"].as_u64().unwrap();
    assert!(
        gone_within(worker, Duration::from_secs(10)).await,
        "the worker left spinning after its call still runs"
    );
    let (s, b) = h.sync(app, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_ne!(b["pid"].as_u64().unwrap(), worker);
    // A thread started at import spins in the app's host: the host is killed.
    let (app, manifest, main) = deploy("importspinner", true);
    h.deploy_ok(app, &[("manifest.json", &manifest), ("main.py", &main)])
        .await;
    let (s, b) = h.sync(app, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let host = b["host"].as_u64().unwrap();
    assert!(
        gone_within(host, Duration::from_secs(15)).await,
        "the host spinning since its import still runs"
    );
}

/// Opens connections to the runner's worker socket (the host's third argument) for
/// `hold_s` seconds without ever saying hello, holding every one, with the file limit
/// raised as far as the app may.
const FLOOD: &str = r#"
import resource, socket, sys, time

def execute(data, conn=None):
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    held, refused = [], 0
    end = time.time() + data["hold_s"]
    while time.time() < end:
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        except OSError:
            time.sleep(0.05)
            continue
        try:
            s.connect(sys.argv[3])
            held.append(s)
        except OSError:
            s.close()
            refused += 1
            time.sleep(0.01)
    for s in held:
        s.close()
    return {"held": len(held), "refused": refused}
"#;

/// The platform (this test's process) runs with 1024 files, soft and hard; an app
/// that opens connection after connection to the runner's worker socket used to hold
/// every one of them, and the gateway then could not take a request, nor the runner a
/// worker, until the flood stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_flooding_the_worker_socket_does_not_take_the_platforms_files() {
    const TEST: &str = "an_app_flooding_the_worker_socket_does_not_take_the_platforms_files";
    if common::rerun_inner(TEST, "ulimit -n 1024 &&", &[]) {
        return;
    }
    let h = Harness::start().await;
    let manifest = |app: &str| {
        format!(r#"{{"app_name":"{app}","version":"1.0.0","api_version":"1.0.0","timeout_s":60}}"#)
    };
    h.deploy_ok(
        "flood",
        &[("manifest.json", &manifest("flood")), ("main.py", FLOOD)],
    )
    .await;
    h.deploy_ok(
        "calm",
        &[
            ("manifest.json", &manifest("calm")),
            (
                "main.py",
                "def execute(data, conn=None):\n    return {'calm': data}\n",
            ),
        ],
    )
    .await;
    let (s, b) = h.sync("calm", json!({"n": 1})).await;
    assert_eq!(s, StatusCode::OK, "{b}");

    let url = h.url.clone();
    let http = h.http.clone();
    let flood = tokio::spawn(async move {
        let res = http
            .post(format!("{url}/api/sync/flood"))
            .json(&json!({"hold_s": 8}))
            .send()
            .await
            .unwrap();
        (res.status(), res.json::<serde_json::Value>().await.unwrap())
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !flood.is_finished(),
        "the flood ended early: {:?}",
        flood.await
    );
    // A new client: its request needs a connection of its own to the gateway. It must
    // be answered while the flood still holds what it took (until 8 s).
    let fresh = common::client_with_token(h.platform.as_ref().unwrap().admin_token());
    let res = fresh
        .post(format!("{}/api/sync/calm", h.url))
        .json(&json!({"n": 2}))
        .timeout(Duration::from_secs(4))
        .send()
        .await
        .expect("another app's call during the flood");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap(),
        json!({"calm": {"n": 2}})
    );
    let (s, b) = flood.await.unwrap();
    assert_eq!(s, StatusCode::OK, "{b}");
    // Enough to fill the platform's 1024 files, had the runner kept them all.
    assert!(
        b["held"].as_u64().unwrap() > 900,
        "the flood did not run: {b}"
    );
}

//! Hostile apps against the process boundary: each test deploys an app that attacks the
//! platform as a mini-app author could, and asserts the attack fails. The platform runs
//! as root here (as in the issue's report) and drops each app to a uid of its own.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::procs::alive;
use common::Harness;
use reqwest::StatusCode;
use serde_json::{json, Value};

const SECRET: &str = "jwt-secret-that-must-never-reach-an-app-0123456789";

const MANIFEST: &str = r#"{"app_name":"APP","version":"1.0.0","api_version":"1.0.0"}"#;

fn manifest(app: &str) -> String {
    MANIFEST.replace("APP", app)
}

/// The platform is this test process: its `/proc/<pid>/environ` is what it was started
/// with. The test therefore runs itself again with a known secret in that environment
/// and does the work there.
fn rerun_with_secret(test: &str) -> bool {
    common::rerun_inner(
        test,
        "",
        &[("NR_JWT_SECRET", SECRET), ("NR_ADMIN_PASSWORD", SECRET)],
    )
}

const SNOOP: &str = r#"
import os, signal

def execute(data, conn=None):
    out = {"uid": os.getuid(), "gid": os.getgid(), "env": dict(os.environ)}
    with open("/proc/self/status") as fh:
        out["groups"] = [l for l in fh.read().splitlines() if l.startswith("Groups:")][0]
    pid = int(data["pid"])
    try:
        with open("/proc/%d/environ" % pid, "rb") as fh:
            out["environ"] = fh.read().decode("utf-8", "replace")
    except OSError as exc:
        out["environ_error"] = type(exc).__name__
    try:
        os.kill(pid, 0)
        out["signal"] = "delivered"
    except OSError as exc:
        out["signal"] = type(exc).__name__
    try:
        with open("/proc/1/environ", "rb") as fh:
            out["init_environ"] = len(fh.read())
    except OSError as exc:
        out["init_environ_error"] = type(exc).__name__
    return out
"#;

#[test]
fn an_app_cannot_read_the_platforms_environment_or_signal_it() {
    if rerun_with_secret("an_app_cannot_read_the_platforms_environment_or_signal_it") {
        return;
    }
    assert_eq!(std::env::var("NR_JWT_SECRET").unwrap(), SECRET);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let h = Harness::start().await;
        h.deploy_ok(
            "snoop",
            &[("manifest.json", &manifest("snoop")), ("main.py", SNOOP)],
        )
        .await;
        let (s, b) = h.sync("snoop", json!({"pid": std::process::id()})).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let text = b.to_string();
        assert!(
            !text.contains(SECRET),
            "a platform secret reached the app: {b}"
        );
        assert!(
            !text.contains(&h.nats.url),
            "the NATS URL reached the app: {b}"
        );

        // Its own uid, no supplementary groups (root's dropped by std's setgroups(0)).
        let uid = b["uid"].as_u64().unwrap();
        assert!(uid >= 1_000_000, "the app runs as uid {uid}");
        assert_eq!(b["gid"].as_u64(), Some(uid));
        assert_eq!(b["groups"].as_str().unwrap().trim(), "Groups:", "{b}");

        // The environment is the allow-list.
        let env = b["env"].as_object().unwrap();
        let allowed = [
            "PATH",
            "LANG",
            "HOME",
            "TMPDIR",
            "USER",
            "LOGNAME",
            "PYTHONPATH",
            "PYTHONDONTWRITEBYTECODE",
            "PYTHONNOUSERSITE",
            "DATABASE_URL",
            "NR_APP_NAME",
            "NR_APP_VERSION",
            "NR_RUNNER_ID",
            "NR_WORKER_MEMORY_MB",
            "NR_APP_MAX_PROCS",
            "NR_APP_MAX_FILE_MB",
            "NR_APP_CPU_S",
        ];
        for k in env.keys() {
            // The interpreter itself may add LC_CTYPE.
            assert!(
                allowed.contains(&k.as_str()) || k == "LC_CTYPE",
                "{k} is not on the allow-list: {b}"
            );
        }
        let db = env["DATABASE_URL"].as_str().unwrap();
        assert!(
            !db.contains("postgres@"),
            "the app got the platform's role: {db}"
        );

        // The platform's /proc/<pid>/environ is out of reach, and so is signalling it.
        assert_eq!(b["environ_error"], "PermissionError", "{b}");
        assert!(b.get("environ").is_none());
        assert_eq!(b["signal"], "PermissionError", "{b}");
    });
}

const FILES: &str = r##"
import os, tempfile

def _try(fn):
    try:
        fn()
        return "ok"
    except OSError as exc:
        return type(exc).__name__

def _read(p):
    with open(p) as fh:
        fh.read()

def _append(p):
    with open(p, "a") as fh:
        fh.write("# owned\n")

def _scratch():
    with tempfile.NamedTemporaryFile(dir=os.environ["TMPDIR"]) as fh:
        fh.write(b"x")
    with open(os.path.join(os.environ["HOME"], "mine.txt"), "w") as fh:
        fh.write("mine")

def execute(data, conn=None):
    host = os.path.join(os.environ["PYTHONPATH"].split(":")[0], "nr_host.py")
    return {
        "read_other": _try(lambda: _read(data["other"])),
        "write_other": _try(lambda: _append(data["other"])),
        "list_other": _try(lambda: os.listdir(os.path.dirname(data["other"]))),
        "write_own": _try(lambda: _append(os.path.abspath("main.py"))),
        "write_host": _try(lambda: _append(host)),
        "read_host": _try(lambda: _read(host)),
        "scratch": _try(_scratch),
        "other_home": _try(lambda: os.listdir(data["other_home"])),
        "store": _try(lambda: open(data["store"], "rb").read()),
    }
"##;

/// A file of `app`'s in the platform's object store (its bundle): the path an app
/// would have to guess, handed to the intruder instead.
fn stored_bundle(h: &Harness, app: &str) -> String {
    fn walk(dir: &std::path::Path, app: &str) -> Option<std::path::PathBuf> {
        for e in std::fs::read_dir(dir).ok()?.flatten() {
            let p = e.path();
            if p.is_dir() {
                if let Some(found) = walk(&p, app) {
                    return Some(found);
                }
            } else if p.to_string_lossy().contains(app) {
                return Some(p);
            }
        }
        None
    }
    walk(&h.dir.path().join("objects"), app)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// `<test dir>/runner/runner-*/<sub>`: the one runner's directory.
fn runner_path(h: &Harness, sub: &str) -> std::path::PathBuf {
    let root = h.dir.path().join("runner");
    let runner = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("runner-"))
        .unwrap()
        .path();
    runner.join(sub)
}

/// The unpacked `main.py` of `app`'s current bundle on the runner.
fn bundle_main(h: &Harness, app: &str) -> String {
    let dir = runner_path(h, &format!("apps/{app}"));
    let rev = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    rev.join("main.py").to_string_lossy().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_reads_only_its_own_bundle_and_writes_only_its_scratch_dir() {
    let h = Harness::start().await;
    h.deploy_ok(
        "victim",
        &[("manifest.json", &manifest("victim")), ("main.py", SNOOP)],
    )
    .await;
    h.deploy_ok(
        "intruder",
        &[("manifest.json", &manifest("intruder")), ("main.py", FILES)],
    )
    .await;
    // Both loaded on the runner.
    let (s, b) = h.sync("victim", json!({"pid": 1})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let other = bundle_main(&h, "victim");
    let other_home = runner_path(&h, "home/victim");
    let (s, b) = h
        .sync(
            "intruder",
            json!({
                "other": other,
                "other_home": other_home.to_string_lossy(),
                "store": stored_bundle(&h, "victim"),
            }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["read_other"], "PermissionError", "{b}");
    assert_eq!(b["write_other"], "PermissionError", "{b}");
    assert_eq!(b["list_other"], "PermissionError", "{b}");
    assert_eq!(b["write_own"], "PermissionError", "{b}");
    assert_eq!(b["write_host"], "PermissionError", "{b}");
    assert_eq!(b["read_host"], "ok", "{b}");
    assert_eq!(b["scratch"], "ok", "{b}");
    assert_eq!(b["other_home"], "PermissionError", "{b}");
    assert_eq!(b["store"], "PermissionError", "{b}");
    let victim = std::fs::read_to_string(&other).unwrap();
    assert!(!victim.contains("# owned"));
}

const FORKER: &str = r#"
import os, time

def _pidfile():
    return os.path.join(os.environ["HOME"], "pids")

def _double_fork_setsid():
    r, w = os.pipe()
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.write(w, str(os.getpid()).encode())
            os.close(w)
            time.sleep(300)
            os._exit(0)
        os._exit(0)
    os.close(w)
    pid = int(os.read(r, 32))
    os.close(r)
    return pid

def execute(data, conn=None):
    child = os.fork()
    if child == 0:
        time.sleep(300)
        os._exit(0)
    daemon = _double_fork_setsid()
    with open(_pidfile(), "w") as fh:
        fh.write("%d %d" % (child, daemon))
    if data.get("hang"):
        time.sleep(300)
    return {"child": child, "daemon": daemon}
"#;

async fn gone_within(pids: &[u64], limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if pids.iter().all(|p| !alive(*p)) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn pids_of(v: &Value) -> Vec<u64> {
    vec![v["child"].as_u64().unwrap(), v["daemon"].as_u64().unwrap()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_a_call_leaves_behind_are_killed_setsid_included() {
    let h = Harness::start().await;
    h.deploy_ok(
        "forker",
        &[
            (
                "manifest.json",
                r#"{"app_name":"forker","version":"1.0.0","api_version":"1.0.0","timeout_s":2}"#,
            ),
            ("main.py", FORKER),
        ],
    )
    .await;

    // A call that returns: its fork and its setsid double-forked daemon die with it.
    let (s, b) = h.sync("forker", json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let pids = pids_of(&b);
    assert!(
        gone_within(&pids, Duration::from_millis(500)).await,
        "processes {pids:?} outlived the call"
    );

    // A call that times out: the worker is killed, and everything under it.
    let (s, b) = h.sync("forker", json!({"hang": true})).await;
    assert_ne!(s, StatusCode::OK, "{b}");
    let written = std::fs::read_to_string(runner_path(&h, "home/forker/pids")).unwrap();
    let pids: Vec<u64> = written
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 2);
    assert!(
        gone_within(&pids, Duration::from_millis(1500)).await,
        "processes {pids:?} outlived the timeout kill"
    );

    // The app still serves afterwards (the pool refilled).
    let (s, b) = h.sync("forker", json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_a_job_leaves_behind_are_killed_when_it_is_cancelled() {
    let h = Harness::start().await;
    h.deploy_ok(
        "jobforker",
        &[
            ("manifest.json", &manifest("jobforker")),
            ("main.py", FORKER),
        ],
    )
    .await;
    let (s, b) = h.submit("jobforker", json!({"hang": true})).await;
    assert!(s.is_success(), "{b}");
    let id = b["job_id"].as_str().unwrap().to_owned();
    let pidfile = {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let p = runner_path(&h, "home/jobforker/pids");
            if let Ok(text) = std::fs::read_to_string(&p) {
                if text.split_whitespace().count() == 2 {
                    break text;
                }
            }
            assert!(Instant::now() < deadline, "the job never started");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let pids: Vec<u64> = pidfile
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(pids.iter().all(|p| alive(*p)));
    let res = h
        .http
        .delete(format!("{}/api/async/jobs/{id}", h.url))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    assert!(
        gone_within(&pids, Duration::from_secs(5)).await,
        "processes {pids:?} outlived the cancelled job"
    );
}

/// Writes `data.path` (with `write`) or reads it back.
const SHARED_TMP: &str = r#"
import os

def execute(data, conn=None):
    path = data["path"]
    if data.get("write"):
        with open(path, "w") as fh:
            fh.write("private")
        return {"mode": oct(os.stat(path).st_mode & 0o777)}
    try:
        with open(path) as fh:
            return {"read": fh.read()}
    except OSError as exc:
        return {"read": type(exc).__name__}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_an_app_writes_to_a_shared_directory_is_its_own() {
    let h = Harness::start().await;
    for app in ["tmpwriter", "tmpreader"] {
        h.deploy_ok(
            app,
            &[("manifest.json", &manifest(app)), ("main.py", SHARED_TMP)],
        )
        .await;
    }
    let path = format!("/tmp/nr-shared-{}", uuid::Uuid::new_v4().simple());
    let (s, b) = h
        .sync("tmpwriter", json!({"path": path, "write": true}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["mode"], "0o600", "{b}");
    let (s, b) = h.sync("tmpreader", json!({"path": path})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["read"], "PermissionError", "{b}");
    let (s, b) = h.sync("tmpwriter", json!({"path": path})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["read"], "private", "{b}");
    let _ = std::fs::remove_file(&path);
}

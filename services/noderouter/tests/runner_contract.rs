//! The runner's execution contract, against real NATS, Postgres and Python workers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::Harness;
use futures::StreamExt;
use nr_contracts::events::{ActionTriggered, JobProgress};
use nr_contracts::{decode, Envelope};
use nr_testkit::{app_name, manifest};
use reqwest::StatusCode;
use serde_json::json;

fn is_final(job: &serde_json::Value) -> bool {
    matches!(
        job["status"].as_str(),
        Some("completed" | "failed" | "cancelled")
    )
}

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

const JOB_APP: &str = r#"
import os, time, psycopg2
from noderouter import progress

def execute(data, conn=None):
    a = data.get("action")
    if a == "guide":
        # The author guide's style: write progress straight to the row.
        for p in (10, 20, 30):
            with psycopg2.connect(os.environ["DATABASE_URL"]) as c:
                with c.cursor() as cur:
                    cur.execute("UPDATE noderouter_core.job_queue SET progress = %s, updated_at = NOW() WHERE id = %s", (p, data["_job_id"]))
                c.commit()
            time.sleep(0.05)
        return {"style": "guide", "job": data["_job_id"]}
    if a == "sdk":
        for p in (40, 50, 60):
            progress(p)
            time.sleep(0.05)
        return {"style": "sdk", "_actions": [{"name": "finished", "payload": {"n": 1}}]}
    if a == "fail":
        raise RuntimeError("report source missing")
    if a == "sleep":
        import subprocess
        child = subprocess.Popen(["sleep", "120"])
        with psycopg2.connect(os.environ["DATABASE_URL"]) as c:
            with c.cursor() as cur:
                cur.execute("CREATE TABLE IF NOT EXISTS job_pids (job TEXT, pid INT)")
                cur.execute("INSERT INTO job_pids VALUES (%s, %s), (%s, %s)", (data["_job_id"], os.getpid(), data["_job_id"], child.pid))
            c.commit()
        time.sleep(120)
    return {"ok": True}
"#;

fn pids_alive(pids: &[i32]) -> Vec<i32> {
    pids.iter()
        .copied()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .map(|s| !s.contains(") Z "))
                .unwrap_or(false)
        })
        .collect()
}

async fn job_pids(h: &Harness, job: &str) -> Vec<i32> {
    let pool = common::app_tables(h).await;
    for _ in 0..100 {
        let rows: Result<Vec<(i32,)>, _> =
            sqlx::query_as("SELECT pid FROM job_pids WHERE job = $1")
                .bind(job)
                .fetch_all(&pool)
                .await;
        if let Ok(rows) = rows {
            if rows.len() == 2 {
                return rows.into_iter().map(|r| r.0).collect();
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job {job} never recorded its pids");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_jobs_run_to_completion_with_both_progress_styles_published() {
    let h = Harness::start().await;
    let app = app_name("jobs");
    h.deploy_ok(
        &app,
        &[
            (
                "manifest.json",
                &manifest(
                    &app,
                    "1.0.0",
                    json!({"actions": [{"name": "finished", "display_name": "Finished"}]}),
                ),
            ),
            ("main.py", JOB_APP),
        ],
    )
    .await;
    let nats = h.nats_client().await;
    let mut events = nats
        .subscribe(format!("job.progress.{app}.>"))
        .await
        .unwrap();
    let mut actions = nats
        .subscribe(format!("action.triggered.{app}.>"))
        .await
        .unwrap();
    for subject in [
        format!("job.progress.{app}.>"),
        format!("action.triggered.{app}.>"),
    ] {
        h.nats.subscribed(&nats, &subject).await;
    }

    for (action, expected) in [("guide", vec![10, 20, 30]), ("sdk", vec![40, 50, 60])] {
        let (status, sub) = h.submit(&app, json!({"action": action})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{sub}");
        assert_eq!(sub["status"], "pending");
        assert!(sub["node"].as_str().is_some());
        let id = sub["job_id"].as_str().unwrap().to_owned();
        let job = h.wait_job(&id, is_final).await;
        assert_eq!(job["status"], "completed", "{job}");
        assert_eq!(job["progress"], 100);
        assert_eq!(job["result"]["style"], action);
        assert!(job["result"].get("_actions").is_none(), "{job}");
        if action == "guide" {
            assert_eq!(job["result"]["job"], id.as_str(), "_job_id injected");
        }
        for key in [
            "id",
            "app_name",
            "status",
            "progress",
            "result",
            "error_message",
            "created_at",
            "updated_at",
        ] {
            assert!(job.get(key).is_some(), "job lacks {key}: {job}");
        }
        // Every progress change and the final state were published.
        let mut seen = Vec::new();
        while !seen.iter().any(|(s, _): &(String, i32)| s == "completed") {
            let msg = tokio::time::timeout(Duration::from_secs(5), events.next())
                .await
                .unwrap()
                .unwrap();
            let ev: Envelope<JobProgress> = decode(&msg.payload).unwrap();
            assert_eq!(ev.data.job_id, id);
            seen.push((ev.data.status.as_str().to_owned(), ev.data.progress));
        }
        let running: Vec<i32> = seen
            .iter()
            .filter(|(s, _)| s == "running")
            .map(|(_, p)| *p)
            .filter(|p| *p > 0)
            .collect();
        assert_eq!(running, expected, "progress events: {seen:?}");
        assert_eq!(seen.last().unwrap(), &("completed".to_owned(), 100));
    }
    let msg = tokio::time::timeout(Duration::from_secs(5), actions.next())
        .await
        .unwrap()
        .unwrap();
    let ev: Envelope<ActionTriggered> = decode(&msg.payload).unwrap();
    assert_eq!(ev.data.action_name, "finished");
    assert!(ev.data.job_id.is_some());

    let (_, sub) = h.submit(&app, json!({"action": "fail"})).await;
    let job = h.wait_job(sub["job_id"].as_str().unwrap(), is_final).await;
    assert_eq!(job["status"], "failed");
    assert_eq!(job["error_message"], "RuntimeError: report source missing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_job_fails_and_its_process_tree_is_gone() {
    let h = Harness::start().await;
    let app = app_name("slowjob");
    h.deploy_ok(
        &app,
        &[
            (
                "manifest.json",
                &manifest(&app, "1.0.0", json!({"job_timeout_s": 2})),
            ),
            ("main.py", JOB_APP),
        ],
    )
    .await;
    let (_, sub) = h.submit(&app, json!({"action": "sleep"})).await;
    let id = sub["job_id"].as_str().unwrap().to_owned();
    let pids = job_pids(&h, &id).await;
    assert_eq!(pids_alive(&pids).len(), 2);
    let job = h.wait_job(&id, is_final).await;
    assert_eq!(job["status"], "failed");
    assert_eq!(job["error_message"], "job timed out after 2 s");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        pids_alive(&pids).is_empty(),
        "left behind: {:?}",
        pids_alive(&pids)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_running_job_stops_it_and_it_stays_cancelled() {
    let h = Harness::start().await;
    let app = app_name("cancel");
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
            ("main.py", JOB_APP),
        ],
    )
    .await;
    let (_, sub) = h.submit(&app, json!({"action": "sleep"})).await;
    let id = sub["job_id"].as_str().unwrap().to_owned();
    let pids = job_pids(&h, &id).await;
    let res = h
        .http
        .delete(format!("{}/api/async/jobs/{id}", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], "cancelled");
    for _ in 0..40 {
        if pids_alive(&pids).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(pids_alive(&pids).is_empty(), "job processes still running");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.job(&id).await["status"], "cancelled");
    // A finished job cannot be cancelled; an unknown one is 404.
    let res = h
        .http
        .delete(format!("{}/api/async/jobs/{id}", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);
    let res = h
        .http
        .get(format!("{}/api/async/jobs/not-a-job", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_runner_is_killed_runs_again_elsewhere_exactly_once() {
    // The platform under test has no runner; a second process holds the only one.
    let h = Harness::start_with(&["--runners", "0", "--job-lease-s", "2"]).await;
    let app = app_name("survive");
    let main = format!(
        r#"
import os, time, psycopg2
def execute(data, conn=None):
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS {app}_runs (n SERIAL, runner TEXT, pid INT)")
        cur.execute("INSERT INTO {app}_runs (runner, pid) VALUES (%s, %s)",
                    (os.environ["NR_RUNNER_ID"], os.getpid()))
    conn.commit()
    time.sleep(float(data.get("seconds", 3)))
    return {{"runner": os.environ["NR_RUNNER_ID"]}}
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
    /// A runner process stopped when the test ends, whatever happens: asked to stop
    /// (so it stops its app processes), killed if it has not within 10 s.
    struct Proc(std::process::Child);
    impl Drop for Proc {
        fn drop(&mut self) {
            let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while std::time::Instant::now() < deadline {
                if !matches!(self.0.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let spawn_runner = |dir: &str| {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_noderouter"))
            .args([
                "up",
                "--http-addr",
                "127.0.0.1:0",
                "--nats-url",
                &h.nats.url,
                "--database-url",
                &h.db.url,
                "--runner-secret",
                common::RUNNER_SECRET,
            ])
            .arg("--nats-passwords-file")
            .arg(h.nats.passwords_file())
            .args([
                "--object-store-url",
                &h.dir.path().join("objects").to_string_lossy(),
            ])
            .args(["--runner-dir", &h.dir.path().join(dir).to_string_lossy()])
            .arg("--data-dir")
            .arg(h.dir.path().join(format!("{dir}-data")))
            .args(["--python", &nr_testkit::python(), "--job-lease-s", "2"])
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Proc(child)
    };
    let mut doomed = spawn_runner("doomed");
    let (_, sub) = h.submit(&app, json!({"seconds": 30})).await;
    let id = sub["job_id"].as_str().unwrap().to_owned();
    let running = h.wait_job(&id, |j| j["status"] == "running").await;
    assert_eq!(running["status"], "running", "{running}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    doomed.0.kill().unwrap(); // SIGKILL
    doomed.0.wait().unwrap();
    // Kill -9 leaves the forked job worker orphaned; it is in its own process group.
    let rescuer = spawn_runner("rescuer");
    let pool = common::app_tables(&h).await;
    let mut attempt = 0;
    for _ in 0..200 {
        let (a,): (i32,) =
            sqlx::query_as("SELECT attempt FROM noderouter_core.job_queue WHERE id = $1::uuid")
                .bind(&id)
                .fetch_one(&pool)
                .await
                .unwrap();
        attempt = a;
        if a >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(attempt, 2, "the job was not taken over");
    // Shorten the rerun: cancel it, then check it ran twice and completed never.
    let job = h.job(&id).await;
    assert_eq!(job["status"], "running");
    let mut runs: i64 = 0;
    for _ in 0..100 {
        (runs,) = sqlx::query_as(&format!("SELECT count(DISTINCT runner) FROM {app}_runs"))
            .fetch_one(&pool)
            .await
            .unwrap();
        if runs == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(runs, 2, "the second attempt ran on the other runner");
    // The first attempt's process, orphaned to init by the kill -9 and still inside its
    // 30 s sleep, is killed by the rescuer's sweep: no app process outlives its runner.
    let (first,): (i32,) =
        sqlx::query_as(&format!("SELECT pid FROM {app}_runs ORDER BY n LIMIT 1"))
            .fetch_one(&pool)
            .await
            .unwrap();
    let mut left = pids_alive(&[first]);
    for _ in 0..50 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = pids_alive(&[first]);
    }
    assert!(
        left.is_empty(),
        "the killed runner's job process {first} is still running"
    );
    let res = h
        .http
        .delete(format!("{}/api/async/jobs/{id}", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    drop(rescuer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_runner_secret_only_signed_fresh_untampered_requests_run() {
    use nr_auth::signing::{sign, Keys, HEADER_SIG};
    // Rotation: the gateway signs with the new key; runners accept the new and the old.
    let h =
        Harness::start_with(&["--runner-secret", "new-key-0123456789,old-key-0123456789"]).await;
    let app = app_name("signed");
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
            ("main.py", "def execute(d):\n    return {'ran': True}\n"),
        ],
    )
    .await;
    assert_eq!(
        h.sync(&app, json!({})).await.0,
        StatusCode::OK,
        "the gateway stamps its requests"
    );

    let nats = h.nats_client().await;
    let subject = format!("runner.exec.{app}");
    let status = |m: &async_nats::Message| {
        m.headers
            .as_ref()
            .and_then(|h| h.get("Nr-Status"))
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default()
    };
    let ask = |headers: async_nats::HeaderMap, body: &'static str| {
        let nats = nats.clone();
        let subject = subject.clone();
        async move {
            nats.request_with_headers(subject, headers, body.into())
                .await
                .unwrap()
        }
    };
    let stamped = |keys: &str, body: &[u8]| {
        let mut h = async_nats::HeaderMap::new();
        let stamp = sign(&Keys::parse(Some(keys)), &subject, &h.clone(), body).unwrap();
        h.insert(HEADER_SIG, stamp.value());
        h
    };

    assert_eq!(
        status(&ask(async_nats::HeaderMap::new(), "{}").await),
        "401",
        "unsigned"
    );
    let old = stamped("old-key-0123456789", b"{}");
    assert_eq!(
        status(&ask(old.clone(), "{}").await),
        "200",
        "a key being rotated out still verifies"
    );
    assert_eq!(status(&ask(old, "{}").await), "401", "replayed");
    let tampered = stamped("new-key-0123456789", b"{}");
    assert_eq!(
        status(&ask(tampered, "{\"x\":1}").await),
        "401",
        "tampered body"
    );
    assert_eq!(
        status(&ask(stamped("wrong-key", b"{}"), "{}").await),
        "401",
        "unknown key"
    );
    // A gateway of the previous release (three headers) while runners are upgraded
    // first: served, and answered in its own reply scheme.
    let mut legacy = async_nats::HeaderMap::new();
    let keys = Keys::parse(Some("new-key-0123456789"));
    for (k, v) in nr_auth::signing::legacy::sign(&keys, &subject, &legacy.clone(), b"{}").unwrap() {
        legacy.insert(k, v.as_str());
    }
    let nonce = legacy
        .get(nr_auth::signing::legacy::HEADER_NONCE)
        .unwrap()
        .as_str()
        .to_owned();
    let reply = ask(legacy.clone(), "{}").await;
    assert_eq!(status(&reply), "200", "previous release's signature");
    let sig = reply
        .headers
        .as_ref()
        .unwrap()
        .get(HEADER_SIG)
        .unwrap()
        .as_str()
        .to_owned();
    assert_eq!(
        Some(sig),
        nr_auth::signing::legacy::sign_reply(&keys, &nonce, "200", &reply.payload),
        "the reply is signed the way that gateway checks"
    );
    assert_eq!(
        status(&ask(legacy, "{}").await),
        "401",
        "replayed, previous release"
    );
    let mut stale = stamped("new-key-0123456789", b"{}");
    let old_ms = (time::OffsetDateTime::now_utc().unix_timestamp() - 120) * 1000;
    // `<ts>.<nonce>.<mac>` with the time moved back two minutes.
    let fresh = stale.get(HEADER_SIG).unwrap().as_str().to_owned();
    let (_, nonce_mac) = fresh.split_once('.').unwrap();
    stale.insert(HEADER_SIG, format!("{old_ms}.{nonce_mac}").as_str());
    let reply = ask(stale, "{}").await;
    assert_eq!(status(&reply), "401", "stale");
    let body: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("runner refused"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_waited_past_its_time_limit_is_answered_504_and_never_run() {
    let h = Arc::new(Harness::start_with(&["--pool-size", "1"]).await);
    let app = app_name("queued");
    let main = format!(
        r#"
import time
def execute(data, conn=None):
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS {app}_runs (n INT)")
        cur.execute("INSERT INTO {app}_runs VALUES (%s)", (data["n"],))
    conn.commit()
    time.sleep(0.8)
    return {{"n": data["n"]}}
"#
    );
    h.deploy_ok(
        &app,
        &[
            (
                "manifest.json",
                &manifest(&app, "1.0.0", json!({"timeout_s": 1})),
            ),
            ("main.py", &main),
        ],
    )
    .await;
    let calls: Vec<_> = (0..4)
        .map(|n| {
            let (h, app) = (h.clone(), app.clone());
            tokio::spawn(async move { h.sync(&app, json!({"n": n})).await.0 })
        })
        .collect();
    let mut statuses = Vec::new();
    for c in calls {
        statuses.push(c.await.unwrap());
    }
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let timed_out = statuses
        .iter()
        .filter(|s| **s == StatusCode::GATEWAY_TIMEOUT)
        .count();
    assert_eq!(ok + timed_out, 4, "{statuses:?}");
    assert!(ok >= 1 && timed_out >= 2, "{statuses:?}");
    // Nothing that was answered 504 while queued runs later.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pool = common::app_tables(&h).await;
    let (runs,): (i64,) = sqlx::query_as(&format!("SELECT count(*) FROM {app}_runs"))
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        runs <= 2,
        "{runs} calls ran for {ok} answered: queued calls ran after their deadline"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_job_runs_again_until_its_attempts_are_used_up_then_fails() {
    use nr_contracts::events::{JobSubmitted, JOB_SUBMITTED};
    let h = Harness::start_with(&["--job-lease-s", "2"]).await;
    let app = app_name("lost");
    let report = h
        .deploy_ok(
            &app,
            &[
                ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
                ("main.py", "def execute(d):\n    return {'ran': True}\n"),
            ],
        )
        .await;
    let rev = report["rev"].as_u64().unwrap();
    let pool = common::app_tables(&h).await;
    let nats = h.nats_client().await;
    let js = async_nats::jetstream::new(nats);
    // Two jobs whose runner died mid-run (lease expired): one with an attempt left, one without.
    let mut ids = Vec::new();
    for attempt in [2, 3] {
        let id = uuid::Uuid::now_v7();
        sqlx::query(
            "INSERT INTO noderouter_core.job_queue (id, app_name, status, attempt, max_attempts, lease_until, app_rev) \
             VALUES ($1, $2, 'running', $3, 3, NOW() - INTERVAL '1 second', $4)",
        )
        .bind(id)
        .bind(&app)
        .bind(attempt)
        .bind(rev as i64)
        .execute(&pool)
        .await
        .unwrap();
        let event = Envelope::new(
            JOB_SUBMITTED,
            "test",
            JobSubmitted {
                job_id: id.to_string(),
                app_name: app.clone(),
                app_rev: rev,
            },
        );
        nr_infra::bus::publish_event(&js, &format!("job.submitted.{app}"), &event, None)
            .await
            .unwrap();
        ids.push(id.to_string());
    }
    let retried = h.wait_job(&ids[0], is_final).await;
    assert_eq!(retried["status"], "completed", "{retried}");
    assert_eq!(retried["attempt"], 3);
    let given_up = h.wait_job(&ids[1], is_final).await;
    assert_eq!(given_up["status"], "failed", "{given_up}");
    assert!(
        given_up["error_message"]
            .as_str()
            .unwrap()
            .contains("runner stopped under it (gave up after 3 attempts)"),
        "{given_up}"
    );
}

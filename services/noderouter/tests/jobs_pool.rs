//! Job workers and scheduling, against the real platform: a job worker serves
//! consecutive jobs and is replaced after a cancel or a timeout; one app's jobs do not
//! hold every slot; a stopping runner hands its running jobs back; a job's slot goes to
//! the next job while its outcome is written; a burst of one app waits on the runner
//! instead of bouncing back to the stream.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::Harness;
use nr_testkit::{app_name, manifest};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn is_final(job: &Value) -> bool {
    matches!(
        job["status"].as_str(),
        Some("completed" | "failed" | "cancelled")
    )
}

async fn submit_id(h: &Harness, app: &str, body: Value) -> String {
    let (s, b) = h.submit(app, body).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    b["job_id"].as_str().unwrap().to_owned()
}

/// Deploys an app limited to one job at a time whose jobs sleep `data.sleep` seconds and
/// return `data.n`.
async fn one_at_a_time(h: &Harness, prefix: &str) -> String {
    let app = app_name(prefix);
    h.deploy_ok(
        &app,
        &[
            (
                "manifest.json",
                &manifest(&app, "1.0.0", json!({"job_concurrency": 1})),
            ),
            (
                "main.py",
                "import time\ndef execute(data, conn=None):\n    time.sleep(float(data.get('sleep', 0)))\n    return {'n': data.get('n')}\n",
            ),
        ],
    )
    .await;
    app
}

/// Submits job `n` sleeping `sleep` seconds and waits until it runs (holding the slot).
async fn hold_the_slot(h: &Harness, app: &str, n: u64, sleep: u64) -> String {
    let id = submit_id(h, app, json!({"n": n, "sleep": sleep})).await;
    let j = h.wait_job(&id, |j| j["status"] == "running").await;
    assert_eq!(j["status"], "running", "{j}");
    id
}

fn alive(pid: i64) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

const PID_APP: &str = r#"import os, time

def execute(data, conn=None):
    if data.get("sleep"):
        time.sleep(float(data["sleep"]))
    with conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        backend = cur.fetchone()[0]
    return {"pid": os.getpid(), "backend": backend}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_worker_serves_consecutive_jobs_and_is_replaced_after_a_cancel_or_timeout() {
    let h = Harness::start().await;
    let app = app_name("pids");
    h.deploy_ok(
        &app,
        &[
            (
                "manifest.json",
                &manifest(&app, "1.0.0", json!({"job_timeout_s": 2})),
            ),
            ("main.py", PID_APP),
        ],
    )
    .await;
    let run = |body: Value| {
        let h = &h;
        let app = app.clone();
        async move {
            let id = submit_id(h, &app, body).await;
            h.wait_job(&id, is_final).await
        }
    };
    let first = run(json!({})).await;
    assert_eq!(first["status"], "completed", "{first}");
    let second = run(json!({})).await;
    assert_eq!(second["status"], "completed", "{second}");
    let pid = first["result"]["pid"].as_i64().unwrap();
    assert_eq!(
        second["result"]["pid"], pid,
        "consecutive jobs run on the same job worker"
    );
    assert_eq!(
        second["result"]["backend"], first["result"]["backend"],
        "with the same warm connection"
    );

    // A cancelled job's worker is killed and replaced.
    let id = submit_id(&h, &app, json!({"sleep": 30})).await;
    let running = h.wait_job(&id, |j| j["status"] == "running").await;
    assert_eq!(running["status"], "running", "{running}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = h
        .http
        .delete(format!("{}/api/async/jobs/{id}", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while alive(pid) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!alive(pid), "the cancelled job's worker {pid} still runs");
    let after_cancel = run(json!({})).await;
    let pid2 = after_cancel["result"]["pid"].as_i64().unwrap();
    assert_ne!(pid2, pid, "a new worker serves after a cancel");

    // A timed-out job's worker is replaced too.
    let timed_out = run(json!({"sleep": 10})).await;
    assert_eq!(timed_out["status"], "failed", "{timed_out}");
    assert_eq!(timed_out["error_message"], "job timed out after 2 s");
    let after_timeout = run(json!({})).await;
    let pid3 = after_timeout["result"]["pid"].as_i64().unwrap();
    assert_ne!(pid3, pid2, "a new worker serves after a timeout");
    assert!(!alive(pid2), "the timed-out job's worker {pid2} still runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_apps_long_jobs_do_not_delay_another_apps_short_job() {
    hog_and_quick(2).await;
}

/// A manifest may lower its app's share of a runner's job slots, never raise it past
/// the operator's (`NR_JOB_APP_CONCURRENCY`, half the slots by default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_cannot_take_more_than_its_share_of_the_job_slots() {
    hog_and_quick(1000).await;
}

/// Eight six-second jobs of an app with `job_concurrency: hog_limit` on a runner of four
/// job slots, then one short job of another app: it finishes first, while at most two of
/// the long ones run.
async fn hog_and_quick(hog_limit: u64) {
    let h = Harness::start_with(&["--job-concurrency", "4"]).await;
    let hog = app_name("hog");
    let quick = app_name("quick");
    h.deploy_ok(
        &hog,
        &[
            (
                "manifest.json",
                &manifest(&hog, "1.0.0", json!({"job_concurrency": hog_limit})),
            ),
            (
                "main.py",
                "import time\ndef execute(data, conn=None):\n    time.sleep(6)\n    return {}\n",
            ),
        ],
    )
    .await;
    h.deploy_ok(
        &quick,
        &[
            ("manifest.json", &manifest(&quick, "1.0.0", json!({}))),
            (
                "main.py",
                "def execute(data, conn=None):\n    return {'quick': True}\n",
            ),
        ],
    )
    .await;
    // The short app's first job loads it and forks its job worker: done before the
    // race, so a busy machine's load time does not count against it.
    let warm = submit_id(&h, &quick, json!({})).await;
    let warmed = h.wait_job(&warm, is_final).await;
    assert_eq!(warmed["status"], "completed", "{warmed}");
    let mut hogs = Vec::new();
    for _ in 0..8 {
        hogs.push(submit_id(&h, &hog, json!({})).await);
    }
    h.wait_job(&hogs[0], |j| j["status"] == "running").await;
    let id = submit_id(&h, &quick, json!({})).await;
    let done = h.wait_job(&id, is_final).await;
    assert_eq!(done["status"], "completed", "{done}");
    let mut running = 0;
    for hid in &hogs {
        let j = h.job(hid).await;
        assert!(
            !is_final(&j),
            "a long job finished before the short one of another app: {j}"
        );
        if j["status"] == "running" {
            running += 1;
        }
    }
    assert!(
        running <= 2,
        "{running} jobs of an app limited to 2 run at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_runner_hands_its_running_jobs_back_at_once() {
    // A long lease (the work items' ack wait): the job must not wait for it.
    let long_lease = ["--job-lease-s", "120"];
    let mut h = Harness::start_with(&long_lease).await;
    let app = app_name("drain");
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
            (
                "main.py",
                "import time\ndef execute(data, conn=None):\n    time.sleep(60)\n    return {}\n",
            ),
        ],
    )
    .await;
    let id = submit_id(&h, &app, json!({})).await;
    let running = h.wait_job(&id, |j| j["status"] == "running").await;
    assert_eq!(running["status"], "running", "{running}");
    let platform = h.platform.take().unwrap();
    tokio::time::timeout(Duration::from_secs(30), platform.shutdown())
        .await
        .expect("the platform stops within 30 s")
        .unwrap();
    let db = sqlx::PgPool::connect(&h.db.url).await.unwrap();
    let (status, attempt, max, lease): (String, i32, i32, Option<time::OffsetDateTime>) =
        sqlx::query_as(
            "SELECT status, attempt, max_attempts, lease_until FROM noderouter_core.job_queue WHERE id = $1::uuid",
        )
        .bind(&id)
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(status, "pending", "the job was not handed back");
    assert!(lease.is_none(), "its lease was not released");
    assert_eq!(
        max - attempt,
        3,
        "the handed-back attempt counts against the job"
    );
    // Its work item goes back to NR_JOBS for the next runner at once: a runner started
    // now runs it, rather than after the stopped runner's ack wait (the lease, 120 s
    // here) runs out. (Before, the stopping runner kept pulling: it took the item back,
    // handed it back again, dozens of times, and the last delivery waited out the lease.)
    let config = common::config_for(&h.nats, &h.db, h.dir.path(), &long_lease);
    let platform = noderouter::Platform::start(config).await.unwrap();
    let started = std::time::Instant::now();
    loop {
        let (status, now): (String, i32) = sqlx::query_as(
            "SELECT status, attempt FROM noderouter_core.job_queue WHERE id = $1::uuid",
        )
        .bind(&id)
        .fetch_one(&db)
        .await
        .unwrap();
        if status == "running" && now > attempt {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the handed-back job did not run again within 60 s of the next start (its lease is 120 s): {status}, attempt {now}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "the handed-back job ran again {:?} after the next start",
        started.elapsed()
    );
    platform.shutdown().await.unwrap();
}

/// A job's slot goes to the app's next job as soon as its worker is done with it: while
/// the first job's outcome cannot be written (its row is locked here), the next job of
/// the same app, limited to one at a time, is claimed and runs; both complete once the
/// row is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_job_runs_while_the_previous_ones_outcome_is_being_written() {
    use sqlx::Connection as _;
    let h = Harness::start().await;
    let app = one_at_a_time(&h, "overlap").await;
    let first = hold_the_slot(&h, &app, 1, 5).await;
    let mut conn = sqlx::PgConnection::connect(&h.db.url).await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    let id = uuid::Uuid::parse_str(&first).unwrap();
    sqlx::query("SELECT 1 FROM noderouter_core.job_queue WHERE id = $1 FOR UPDATE")
        .bind(id)
        .execute(&mut *tx)
        .await
        .unwrap();
    let second = submit_id(&h, &app, json!({"n": 2})).await;
    let j = h.wait_job(&second, |j| j["status"] == "running").await;
    assert_eq!(
        j["status"], "running",
        "the app's next job waits for the previous job's outcome to be written: {j}"
    );
    let j = h.job(&first).await;
    assert_eq!(
        j["status"], "running",
        "the first job's outcome is held: {j}"
    );
    tx.rollback().await.unwrap();
    for (id, n) in [(&first, 1), (&second, 2)] {
        let j = h.wait_job(id, is_final).await;
        assert_eq!(j["status"], "completed", "{j}");
        assert_eq!(j["result"]["n"], n, "{j}");
    }
}

/// A burst of one app that is at its limit waits on the runner for the app's slot, each
/// work item delivered once, instead of going back to `NR_JOBS` and being delivered again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_one_app_waits_on_the_runner_instead_of_being_redelivered() {
    use async_nats::jetstream::consumer::pull;
    let h = Harness::start().await;
    let app = one_at_a_time(&h, "burst").await;
    // The first job holds the app's one slot while 150 more arrive.
    let first = hold_the_slot(&h, &app, 0, 3).await;
    let mut ids = Vec::new();
    for n in 1..=150 {
        ids.push(submit_id(&h, &app, json!({"n": n})).await);
    }
    let js = async_nats::jetstream::new(h.nats_client().await);
    let mut consumer: async_nats::jetstream::consumer::Consumer<pull::Config> = js
        .get_stream("NR_JOBS")
        .await
        .unwrap()
        .get_consumer("runner-jobs")
        .await
        .unwrap();
    // Bounced work items come back every 500 ms while the slot is held: look for them.
    let mut redelivered = 0;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        redelivered = redelivered.max(consumer.info().await.unwrap().num_redelivered);
    }
    assert_eq!(
        redelivered, 0,
        "work items of the burst were sent back and delivered again"
    );
    for id in std::iter::once(&first).chain(&ids) {
        let j = h.wait_job(id, is_final).await;
        assert_eq!(j["status"], "completed", "{j}");
    }
}

//! Jobs whose runner went away, against real NATS, Postgres and Python workers: a runner
//! killed mid-job (the job runs again elsewhere, exactly once), and jobs whose lease ran
//! out (run again until their attempts are used up).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::runner::{is_final, pids_alive};
use common::Harness;
use nr_contracts::Envelope;
use nr_testkit::{app_name, manifest};
use reqwest::StatusCode;
use serde_json::json;

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

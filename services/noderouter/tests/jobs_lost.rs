//! A job left `running` with no work item to bring it back (a database restored without
//! the `NR_JOBS` backup taken with it): once its lease has lapsed for
//! `NR_JOB_REPAIR_AFTER_S`, it goes back to `pending` with a new work item and runs;
//! one past its attempt limit ends `failed`, saying why.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Harness;
use nr_testkit::{app_name, manifest};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_job_without_a_work_item_runs_again_once_its_lease_lapsed_long_enough() {
    let h = Harness::start_with(&["--job-repair-after-s", "2"]).await;
    let app = app_name("lostjob");
    let main = "def execute(data, conn=None):\n    return {\"n\": data.get(\"n\")}\n";
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
            ("main.py", main),
        ],
    )
    .await;
    let db = sqlx::PgPool::connect(&h.db.url).await.unwrap();
    // As a restored dump holds them: running at dump time, their leases long lapsed, and
    // no work item in the stream. One has attempts left, one has none.
    let (with_attempts, out_of_attempts) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    for (id, attempt) in [(with_attempts, 1), (out_of_attempts, 3)] {
        sqlx::query(
            "INSERT INTO noderouter_core.job_queue (id, app_name, payload, status, attempt, max_attempts, \
                 lease_until, node, submitted_by) \
             VALUES ($1, $2, $3, 'running', $4, 3, NOW() - INTERVAL '1 hour', 'gone-node', 'admin')",
        )
        .bind(id)
        .bind(&app)
        .bind(json!({"n": 7}))
        .bind(attempt)
        .execute(&db)
        .await
        .unwrap();
    }
    // Before: both stayed running for good (requeue refuses a running job).
    let done = h
        .wait_job(&with_attempts.to_string(), |j| j["status"] == "completed")
        .await;
    assert_eq!(done["result"], json!({"n": 7}), "{done}");
    assert_eq!(done["attempt"], 2, "{done}");
    let failed = h
        .wait_job(&out_of_attempts.to_string(), |j| j["status"] == "failed")
        .await;
    assert!(
        failed["error_message"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{failed}"
    );
}

/// A job recorded but never queued (its gateway killed between the two, or a dump
/// restored without `NR_JOBS`) waited `pending` for good. It runs once the jobs stream
/// holds fewer work items for its app than the app's long-waiting jobs; jobs waiting
/// with their work items are not queued a second time meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_job_without_a_work_item_runs_and_waiting_jobs_are_not_queued_twice() {
    let h = Harness::start_with(&["--job-repair-after-s", "1"]).await;
    let app = app_name("lostwait");
    let main = "import time\n\ndef execute(data, conn=None):\n    time.sleep(data.get(\"sleep\", 0))\n    return {\"n\": data.get(\"n\")}\n";
    h.deploy_ok(
        &app,
        &[
            (
                "manifest.json",
                &manifest(&app, "1.0.0", json!({"job_concurrency": 1})),
            ),
            ("main.py", main),
        ],
    )
    .await;
    let db = sqlx::PgPool::connect(&h.db.url).await.unwrap();
    let lost = uuid::Uuid::now_v7();
    sqlx::query(
        "INSERT INTO noderouter_core.job_queue (id, app_name, payload, status, submitted_by, \
             created_at, updated_at) \
         VALUES ($1, $2, $3, 'pending', 'admin', NOW() - INTERVAL '1 hour', NOW() - INTERVAL '1 hour')",
    )
    .bind(lost)
    .bind(&app)
    .bind(json!({"n": 1}))
    .execute(&db)
    .await
    .unwrap();
    let stream = async_nats::jetstream::new(h.nats_client().await)
        .get_stream("NR_JOBS")
        .await
        .unwrap();
    let stored = || async { stream.get_info().await.unwrap().state.last_sequence };
    // Before: it stayed pending for good.
    let done = h
        .wait_job(&lost.to_string(), |j| j["status"] == "completed")
        .await;
    assert_eq!(done["result"], json!({"n": 1}), "{done}");

    // Three jobs that wait their turn (one at a time, 1.5 s each) well past the repair
    // delay, each with its work item: none is queued a second time.
    let before = stored().await;
    let mut waiting = Vec::new();
    for n in 2..5 {
        let (status, body) = h.submit(&app, json!({"n": n, "sleep": 1.5})).await;
        assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{body}");
        waiting.push(body["job_id"].as_str().unwrap().to_owned());
    }
    for id in &waiting {
        let job = h.wait_job(id, |j| j["status"] == "completed").await;
        assert_eq!(job["status"], "completed", "{job}");
        assert_eq!(job["attempt"], 1, "{job}");
    }
    assert_eq!(stored().await - before, 3, "a waiting job was queued again");
}

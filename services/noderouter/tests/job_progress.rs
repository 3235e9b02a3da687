//! A job's progress reaches its subscribers once per value, with the message the app
//! gave it: whether the app reports it with `noderouter.progress(percent, message)` or
//! writes it straight to its row as the author guide shows. The runner publishes what
//! the SDK reports itself; Postgres's progress channel announces only the direct writes,
//! so an echo of the runner's own write can never be taken for the value and make the
//! event with the message look like a repeat. Real NATS, Postgres and Python workers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::Harness;
use futures::StreamExt as _;
use nr_contracts::events::{JobProgress, JobStatus};
use nr_testkit::{app_name, manifest};
use reqwest::StatusCode;
use serde_json::json;

/// Three steps through the SDK, each with a message, then the guide's direct `UPDATE`.
const STEPS: &str = r#"
import os, time
import psycopg2
import noderouter

def execute(data, conn=None):
    for step in (1, 2, 3):
        noderouter.progress(step * 10, "step %d of 3" % step)
    time.sleep(0.5)
    with psycopg2.connect(os.getenv("DATABASE_URL", "")) as c:
        with c.cursor() as cur:
            cur.execute(
                "UPDATE noderouter_core.job_queue "
                "SET progress = %s, updated_at = NOW() WHERE id = %s",
                (50, data["_job_id"]),
            )
        c.commit()
    time.sleep(0.5)
    return {"done": True}
"#;

/// Deploys `main` as a new app named from `prefix`, and subscribes to its progress.
async fn deploy(h: &Harness, prefix: &str, main: &str) -> (String, async_nats::Subscriber) {
    let app = app_name(prefix);
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
            ("main.py", main),
        ],
    )
    .await;
    let nats = h.nats_client().await;
    let subject = format!("job.progress.{app}.>");
    let sub = nats.subscribe(subject.clone()).await.unwrap();
    h.nats.subscribed(&nats, &subject).await;
    (app, sub)
}

/// Runs one job of `app` to completion and returns it.
async fn run_job(h: &Harness, app: &str) -> serde_json::Value {
    let (s, b) = h.submit(app, json!({})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let job = h
        .wait_job(b["job_id"].as_str().unwrap(), |j| {
            j["status"] == "completed" || j["status"] == "failed"
        })
        .await;
    assert_eq!(job["status"], "completed", "{job}");
    job
}

/// The `running` events past 0 that arrive until a second passes without one.
async fn running_events(sub: &mut async_nats::Subscriber) -> Vec<(i32, Option<String>)> {
    let mut running = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(1), sub.next()).await {
        let ev: nr_contracts::Envelope<JobProgress> = nr_contracts::decode(&m.payload).unwrap();
        if ev.data.status == JobStatus::Running && ev.data.progress > 0 {
            running.push((ev.data.progress, ev.data.message));
        }
    }
    running
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_progress_value_is_published_once_with_its_message() {
    let h = Harness::start().await;
    let (app, mut sub) = deploy(&h, "steps", STEPS).await;

    // What Postgres announces on the platform's progress channel (read as its owner).
    let db = sqlx::PgPool::connect(&h.db.url).await.unwrap();
    let (channel,): (String,) =
        sqlx::query_as("SELECT channel FROM noderouter_core.job_progress_channel")
            .fetch_one(&db)
            .await
            .unwrap();
    let mut listener = sqlx::postgres::PgListener::connect_with(&db).await.unwrap();
    listener.listen(&channel).await.unwrap();

    let job = run_job(&h, &app).await;
    let id = job["id"].as_str().unwrap().to_owned();
    let running = running_events(&mut sub).await;
    let step = |n: i32| (n * 10, Some(format!("step {n} of 3")));
    assert_eq!(
        running,
        vec![step(1), step(2), step(3), (50, None)],
        "the running events of job {id}"
    );

    let mut announced = Vec::new();
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(500), listener.recv()).await {
        if n.payload().starts_with(&id) {
            announced.push(n.payload().to_owned());
        }
    }
    assert_eq!(
        announced,
        vec![format!("{id} 50")],
        "only the direct write is announced"
    );
}

/// Progress through the SDK in a tight loop, flipping between two values.
const SDK_LOOP: &str = r#"
import time
import noderouter

def execute(data, conn=None):
    end, n = time.time() + 1.5, 0
    while time.time() < end:
        noderouter.progress(1 + n % 2, "tick %d" % n)
        n += 1
    noderouter.progress(77, "settled")
    time.sleep(0.6)
    return {"reports": n}
"#;

/// Counts the writes of `job_queue.progress` in the test's own database.
const COUNT_WRITES: [&str; 4] = [
    "CREATE TABLE public.progress_writes (n BIGINT NOT NULL)",
    "INSERT INTO public.progress_writes VALUES (0)",
    "CREATE FUNCTION public.count_progress_write() RETURNS trigger LANGUAGE plpgsql AS \
     $$ BEGIN UPDATE public.progress_writes SET n = n + 1; RETURN NEW; END $$",
    "CREATE TRIGGER count_progress_writes AFTER UPDATE OF progress ON noderouter_core.job_queue \
     FOR EACH ROW EXECUTE FUNCTION public.count_progress_write()",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_reporting_in_a_loop_writes_its_row_at_the_events_rate() {
    let h = Harness::start().await;
    let (app, mut sub) = deploy(&h, "ticker", SDK_LOOP).await;
    let db = sqlx::PgPool::connect(&h.db.url).await.unwrap();
    for sql in COUNT_WRITES {
        sqlx::query(sql).execute(&db).await.unwrap();
    }
    let job = run_job(&h, &app).await;
    let reports = job["result"]["reports"].as_i64().unwrap();
    let (writes,): (i64,) = sqlx::query_as("SELECT n FROM public.progress_writes")
        .fetch_one(&db)
        .await
        .unwrap();
    let running = running_events(&mut sub).await;
    assert!(reports > 1000, "the loop reported {reports} times only");
    // Ten at once, then five a second for the job's 2.1 s; the claim and the outcome
    // write the column too.
    assert!(
        writes <= 25,
        "{writes} progress writes for {reports} reports"
    );
    assert!(running.len() <= 22, "{} events", running.len());
    assert_eq!(
        running.last(),
        Some(&(77, Some("settled".to_owned()))),
        "the newest report is published, with its message"
    );
}

/// A failed job's final event says why, as a retry's `pending` does: a system that
/// reads only the bus could not learn it (the message was null).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_jobs_final_event_carries_its_error() {
    let h = Harness::start().await;
    let main = "def execute(data, conn=None):\n    raise ValueError(data.get('why', 'the ledger is closed') * data.get('times', 1))\n";
    let app = app_name("fails");
    h.deploy_ok(
        &app,
        &[
            (
                "manifest.json",
                &manifest(&app, "1.0.0", json!({"job_retry": {"attempts": 1}})),
            ),
            ("main.py", main),
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
        .wait_job(b["job_id"].as_str().unwrap(), |j| j["status"] == "failed")
        .await;
    assert_eq!(job["status"], "failed", "{job}");
    let last = failed(&mut sub).await;
    assert_eq!(
        last.message.as_deref(),
        Some("ValueError: the ledger is closed"),
        "{last:?}"
    );

    // A long error goes out as the row keeps it (cut to 16 KiB), not whole.
    let (s, b) = h.submit(&app, json!({"why": "x", "times": 100_000})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let job = h
        .wait_job(b["job_id"].as_str().unwrap(), |j| j["status"] == "failed")
        .await;
    let kept = job["error_message"].as_str().unwrap().to_owned();
    assert!(kept.len() < 20_000, "{}", kept.len());
    let last = failed(&mut sub).await;
    assert_eq!(last.message.as_deref(), Some(kept.as_str()));
}

/// The next `failed` event on `sub` (5 s at most).
async fn failed(sub: &mut async_nats::Subscriber) -> JobProgress {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .expect("the final event within 5 s")
            .unwrap();
        let ev: nr_contracts::Envelope<JobProgress> = nr_contracts::decode(&m.payload).unwrap();
        if ev.data.status == JobStatus::Failed {
            return ev.data;
        }
    }
}

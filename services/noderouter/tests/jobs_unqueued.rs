//! Jobs the platform could not take or start: a submit the job queue refused (503) is
//! not run and does not keep its Idempotency-Key (the client's retry with the same key,
//! which is what the key is for, queues the job rather than being answered with the
//! refused one); a job whose runs the platform cannot start waits, uncounted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Harness;
use nr_testkit::{app_name, manifest};
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submit_the_queue_refused_is_retried_under_the_same_idempotency_key() {
    use async_nats::jetstream::stream::DiscardPolicy;
    let h = Harness::start().await;
    let app = app_name("unqueued");
    let main = "def execute(data, conn=None):\n    return {\"n\": data.get(\"n\")}\n";
    let zip = nr_testkit::zip_files(&[
        ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
        ("main.py", main),
    ]);
    let (s, b) = h.deploy(&format!("{app}.zip"), zip).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let submit = || async {
        let r = h
            .http
            .post(format!("{}/api/async/{app}", h.url))
            .header("Idempotency-Key", "order-7")
            .json(&json!({"n": 7}))
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json::<Value>().await.unwrap_or(Value::Null))
    };

    // The jobs stream refuses every message (a full stream).
    let js = async_nats::jetstream::new(h.nats_client().await);
    let mut stream = js
        .get_stream(nr_contracts::subjects::STREAM_JOBS)
        .await
        .unwrap();
    let open = stream.info().await.unwrap().config.clone();
    js.update_stream(async_nats::jetstream::stream::Config {
        max_bytes: 1,
        discard: DiscardPolicy::New,
        ..open.clone()
    })
    .await
    .unwrap();
    let (s, b) = submit().await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{b}");
    assert!(
        b["error"]
            .as_str()
            .unwrap_or("")
            .contains("job queue is unavailable"),
        "{b}"
    );

    js.update_stream(open).await.unwrap();
    let (s, b) = submit().await;
    assert_eq!(
        s,
        StatusCode::ACCEPTED,
        "the retry was answered with the refused submit: {b}"
    );
    let id = b["job_id"].as_str().unwrap().to_owned();
    let done = h
        .wait_job(&id, |j| {
            j["status"] == "completed" || j["status"] == "failed"
        })
        .await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["result"], json!({"n": 7}), "{done}");
    // A second retry finds that job.
    let (s, b) = submit().await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["job_id"], id.as_str(), "{b}");
}

/// The app's database connection cannot be opened (here its module points
/// `DATABASE_URL` at a closed port): the worker says so before `execute` runs.
const NO_DATABASE: &str = r#"import os
os.environ["DATABASE_URL"] = "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2"

def execute(data, conn=None):
    return {"ran": True}
"#;

/// A job the platform cannot start waits for it without using up its attempts (it
/// failed "gave up after 3 attempts" within about two seconds before), says why while
/// it waits, and can be cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_the_platform_cannot_start_waits_without_using_up_its_attempts() {
    let h = Harness::start().await;
    let app = app_name("nodb");
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
            ("main.py", NO_DATABASE),
        ],
    )
    .await;
    let (s, b) = h.submit(&app, json!({})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let id = b["job_id"].as_str().unwrap().to_owned();
    // Three runs and the retry after the third written (waits of 1 s, then 2 s).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(25);
    let job = loop {
        let job = h.job(&id).await;
        let waiting = job["status"] == "pending" && job["attempt"].as_i64() >= Some(3);
        if waiting || job["status"] == "failed" || std::time::Instant::now() > deadline {
            break job;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(job["status"], "pending", "{job}");
    let (attempt, max) = (
        job["attempt"].as_i64().unwrap(),
        job["max_attempts"].as_i64().unwrap(),
    );
    assert_eq!(max - attempt, 3, "every run so far uncounted: {job}");
    let why = job["error_message"].as_str().unwrap_or_default();
    assert!(why.contains("database connection unavailable"), "{job}");
    let r = h
        .http
        .delete(format!("{}/api/async/jobs/{id}", h.url))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let job = h.wait_job(&id, |j| j["status"] != "pending").await;
    assert_eq!(job["status"], "cancelled", "{job}");
}

//! A submit the job queue refused (503) is not run and does not keep its
//! Idempotency-Key: the client's retry with the same key, which is what the key is for,
//! queues the job rather than being answered with the refused one.

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

//! The schedule and webhook examples deploy cleanly (no warnings) and work end to end:
//! `examples/nightly_report` writes a report when run and hands its CSV out as a
//! download link; `examples/webhook_receiver` takes a signed delivery, refuses its
//! replay and lists it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Harness;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn example(name: &str) -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name);
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

async fn deploy_clean(h: &Harness, name: &str) {
    let files = example(name);
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, c)| (n.as_str(), c.as_str()))
        .collect();
    let b = h.deploy_ok(name, &refs).await;
    let warnings = b["warnings"]
        .as_array()
        .expect("the deploy lists its warnings");
    assert!(warnings.is_empty(), "{name} deployed with warnings: {b}");
}

#[tokio::test]
async fn the_nightly_report_example_reports_and_exports_a_csv_link() {
    let h = Harness::start().await;
    deploy_clean(&h, "nightly_report").await;
    // What the schedule's run does, as a job with the schedule's payload.
    let (s, b) = h
        .submit("nightly_report", json!({"action": "report", "days": 1}))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let id = b["job_id"].as_str().unwrap().to_owned();
    let done = h.wait_job(&id, |j| j["status"] == "completed").await;
    assert_eq!(done["status"], "completed", "{done}");
    let r = h
        .http
        .get(format!("{}/apps/nightly_report/api/reports.csv", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let link: Value = r.json().await.unwrap();
    assert_eq!(link["name"], "nightly-reports.csv");
    let r = reqwest::get(format!(
        "{}{}",
        h.url,
        link["download_url"].as_str().unwrap()
    ))
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["content-disposition"],
        "attachment; filename=\"nightly-reports.csv\""
    );
    let csv = r.text().await.unwrap();
    assert!(csv.starts_with("id,tick,late\n1,manual,false\n"), "{csv}");
}

#[tokio::test]
async fn the_webhook_receiver_example_takes_a_signed_delivery_once() {
    let h = Harness::start().await;
    deploy_clean(&h, "webhook_receiver").await;
    let r = h
        .http
        .put(format!("{}/admin/api/apps/webhook_receiver/env", h.url))
        .json(&json!({"name": "GITHUB_WEBHOOK_SECRET", "value": "example-secret", "secret": true}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let body = br#"{"ref":"main"}"#;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"example-secret").unwrap();
    mac.update(body);
    let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let send = || {
        reqwest::Client::new()
            .post(format!("{}/apps/webhook_receiver/api/github", h.url))
            .header("content-type", "application/json")
            .header("x-hub-signature-256", &sig)
            .header("x-github-delivery", "delivery-1")
            .header("x-github-event", "push")
            .body(body.to_vec())
            .send()
    };
    let r = send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let r = send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let r = h
        .http
        .get(format!("{}/apps/webhook_receiver/api/events", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let events = r.text().await.unwrap();
    assert!(
        events.contains("delivery-1") && events.contains("push"),
        "{events}"
    );
}

//! The runner's second NATS user (`runner_jobs`): job deliveries reach the runner on it,
//! and it may answer no request, so nats-server keeps no reply entry per delivered job
//! (see `nr_config::nats_auth`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Harness, Role};
use futures::StreamExt;
use nr_testkit::{app_name, manifest};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Whether a client as `role`, sent a request on `subject` (one it may read), can answer it.
async fn answers(h: &Harness, role: Role, subject: &str) -> bool {
    let responder = h.nats_as(role).await;
    let mut requests = responder.subscribe(subject.to_owned()).await.unwrap();
    h.nats.subscribed(&responder, subject).await;
    let answering = tokio::spawn(async move {
        while let Some(m) = requests.next().await {
            if let Some(reply) = m.reply {
                let _ = responder.publish(reply, "answer".into()).await;
                let _ = responder.flush().await;
            }
        }
    });
    let asker = h.nats_client().await;
    let request = async_nats::Request::new()
        .payload("question".into())
        .timeout(Some(Duration::from_millis(1500)));
    let answered = asker
        .send_request(subject.to_owned(), request)
        .await
        .is_ok_and(|m| m.payload.as_ref() == b"answer");
    answering.abort();
    answered
}

/// `(out_msgs, connected)` of the connection NATS authorized as `user`: the messages the
/// server delivered to it.
async fn delivered_to(h: &Harness, user: &str) -> (u64, bool) {
    let connz: Value = reqwest::get(format!("{}/connz?auth=true&limit=1024", h.nats.monitor_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let conns = connz["connections"].as_array().cloned().unwrap_or_default();
    let mine: Vec<&Value> = conns
        .iter()
        .filter(|c| c["authorized_user"] == user)
        .collect();
    let out = mine.iter().filter_map(|c| c["out_msgs"].as_u64()).sum();
    (out, !mine.is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_deliveries_reach_the_runner_on_its_jobs_user_which_answers_no_request() {
    let h = Harness::start().await;
    let app = app_name("jobsuser");
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
            (
                "main.py",
                "def execute(data, conn=None):\n    return {'n': data.get('n')}\n",
            ),
        ],
    )
    .await;
    let (runner_before, _) = delivered_to(&h, "runner").await;
    let (jobs_before, connected) = delivered_to(&h, "runner_jobs").await;
    assert!(connected, "the runner has no connection as runner_jobs");

    let jobs = 20;
    let mut ids = Vec::new();
    for n in 0..jobs {
        let (status, body) = h.submit(&app, json!({ "n": n })).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        ids.push(body["job_id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        let job = h.wait_job(id, |j| j["status"] == "completed").await;
        assert_eq!(job["status"], "completed", "{job}");
    }
    let (runner_after, _) = delivered_to(&h, "runner").await;
    let (jobs_after, _) = delivered_to(&h, "runner_jobs").await;
    assert!(
        jobs_after - jobs_before >= jobs,
        "{} messages reached runner_jobs for {jobs} jobs",
        jobs_after - jobs_before
    );
    assert!(
        runner_after - runner_before < jobs,
        "{} messages reached the runner's answering user during {jobs} jobs",
        runner_after - runner_before
    );

    // The answering user may reply to a request it received; the jobs user may not.
    assert!(answers(&h, Role::Runner, "_INBOX_runner.probe").await);
    assert!(!answers(&h, Role::RunnerJobs, "_INBOX_runner_jobs.probe").await);
}

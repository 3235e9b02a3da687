//! A runner whose `RUNNER_SECRET` differs from the gateways': the call it refuses (before
//! running anything) goes to another runner, a call every runner refuses fails saying
//! why, and the refusing runner's readiness names the key.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{Harness, Role, RUNNER_SECRET};
use futures::StreamExt;
use nr_auth::signing::{sign, Keys, Verifier, HEADER_SIG};
use nr_testkit::{app_name, manifest};
use reqwest::StatusCode;
use serde_json::json;

/// Deploys an app no runner of the platform serves (it runs with `--runners 0`).
async fn deployed(h: &Harness) -> String {
    let app = app_name("keyed");
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
            ("main.py", "def execute(data, conn=None):\n    return {}\n"),
        ],
    )
    .await;
    app
}

/// What a runner with another key answers: 401, unsigned, nothing run.
async fn refuse(client: &async_nats::Client, req: &async_nats::Message) {
    let mut h = async_nats::HeaderMap::new();
    h.insert("Nr-Status", "401");
    let body = json!({"error": "runner refused the request: the request's signature does not match", "code": "unauthorized"});
    client
        .publish_with_headers(req.reply.clone().unwrap(), h, body.to_string().into())
        .await
        .unwrap();
    client.flush().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_a_runner_refused_for_its_key_runs_on_another_runner() {
    let h = Harness::start_with(&["--runners", "0"]).await;
    let app = deployed(&h).await;
    let subject = format!("runner.exec.{app}");
    let good = h.nats_as(Role::Runner).await;
    let wrong = h.nats_as(Role::Runner).await;
    let mut refusing = wrong
        .queue_subscribe(subject.clone(), "nr-runners".into())
        .await
        .unwrap();
    h.nats.subscribed(&wrong, &subject).await;
    let serving = {
        let subject = subject.clone();
        tokio::spawn(async move {
            // The first request reaches the runner with the wrong key alone; by the time
            // it refuses, the right runner has taken its place.
            let first = refusing.next().await.unwrap();
            let mut requests = good
                .queue_subscribe(subject.clone(), "nr-runners".into())
                .await
                .unwrap();
            good.flush().await.unwrap();
            refusing.unsubscribe().await.unwrap();
            wrong.flush().await.unwrap();
            refuse(&wrong, &first).await;
            let verifier = Verifier::new(Keys::parse(Some(RUNNER_SECRET)));
            let req = requests.next().await.unwrap();
            let accepted = verifier
                .verify(&req.subject, &req.payload, req.headers.as_ref())
                .unwrap()
                .unwrap();
            let body = br#"{"by": "the right runner"}"#;
            let mut h = async_nats::HeaderMap::new();
            h.insert("Nr-Status", "200");
            h.insert(
                HEADER_SIG,
                verifier
                    .sign_reply(&accepted, "200", body)
                    .unwrap()
                    .as_str(),
            );
            good.publish_with_headers(req.reply.unwrap(), h, body.to_vec().into())
                .await
                .unwrap();
            good.flush().await.unwrap();
        })
    };
    let (status, body) = h.sync(&app, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["by"], "the right runner", "{body}");
    serving.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_every_runner_refuses_fails_naming_the_key_after_a_few_tries() {
    let h = Harness::start_with(&["--runners", "0"]).await;
    let app = deployed(&h).await;
    let subject = format!("runner.exec.{app}");
    let wrong = h.nats_as(Role::Runner).await;
    let mut requests = wrong
        .queue_subscribe(subject.clone(), "nr-runners".into())
        .await
        .unwrap();
    h.nats.subscribed(&wrong, &subject).await;
    let seen = Arc::new(AtomicUsize::new(0));
    let counted = seen.clone();
    let refusing = tokio::spawn(async move {
        while let Some(req) = requests.next().await {
            counted.fetch_add(1, Ordering::SeqCst);
            refuse(&wrong, &req).await;
        }
    });
    let (status, body) = h.sync(&app, json!({})).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("refused this gateway's signature 4 times")
            && error.contains("RUNNER_SECRET"),
        "{body}"
    );
    assert_eq!(seen.load(Ordering::SeqCst), 4);
    refusing.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_refusing_the_gateways_signatures_is_not_ready_and_says_why() {
    // This platform's runner has another key than the requests signed below.
    let h = Harness::start_with(&["--runner-secret", "another-runner-secret-0123456789"]).await;
    let app = deployed(&h).await;
    let ready = || async {
        let r = reqwest::get(format!("{}/readyz", h.url)).await.unwrap();
        (r.status(), r.text().await.unwrap())
    };
    let (s, text) = ready().await;
    assert_eq!(s, StatusCode::OK, "{text}");
    let subject = format!("runner.exec.{app}");
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nr-App-Rev", "0");
    headers.insert("Nr-Request-Id", "req-keys");
    let stamp = sign(&Keys::parse(Some(RUNNER_SECRET)), &subject, &headers, b"{}").unwrap();
    headers.insert(HEADER_SIG, stamp.value());
    let admin = h.nats_client().await;
    let reply = admin
        .request_with_headers(subject, headers, "{}".into())
        .await
        .unwrap();
    let status = reply
        .headers
        .as_ref()
        .and_then(|h| h.get("Nr-Status"))
        .map(|v| v.to_string());
    assert_eq!(status.as_deref(), Some("401"));
    let (s, text) = ready().await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{text}");
    assert!(
        text.contains("refused 1 runner request(s)") && text.contains("RUNNER_SECRET differs"),
        "{text}"
    );
}

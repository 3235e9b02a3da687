//! Runners' heartbeats (`runner.alive`): a runner names the bus calls it holds once a
//! second, and a gateway answers 502 within seconds a call whose runner went silent, or
//! whose runner let it go without its answer arriving, instead of waiting out the call's
//! time limit. A call still named is waited for to the end.
//!
//! The runner that takes the calls here is a NATS client with the runner's credentials
//! and key that speaks the protocol step by step (the real gateway and NATS, a runner
//! that dies or loses a reply on cue); the last test checks that the real runner names
//! what it holds.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{Harness, Role, RUNNER_SECRET};
use futures::StreamExt;
use nr_auth::signing::{Keys, Verifier, HEADER_SIG};
use nr_testkit::{app_name, manifest};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// How the stand-in runner behaves once it holds the call.
#[derive(Clone, Copy)]
enum Script {
    /// Names the call in two beats, then goes silent (dies).
    Dies,
    /// Names the call in one beat, then beats without it and never answers (the
    /// reply lost on the way).
    LosesTheReply,
    /// Names the call for `n` beats, then answers it.
    AnswersAfter(u32),
}

/// Deploys an app with a 60 s time limit on a platform without runners of its own, and
/// a stand-in runner that takes its calls and follows `script`.
async fn platform_with_stand_in(script: Script) -> (Harness, String) {
    let h = Harness::start_with(&["--runners", "0"]).await;
    let app = app_name("alive");
    h.deploy_ok(
        &app,
        &[
            (
                "manifest.json",
                &manifest(&app, "1.0.0", json!({"timeout_s": 60})),
            ),
            ("main.py", "def execute(d):\n    return {}\n"),
        ],
    )
    .await;
    let runner = h.nats_as(Role::Runner).await;
    let subject = format!("runner.exec.{app}");
    let mut requests = runner
        .queue_subscribe(subject.clone(), "nr-runners".into())
        .await
        .unwrap();
    h.nats.subscribed(&runner, &subject).await;
    tokio::spawn(async move {
        let verifier = Verifier::new(Keys::parse(Some(RUNNER_SECRET)));
        let Some(req) = requests.next().await else {
            return;
        };
        let accepted = verifier
            .verify(&req.subject, &req.payload, req.headers.as_ref())
            .unwrap()
            .unwrap();
        let rid = req.headers.as_ref().unwrap().get("Nr-Request-Id").unwrap();
        let rid = rid.as_str().to_owned();
        let beat = |named: bool| {
            let payload = if named {
                format!("stand-in\n{rid}")
            } else {
                "stand-in".to_owned()
            };
            runner.publish("runner.alive", payload.into())
        };
        match script {
            Script::Dies => {
                for _ in 0..2 {
                    beat(true).await.unwrap();
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            Script::LosesTheReply => {
                beat(true).await.unwrap();
                for _ in 0..30 {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    beat(false).await.unwrap();
                }
            }
            Script::AnswersAfter(n) => {
                for _ in 0..n {
                    beat(true).await.unwrap();
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                let body = br#"{"answered": true}"#;
                let mut headers = async_nats::HeaderMap::new();
                headers.insert("Nr-Status", "200");
                let sig = verifier.sign_reply(&accepted, "200", body).unwrap();
                headers.insert(HEADER_SIG, sig.as_str());
                runner
                    .publish_with_headers(req.reply.unwrap(), headers, body.as_slice().into())
                    .await
                    .unwrap();
            }
        }
        runner.flush().await.unwrap();
    });
    (h, app)
}

async fn timed_call(h: &Harness, app: &str) -> (StatusCode, Value, Duration) {
    let started = Instant::now();
    let call = h.sync(app, json!({}));
    let (status, body) = tokio::time::timeout(Duration::from_secs(40), call)
        .await
        .expect("the call still waits after 40 s");
    (status, body, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_runner_goes_silent_ends_502_within_seconds() {
    let (h, app) = platform_with_stand_in(Script::Dies).await;
    let (status, body, took) = timed_call(&h, &app).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["code"], "bad_gateway", "{body}");
    let error = body["error"].as_str().unwrap_or("");
    assert!(error.contains("stopped before answering"), "{body}");
    assert!(error.contains("may have run"), "{body}");
    // Silent after ~1 s, judged gone 5 s later: far from the 60 s time limit.
    assert!(took < Duration::from_secs(12), "answered after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_let_go_without_its_answer_ends_502() {
    let (h, app) = platform_with_stand_in(Script::LosesTheReply).await;
    let (status, body, took) = timed_call(&h, &app).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or("")
            .contains("lost on the way"),
        "{body}"
    );
    assert!(took < Duration::from_secs(12), "answered after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_its_runner_keeps_naming_is_waited_for_to_its_answer() {
    let (h, app) = platform_with_stand_in(Script::AnswersAfter(9)).await;
    let (status, body, took) = timed_call(&h, &app).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"answered": true}));
    assert!(took >= Duration::from_secs(8), "answered after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_names_the_calls_it_holds_in_its_heartbeats() {
    let h = Harness::start_with(&["--bus-calls"]).await;
    let app = app_name("named");
    let main = "import time\ndef execute(data, conn=None):\n    time.sleep(data.get('sleep', 0))\n    return {'slept': True}\n";
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
            ("main.py", main),
        ],
    )
    .await;
    let admin = h.nats_client().await;
    let mut beats = admin.subscribe("runner.alive").await.unwrap();
    h.nats.subscribed(&admin, "runner.alive").await;
    let rid = format!("held-{}", uuid::Uuid::new_v4().simple());
    let call = {
        let (http, url, rid) = (
            h.http.clone(),
            format!("{}/api/sync/{app}", h.url),
            rid.clone(),
        );
        tokio::spawn(async move {
            let res = http
                .post(url)
                .header("X-Request-Id", rid)
                .json(&json!({"sleep": 3}))
                .send()
                .await
                .unwrap();
            (
                res.status(),
                res.json::<Value>().await.unwrap_or(Value::Null),
            )
        })
    };
    let mut named = false;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !named && Instant::now() < deadline {
        let Ok(Some(msg)) = tokio::time::timeout(Duration::from_secs(2), beats.next()).await else {
            continue;
        };
        let text = String::from_utf8_lossy(&msg.payload).into_owned();
        named = text.lines().skip(1).any(|l| l == rid);
    }
    assert!(named, "no heartbeat named the call {rid}");
    let (status, body) = call.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    // Once answered, the call is no longer named: skip the beats sent until just after
    // the answer, then read fresh ones.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(20), beats.next()).await {}
    let mut still = false;
    for _ in 0..2 {
        if let Ok(Some(msg)) = tokio::time::timeout(Duration::from_secs(2), beats.next()).await {
            still |= String::from_utf8_lossy(&msg.payload)
                .lines()
                .any(|l| l == rid);
        }
    }
    assert!(!still, "the answered call {rid} is still named");
}

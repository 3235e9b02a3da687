//! How calls reach the runner, against real NATS, Postgres and Python workers: with a
//! runner secret only signed, fresh, untampered requests run (the old key too, during a
//! rotation), and a call that waited past its time limit says whether it ran (504 after
//! a wait, 503 when it never got a worker) and never runs later.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::Harness;
use nr_testkit::{app_name, manifest};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_runner_secret_only_signed_fresh_untampered_requests_run() {
    use nr_auth::signing::{sign, Keys, HEADER_SIG};
    // Rotation: the gateway signs with the new key; runners accept the new and the old.
    let h =
        Harness::start_with(&["--runner-secret", "new-key-0123456789,old-key-0123456789"]).await;
    let app = app_name("signed");
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
            ("main.py", "def execute(d):\n    return {'ran': True}\n"),
        ],
    )
    .await;
    assert_eq!(
        h.sync(&app, json!({})).await.0,
        StatusCode::OK,
        "the gateway stamps its requests"
    );

    let nats = h.nats_client().await;
    let subject = format!("runner.exec.{app}");
    let status = |m: &async_nats::Message| {
        m.headers
            .as_ref()
            .and_then(|h| h.get("Nr-Status"))
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default()
    };
    let ask = |headers: async_nats::HeaderMap, body: &'static str| {
        let nats = nats.clone();
        let subject = subject.clone();
        async move {
            nats.request_with_headers(subject, headers, body.into())
                .await
                .unwrap()
        }
    };
    let stamped = |keys: &str, body: &[u8]| {
        let mut h = async_nats::HeaderMap::new();
        let stamp = sign(&Keys::parse(Some(keys)), &subject, &h.clone(), body).unwrap();
        h.insert(HEADER_SIG, stamp.value());
        h
    };

    assert_eq!(
        status(&ask(async_nats::HeaderMap::new(), "{}").await),
        "401",
        "unsigned"
    );
    let old = stamped("old-key-0123456789", b"{}");
    assert_eq!(
        status(&ask(old.clone(), "{}").await),
        "200",
        "a key being rotated out still verifies"
    );
    assert_eq!(status(&ask(old, "{}").await), "401", "replayed");
    let tampered = stamped("new-key-0123456789", b"{}");
    assert_eq!(
        status(&ask(tampered, "{\"x\":1}").await),
        "401",
        "tampered body"
    );
    assert_eq!(
        status(&ask(stamped("wrong-key", b"{}"), "{}").await),
        "401",
        "unknown key"
    );
    // A gateway of the previous release (three headers) while runners are upgraded
    // first: served, and answered in its own reply scheme.
    let mut legacy = async_nats::HeaderMap::new();
    let keys = Keys::parse(Some("new-key-0123456789"));
    for (k, v) in nr_auth::signing::legacy::sign(&keys, &subject, &legacy.clone(), b"{}").unwrap() {
        legacy.insert(k, v.as_str());
    }
    let nonce = legacy
        .get(nr_auth::signing::legacy::HEADER_NONCE)
        .unwrap()
        .as_str()
        .to_owned();
    let reply = ask(legacy.clone(), "{}").await;
    assert_eq!(status(&reply), "200", "previous release's signature");
    let sig = reply
        .headers
        .as_ref()
        .unwrap()
        .get(HEADER_SIG)
        .unwrap()
        .as_str()
        .to_owned();
    assert_eq!(
        Some(sig),
        nr_auth::signing::legacy::sign_reply(&keys, &nonce, "200", &reply.payload),
        "the reply is signed the way that gateway checks"
    );
    assert_eq!(
        status(&ask(legacy, "{}").await),
        "401",
        "replayed, previous release"
    );
    let mut stale = stamped("new-key-0123456789", b"{}");
    let old_ms = (time::OffsetDateTime::now_utc().unix_timestamp() - 120) * 1000;
    // `<ts>.<nonce>.<mac>` with the time moved back two minutes.
    let fresh = stale.get(HEADER_SIG).unwrap().as_str().to_owned();
    let (_, nonce_mac) = fresh.split_once('.').unwrap();
    stale.insert(HEADER_SIG, format!("{old_ms}.{nonce_mac}").as_str());
    let reply = ask(stale, "{}").await;
    assert_eq!(status(&reply), "401", "stale");
    let body: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("runner refused"),
        "{body}"
    );
}

/// With one worker, calls queue for it within their time limit: one that got the worker
/// late and was stopped says how long it waited (504), one that never got it did not run
/// and says so (503, safe to retry; it was a bare 504 "did not answer" before), and none
/// that was answered runs later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_queued_past_their_time_limit_say_whether_they_ran_and_never_run_later() {
    let h = Arc::new(Harness::start_with(&["--pool-size", "1"]).await);
    let app = app_name("queued");
    let main = format!(
        r#"
import time
def execute(data, conn=None):
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS {app}_runs (n INT)")
        cur.execute("INSERT INTO {app}_runs VALUES (%s)", (data["n"],))
    conn.commit()
    time.sleep(0.8)
    return {{"n": data["n"]}}
"#
    );
    h.deploy_ok(
        &app,
        &[
            (
                "manifest.json",
                &manifest(&app, "1.0.0", json!({"timeout_s": 1})),
            ),
            ("main.py", &main),
        ],
    )
    .await;
    let calls: Vec<_> = (0..6)
        .map(|n| {
            let (h, app) = (h.clone(), app.clone());
            tokio::spawn(async move { h.sync(&app, json!({"n": n})).await })
        })
        .collect();
    let mut answers = Vec::new();
    for c in calls {
        answers.push(c.await.unwrap());
    }
    let count = |status| answers.iter().filter(|(s, _)| *s == status).count();
    let (ok, stopped, not_run) = (
        count(StatusCode::OK),
        count(StatusCode::GATEWAY_TIMEOUT),
        count(StatusCode::SERVICE_UNAVAILABLE),
    );
    assert_eq!(ok + stopped + not_run, 6, "{answers:?}");
    assert!(ok >= 1 && not_run >= 1, "{answers:?}");
    let texts = |status| {
        answers
            .iter()
            .filter(move |(s, _)| *s == status)
            .map(|(_, b)| b["error"].as_str().unwrap_or_default().to_owned())
    };
    for text in texts(StatusCode::SERVICE_UNAVAILABLE) {
        assert!(
            text.contains("had no free worker within its time limit of 1 s")
                && text.contains("the call did not run")
                && text.contains("NR_RUNNER_POOL"),
            "{text}"
        );
    }
    // The call that got the worker after the first one's 0.8 s ran 0.2 s of its second.
    assert!(
        texts(StatusCode::GATEWAY_TIMEOUT)
            .any(|t| t.contains("of which it waited for a free worker")),
        "{answers:?}"
    );
    // Nothing answered while queued runs later, and no 503 ran at all.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pool = common::app_tables(&h).await;
    let (runs,): (i64,) = sqlx::query_as(&format!("SELECT count(*) FROM {app}_runs"))
        .fetch_one(&pool)
        .await
        .unwrap();
    let runs = usize::try_from(runs).unwrap();
    assert!(
        (ok..=ok + stopped).contains(&runs),
        "{runs} calls ran for {ok} answered 200 and {stopped} stopped: {answers:?}"
    );
}

//! The bus has locks: NATS refuses clients without credentials, each service's user may
//! publish and subscribe only what its role owns (`nr_config::nats_auth`), outside
//! systems read events with read-only credentials, and runner requests and replies are
//! signed, covered header by header, and accepted once across all runners.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use async_nats::jetstream::consumer;
use common::{Harness, Role, RUNNER_SECRET};
use futures::StreamExt;
use nr_auth::signing::{sign, Keys, HEADER_SIG};
use nr_testkit::{app_name, manifest};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// A client as `role` and the server errors (permission violations) it receives.
async fn watched(h: &Harness, role: Role) -> (async_nats::Client, mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let client = h
        .nats
        .options(role)
        .event_callback(move |event| {
            let tx = tx.clone();
            async move {
                if let async_nats::Event::ServerError(e) = event {
                    let _ = tx.send(e.to_string());
                }
            }
        })
        .connect(h.nats.url.as_str())
        .await
        .unwrap();
    (client, rx)
}

/// Waits for a permissions violation naming `subject`.
async fn refused(rx: &mut mpsc::UnboundedReceiver<String>, subject: &str) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while let Ok(Some(e)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        if e.to_lowercase().contains("permissions violation") && e.contains(subject) {
            return true;
        }
    }
    false
}

/// Publishes on `subject` as `role`; true when the server refused it and an operator
/// listening on the subject saw nothing.
async fn publish_refused(h: &Harness, role: Role, subject: &str) -> bool {
    let observer = h.nats_client().await;
    let mut seen = observer.subscribe(subject.to_owned()).await.unwrap();
    h.nats.subscribed(&observer, subject).await;
    let (client, mut errors) = watched(h, role).await;
    client
        .publish(subject.to_owned(), "forged".into())
        .await
        .unwrap();
    client.flush().await.unwrap();
    let violation = refused(&mut errors, subject).await;
    let delivered = tokio::time::timeout(Duration::from_millis(300), seen.next())
        .await
        .is_ok();
    violation && !delivered
}

async fn deploy_counter(h: &Harness) -> String {
    let app = app_name("counted");
    let main = format!(
        "def execute(data, conn=None):\n\
         \x20   with conn.cursor() as cur:\n\
         \x20       cur.execute('CREATE TABLE IF NOT EXISTS {app}_runs (n INT)')\n\
         \x20       cur.execute('INSERT INTO {app}_runs VALUES (1)')\n\
         \x20   conn.commit()\n\
         \x20   return {{'ran': True}}\n"
    );
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
            ("main.py", &main),
        ],
    )
    .await;
    app
}

async fn runs(h: &Harness, app: &str) -> i64 {
    // The app's table is in its own schema (one Postgres role and schema per app).
    let pool = common::app_tables(h).await;
    let (n,): (i64,) = sqlx::query_as(&format!("SELECT count(*) FROM {app}_runs"))
        .fetch_one(&pool)
        .await
        .unwrap();
    n
}

fn status_of(m: &async_nats::Message) -> String {
    m.headers
        .as_ref()
        .and_then(|h| h.get("Nr-Status"))
        .map(|v| v.as_str().to_owned())
        .unwrap_or_default()
}

/// A runner request signed with the platform's key, as the gateway would send it.
fn signed_request(subject: &str, rev: &str, body: &[u8]) -> async_nats::HeaderMap {
    let mut h = async_nats::HeaderMap::new();
    h.insert("Nr-App-Rev", rev);
    h.insert("Nr-Request-Id", "req-1");
    let stamp = sign(&Keys::parse(Some(RUNNER_SECRET)), subject, &h, body).unwrap();
    h.insert(HEADER_SIG, stamp.value());
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_credentials_or_with_a_wrong_password_is_refused() {
    let h = Harness::start().await;
    assert!(
        async_nats::connect(&h.nats.url).await.is_err(),
        "an anonymous client connected"
    );
    let wrong =
        async_nats::ConnectOptions::with_user_and_password("gateway".into(), "guess".into())
            .connect(h.nats.url.as_str())
            .await;
    assert!(wrong.is_err(), "a wrong password connected");
    // The platform itself is up and serving on its own credentials.
    let app = deploy_counter(&h).await;
    assert_eq!(h.sync(&app, json!({})).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_owner_of_a_control_subject_may_publish_on_it() {
    let h = Harness::start().await;
    let app = deploy_counter(&h).await;
    let others = |owner: Role| {
        [
            Role::Gateway,
            Role::Deploy,
            Role::Registry,
            Role::Runner,
            Role::Notify,
            Role::Reader,
        ]
        .into_iter()
        .filter(move |r| *r != owner)
    };
    for role in others(Role::Gateway) {
        assert!(
            publish_refused(&h, role, "rbac.log").await,
            "{role} published a role change"
        );
        assert!(
            publish_refused(&h, role, &format!("runner.exec.{app}")).await,
            "{role} called a runner"
        );
    }
    for role in others(Role::Deploy) {
        assert!(
            publish_refused(&h, role, &format!("app.updated.{app}")).await,
            "{role} republished app.updated"
        );
    }
    for role in others(Role::Runner) {
        // A forged load failure would have deploy undo a good version.
        assert!(
            publish_refused(&h, role, &format!("runner.loaded.{app}")).await,
            "{role} published a runner's load report"
        );
    }
    assert!(publish_refused(&h, Role::Reader, "deploy.delete").await);
    assert!(publish_refused(&h, Role::Runner, "deploy.delete").await);
    // The app is still deployed and ungated: nothing above landed.
    assert_eq!(h.sync(&app, json!({})).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_runners_may_read_runner_requests() {
    let h = Harness::start().await;
    let app = deploy_counter(&h).await;
    for role in [
        Role::Gateway,
        Role::Deploy,
        Role::Registry,
        Role::Notify,
        Role::Reader,
    ] {
        let (client, mut errors) = watched(&h, role).await;
        let mut sub = client.subscribe("runner.exec.>").await.unwrap();
        client.flush().await.unwrap();
        assert!(
            refused(&mut errors, "runner.exec.>").await,
            "{role} subscribed to runner requests"
        );
        assert_eq!(
            h.sync(&app, json!({"secret": "body"})).await.0,
            StatusCode::OK
        );
        let got = tokio::time::timeout(Duration::from_millis(300), sub.next()).await;
        assert!(!matches!(got, Ok(Some(_))), "{role} read a request body");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reader_consumes_actions_and_job_progress_through_jetstream_and_nothing_else() {
    let h = Harness::start().await;
    let app = app_name("bell");
    h.deploy_ok(
        &app,
        &[
            (
                "manifest.json",
                &manifest(&app, "1.0.0", json!({"actions": [{"name": "open", "display_name": "Open"}]})),
            ),
            (
                "main.py",
                "def execute(data, conn=None):\n    return {'ok': True, '_actions': [{'name': 'open', 'payload': {'n': 1}}]}\n",
            ),
        ],
    )
    .await;
    let (s, b) = h.sync(&app, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, job) = h.submit(&app, json!({})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{job}");
    let id = job["job_id"].as_str().unwrap().to_owned();
    let done = h.wait_job(&id, |j| j["status"] == "completed").await;
    assert_eq!(done["status"], "completed", "{done}");

    // The operator provisions a durable pull consumer per outside system (admin)...
    let admin = async_nats::jetstream::new(h.nats_client().await);
    for (stream, filter) in [
        ("NR_ACTIONS", format!("action.triggered.{app}.>")),
        ("NR_JOB_EVENTS", format!("job.progress.{app}.{id}")),
    ] {
        admin
            .get_stream(stream)
            .await
            .unwrap()
            .create_consumer(consumer::pull::Config {
                durable_name: Some("crm".into()),
                filter_subject: filter,
                ..Default::default()
            })
            .await
            .unwrap();
    }
    // ...which the reader reads and acknowledges, resuming where it stopped.
    let js = async_nats::jetstream::new(h.nats_as(Role::Reader).await);
    for (stream, prefix) in [
        ("NR_ACTIONS", format!("action.triggered.{app}.")),
        ("NR_JOB_EVENTS", format!("job.progress.{app}.{id}")),
    ] {
        let stream = js.get_stream(stream).await.unwrap();
        let crm: consumer::PullConsumer = stream.get_consumer("crm").await.unwrap();
        let mut batch = crm.fetch().max_messages(1).messages().await.unwrap();
        let msg = tokio::time::timeout(Duration::from_secs(5), batch.next())
            .await
            .expect("an event within 5 s")
            .unwrap()
            .unwrap();
        assert!(msg.subject.starts_with(prefix.as_str()), "{}", msg.subject);
        msg.ack().await.unwrap();
        // It cannot make consumers of its own (see the deliver-subject test below).
        let own = stream
            .create_consumer(consumer::pull::OrderedConfig::default())
            .await;
        assert!(own.is_err(), "the reader created a consumer");
    }
    for forbidden in ["NR_RBAC", "NR_APPS", "NR_JOBS"] {
        assert!(
            js.get_stream(forbidden).await.is_err(),
            "the reader opened {forbidden}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reader_never_sees_a_reply_meant_for_the_admin() {
    let h = Harness::start_with(&["--runners", "0"]).await;
    // An outside system (every one holds the reader's credentials) listens where NATS
    // clients receive replies by default...
    let (reader, mut errors) = watched(&h, Role::Reader).await;
    let mut snoop = reader.subscribe("_INBOX.>").await.unwrap();
    reader.flush().await.unwrap();
    assert!(
        refused(&mut errors, "_INBOX.>").await,
        "the reader may listen on _INBOX.>"
    );
    // ...while an operator reads the access log as the admin: its events carry password
    // hashes.
    let admin = async_nats::jetstream::new(h.nats_client().await);
    let mut rbac = admin.get_stream("NR_RBAC").await.unwrap();
    let first = rbac.info().await.unwrap().state.first_sequence;
    assert!(rbac.get_raw_message(first).await.is_ok());
    let got = tokio::time::timeout(Duration::from_millis(500), snoop.next()).await;
    assert!(
        !matches!(got, Ok(Some(_))),
        "the reader read an admin reply"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_reply_to_a_runner_request_never_reaches_the_caller() {
    let h = Harness::start_with(&["--runners", "0"]).await;
    let app = app_name("victim");
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
            ("main.py", "def execute(d):\n    return {'real': True}\n"),
        ],
    )
    .await;
    // Whoever answers first: a process with runner credentials but without the key.
    let forger = h.nats_as(Role::Runner).await;
    let mut requests = forger
        .queue_subscribe(format!("runner.exec.{app}"), "nr-runners".into())
        .await
        .unwrap();
    h.nats
        .subscribed(&forger, &format!("runner.exec.{app}"))
        .await;
    let answering = tokio::spawn(async move {
        let mut n = 0;
        while let Some(req) = requests.next().await {
            let mut h = async_nats::HeaderMap::new();
            h.insert("Nr-Status", "200");
            if n == 1 {
                // A signature under another key.
                // The nonce is the middle part of the request's `<ts>.<nonce>.<mac>`.
                let stamp = req.headers.as_ref().unwrap().get(HEADER_SIG).unwrap();
                let nonce = stamp.as_str().split('.').nth(1).unwrap();
                let sig = nr_auth::signing::sign_reply(
                    &Keys::parse(Some("not-the-key")),
                    nonce,
                    "200",
                    b"{\"forged\": true}",
                )
                .unwrap();
                h.insert(HEADER_SIG, sig.as_str());
            }
            forger
                .publish_with_headers(req.reply.unwrap(), h, "{\"forged\": true}".into())
                .await
                .unwrap();
            n += 1;
        }
    });
    for _ in 0..2 {
        let (status, body) = h.sync(&app, json!({})).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
        assert_eq!(body["code"], "bad_gateway", "{body}");
        assert!(body.get("forged").is_none(), "{body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap_or("")
                .contains("failed verification"),
            "{body}"
        );
    }
    answering.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_signed_request_is_served_once_across_two_runners() {
    let h = Harness::start_with(&["--runners", "2"]).await;
    let app = deploy_counter(&h).await;
    assert_eq!(h.sync(&app, json!({})).await.0, StatusCode::OK);
    let before = runs(&h, &app).await;
    let subject = format!("runner.exec.{app}");
    let captured = signed_request(&subject, "0", b"{}");
    let admin = h.nats_client().await;
    let first = admin
        .request_with_headers(subject.clone(), captured.clone(), "{}".into())
        .await
        .unwrap();
    assert_eq!(status_of(&first), "200");
    assert!(
        first.headers.as_ref().unwrap().get(HEADER_SIG).is_some(),
        "the runner signs its replies"
    );
    // The accepted nonce reaches the other runner in a broadcast that follows the reply.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // The queue group spreads the replays over both runners.
    for i in 0..12 {
        let again = admin
            .request_with_headers(subject.clone(), captured.clone(), "{}".into())
            .await
            .unwrap();
        assert_eq!(status_of(&again), "401", "replay {i} was served");
        let body: Value = serde_json::from_slice(&again.payload).unwrap();
        assert!(body["error"].as_str().unwrap().contains("replay"), "{body}");
    }
    assert_eq!(runs(&h, &app).await, before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_with_a_tampered_app_rev_or_request_id_is_refused() {
    let h = Harness::start().await;
    let app = deploy_counter(&h).await;
    let subject = format!("runner.exec.{app}");
    let admin = h.nats_client().await;
    for (name, value) in [("Nr-App-Rev", "999999"), ("Nr-Request-Id", "someone-else")] {
        let mut tampered = signed_request(&subject, "0", b"{}");
        tampered.insert(name, value);
        let reply = admin
            .request_with_headers(subject.clone(), tampered, "{}".into())
            .await
            .unwrap();
        assert_eq!(status_of(&reply), "401", "tampered {name} was served");
        let body: Value = serde_json::from_slice(&reply.payload).unwrap();
        assert!(
            body["error"].as_str().unwrap().contains("signature"),
            "{body}"
        );
    }
    // The same request untampered runs.
    let ok = admin
        .request_with_headers(
            subject.clone(),
            signed_request(&subject, "0", b"{}"),
            "{}".into(),
        )
        .await
        .unwrap();
    assert_eq!(status_of(&ok), "200");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reader_cannot_make_the_server_deliver_events_onto_a_control_subject() {
    let h = Harness::start().await;
    let app = app_name("bell");
    h.deploy_ok(
        &app,
        &[
            (
                "manifest.json",
                &manifest(
                    &app,
                    "1.0.0",
                    json!({"actions": [{"name": "open", "display_name": "Open"}]}),
                ),
            ),
            (
                "main.py",
                "def execute(data, conn=None):\n    return {'ok': True, '_actions': [{'name': 'open', 'payload': {}}]}\n",
            ),
        ],
    )
    .await;
    let observer = h.nats_client().await;
    let mut rbac = observer.subscribe("rbac.log").await.unwrap();
    h.nats.subscribed(&observer, "rbac.log").await;
    let js = async_nats::jetstream::new(h.nats_as(Role::Reader).await);
    let stream = js.get_stream("NR_ACTIONS").await.unwrap();
    let created = stream
        .create_consumer(consumer::push::Config {
            deliver_subject: "rbac.log".into(),
            durable_name: Some("sneaky".into()),
            ..Default::default()
        })
        .await;
    let (s, _) = h.sync(&app, json!({})).await;
    assert_eq!(s, StatusCode::OK);
    assert!(created.is_err(), "the reader created a push consumer");
    let delivered = tokio::time::timeout(Duration::from_secs(2), rbac.next()).await;
    assert!(
        !matches!(delivered, Ok(Some(_))),
        "a reader's push consumer delivered onto rbac.log"
    );
}

//! The reader, the credentials every outside system holds, names the reply subject of
//! its JetStream requests, and no permission checks a reply subject: the server
//! answered a stream lookup onto `app.updated.<app>` (stored in `NR_APPS`: after a
//! restart the app was gone and deploys answered 503), and a pull request replayed an
//! old job event after the job's final one. In an account of its own, the reader's
//! requests are answered in that account, where no stream and no service listens; what
//! it may read still reaches it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use async_nats::jetstream::consumer;
use common::Harness;
use futures::StreamExt;
use nr_config::nats_auth::Role;
use nr_testkit::{app_name, manifest};
use reqwest::StatusCode;
use serde_json::json;

const STREAMS: [&str; 7] = [
    "NR_APPS",
    "NR_APP_ENV",
    "NR_RBAC",
    "NR_SCHEDULES",
    "NR_JOBS",
    "NR_JOB_EVENTS",
    "NR_ACTIONS",
];

async fn stored(js: &async_nats::jetstream::Context) -> Vec<u64> {
    let mut seqs = Vec::new();
    for s in STREAMS {
        let info = js.get_stream(s).await.unwrap().get_info().await.unwrap();
        seqs.push(info.state.last_sequence);
    }
    seqs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readers_requests_cannot_have_the_server_write_into_the_platforms_subjects() {
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
    let (s, b) = h.sync(&app, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, job) = h.submit(&app, json!({})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{job}");
    let id = job["job_id"].as_str().unwrap().to_owned();
    let done = h.wait_job(&id, |j| j["status"] == "completed").await;
    assert_eq!(done["status"], "completed", "{done}");

    // The durable an operator made for an outside system.
    let admin = async_nats::jetstream::new(h.nats_client().await);
    admin
        .get_stream("NR_ACTIONS")
        .await
        .unwrap()
        .create_consumer(consumer::pull::Config {
            durable_name: Some("crm".into()),
            filter_subject: format!("action.triggered.{app}.>"),
            ..Default::default()
        })
        .await
        .unwrap();
    let observer = h.nats_client().await;
    let mut control = observer.subscribe(format!("*.*.{app}")).await.unwrap();
    let mut progress = observer
        .subscribe(format!("job.progress.{app}.>"))
        .await
        .unwrap();
    observer.flush().await.unwrap();
    let before = stored(&admin).await;

    let reader = h.nats_as(Role::Reader).await;
    let attacks = [
        ("$JS.API.INFO", "", format!("app.updated.{app}")),
        (
            "$JS.API.STREAM.INFO.NR_ACTIONS",
            "",
            format!("app.env.{app}"),
        ),
        (
            "$JS.API.STREAM.MSG.GET.NR_JOB_EVENTS",
            r#"{"seq": 1}"#,
            format!("schedule.changed.{app}"),
        ),
        (
            "$JS.API.CONSUMER.INFO.NR_ACTIONS.crm",
            "",
            "rbac.log".to_owned(),
        ),
        (
            "$JS.API.CONSUMER.MSG.NEXT.NR_ACTIONS.crm",
            r#"{"batch": 1}"#,
            format!("job.progress.{app}.{id}"),
        ),
        (
            "$JS.API.CONSUMER.INFO.NR_ACTIONS.crm",
            "",
            format!("job.submitted.{app}"),
        ),
    ];
    for (request, body, reply) in attacks {
        reader
            .publish_with_reply(request, reply, body.as_bytes().to_vec().into())
            .await
            .unwrap();
    }
    reader.flush().await.unwrap();
    for (sub, what) in [
        (&mut control, "a control subject"),
        (&mut progress, "job.progress"),
    ] {
        let got = tokio::time::timeout(Duration::from_secs(1), sub.next()).await;
        assert!(
            !matches!(got, Ok(Some(_))),
            "the server answered the reader onto {what}: {:?}",
            got.ok().flatten().map(|m| m.subject)
        );
    }
    assert_eq!(
        stored(&admin).await,
        before,
        "a stream took a message ({STREAMS:?})"
    );

    // What the reader may read still reaches it: live events and its durable.
    let mut live = reader
        .subscribe(format!("action.triggered.{app}.>"))
        .await
        .unwrap();
    reader.flush().await.unwrap();
    let (s, b) = h.sync(&app, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let event = tokio::time::timeout(Duration::from_secs(5), live.next())
        .await
        .expect("a live event within 5 s")
        .unwrap();
    assert_eq!(
        event.subject.as_str(),
        format!("action.triggered.{app}.open")
    );
    let js = async_nats::jetstream::new(reader);
    let crm: consumer::PullConsumer = js
        .get_stream("NR_ACTIONS")
        .await
        .unwrap()
        .get_consumer("crm")
        .await
        .unwrap();
    let mut batch = crm.fetch().max_messages(1).messages().await.unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(5), batch.next())
        .await
        .expect("a stored event within 5 s")
        .unwrap()
        .unwrap();
    assert!(
        msg.subject.starts_with("action.triggered."),
        "{}",
        msg.subject
    );
    msg.ack().await.unwrap();
}

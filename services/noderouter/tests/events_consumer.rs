//! The outside consumer `docs/events.md` shows ("A Python consumer") works as written:
//! run verbatim with the reader's credentials, as `reader.env` gives them, it reads an
//! action from the durable consumer an operator made, with nats-py.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use async_nats::jetstream::consumer;
use common::{Harness, Role};
use nr_testkit::{app_name, manifest};
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

/// The first ```python block after `heading` in docs/events.md.
fn documented_python(heading: &str) -> String {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/events.md"),
    )
    .unwrap();
    let after = &doc[doc.find(heading).expect("the section is in docs/events.md")..];
    let start = after.find("```python\n").expect("a python block") + "```python\n".len();
    let len = after[start..].find("```").unwrap();
    after[start..start + len].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_python_consumer_reads_actions_with_the_reader_credentials() {
    let h = Harness::start().await;
    let app = app_name("crm");
    h.deploy_ok(
        &app,
        &[
            (
                "manifest.json",
                &manifest(&app, "1.0.0", json!({"actions": [{"name": "lead_won", "display_name": "Lead won"}]})),
            ),
            (
                "main.py",
                "def execute(data, conn=None):\n    return {'ok': True, '_actions': [{'name': 'lead_won', 'payload': {'lead': data.get('lead')}}]}\n",
            ),
        ],
    )
    .await;
    // The operator makes the durable the docs name, with the admin user.
    async_nats::jetstream::new(h.nats_client().await)
        .get_stream("NR_ACTIONS")
        .await
        .unwrap()
        .create_consumer(consumer::pull::Config {
            durable_name: Some("crm-sync".into()),
            filter_subject: format!("action.triggered.{app}.>"),
            ..Default::default()
        })
        .await
        .unwrap();
    let (s, b) = h.sync(&app, json!({"lead": "ACME-42"})).await;
    assert_eq!(s, StatusCode::OK, "{b}");

    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("consumer.py");
    std::fs::write(&script, documented_python("## A Python consumer")).unwrap();
    // What `reader.env` holds, as `set -a; . reader.env` exports it.
    let mut child = tokio::process::Command::new(nr_testkit::python())
        .arg(&script)
        .env("NATS_URL", &h.nats.url)
        .env("NATS_USER", Role::Reader.user())
        .env("NATS_PASSWORD", h.nats.password(Role::Reader))
        .env("NATS_INBOX_PREFIX", Role::Reader.inbox_prefix())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let printed = tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await;
    let _ = child.start_kill();
    let out = child.wait_with_output().await.unwrap();
    let line = match printed {
        Ok(Ok(Some(line))) => line,
        other => panic!(
            "the documented consumer printed no action ({other:?}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    };
    assert!(
        line.starts_with(&format!("action.triggered.{app}.lead_won ")) && line.contains("ACME-42"),
        "{line}"
    );
}

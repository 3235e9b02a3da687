//! What the platform publishes, read from outside: an outside NATS consumer in another
//! (Python) process decodes what an app fired, and every event published validates
//! against the event schemas.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::notify::{bell_app, fire, WAIT};
use common::Harness;
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outside_python_process_decodes_what_an_app_fired() {
    let h = Harness::start().await;
    let app = bell_app(&h).await;
    let script = r#"
import asyncio, json, sys
import msgpack, nats

async def main():
    nc = await nats.connect(sys.argv[1])
    done = asyncio.get_running_loop().create_future()
    async def on_msg(msg):
        event = msgpack.unpackb(msg.data, raw=False)
        if not done.done():
            done.set_result({"subject": msg.subject, "event": event})
    await nc.subscribe("action.triggered.>", cb=on_msg)
    await nc.flush()
    print("ready", flush=True)
    print(json.dumps(await asyncio.wait_for(done, 30)), flush=True)
    await nc.close()

asyncio.run(main())
"#;
    let mut child = tokio::process::Command::new(nr_testkit::python())
        .arg("-c")
        .arg(script)
        // An outside system holds only the read-only credentials.
        .arg(h.nats.url_as(common::Role::Reader))
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let ready = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ready.as_deref(), Some("ready"));

    fire(&h, &app, "open", json!({"deal_id": 42, "amount": 9.5})).await;
    let line = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .expect("the consumer printed the event");
    let got: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(got["subject"], format!("action.triggered.{app}.open"));
    let event = &got["event"];
    assert_eq!(event["type"], "action.triggered");
    assert_eq!(event["data"]["app_name"], app.as_str());
    assert_eq!(event["data"]["action_name"], "open");
    assert_eq!(
        event["data"]["payload"],
        json!({"deal_id": 42, "amount": 9.5})
    );
    assert_eq!(event["data"]["declared"], true);
    assert!(uuid_like(event["id"].as_str().unwrap()), "{event}");
    assert!(child.wait().await.unwrap().success());
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
}

/// Errors of `instance` against `schemas/events/<name>.json`.
fn schema_errors(name: &str, instance: &Value) -> Vec<String> {
    let path = nr_testkit::workspace_root().join(format!("schemas/events/{name}.json"));
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    validator
        .iter_errors(instance)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_platform_publishes_validates_against_the_event_schemas() {
    let h = Harness::start().await;
    let app = bell_app(&h).await;
    let nats = h.nats_client().await;
    let mut events = nats.subscribe("action.triggered.>").await.unwrap();
    let mut jobs = nats.subscribe("job.>").await.unwrap();
    h.nats.subscribed(&nats, "action.triggered.>").await;
    h.nats.subscribed(&nats, "job.>").await;

    fire(&h, &app, "open", json!({"nested": [1, "two", null]})).await;
    let (s, job) = h.submit(&app, json!({"action": "open"})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{job}");
    let id = job["job_id"].as_str().unwrap().to_owned();

    let msg = tokio::time::timeout(WAIT, events.next())
        .await
        .unwrap()
        .unwrap();
    let event: Value = nr_contracts::decode(&msg.payload).unwrap();
    let errs = schema_errors("action.triggered", &event);
    assert!(errs.is_empty(), "{event:#}\n{}", errs.join("\n"));

    let mut seen = std::collections::BTreeSet::new();
    loop {
        let msg = tokio::time::timeout(WAIT, jobs.next())
            .await
            .unwrap()
            .unwrap();
        let event: Value = nr_contracts::decode(&msg.payload).unwrap();
        let kind = event["type"].as_str().unwrap().to_owned();
        if kind != "job.submitted" && kind != "job.progress" {
            continue;
        }
        let errs = schema_errors(&kind, &event);
        assert!(errs.is_empty(), "{event:#}\n{}", errs.join("\n"));
        assert_eq!(event["data"]["job_id"], id.as_str());
        seen.insert(kind);
        if event["data"]["status"] == "completed" {
            break;
        }
    }
    assert!(
        seen.contains("job.submitted") && seen.contains("job.progress"),
        "{seen:?}"
    );
}

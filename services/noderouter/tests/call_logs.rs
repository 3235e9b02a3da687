//! What an app prints and logs during a sync call reaches the platform's log with the
//! app, the call's request id and the stream on every line, capped per call; a job's
//! platform log lines carry the submit's request id and the job id. The platform runs
//! in this process: its log is read from a tracing subscriber writing to memory.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::logs::{capture_platform_log, logged};
use common::Harness;
use nr_testkit::{app_name, manifest};
use reqwest::StatusCode;
use serde_json::{json, Value};

const TALKER: &str = r#"import logging, sys

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s [%(request_id)s] %(message)s")
log = logging.getLogger("talker")

def execute(data, conn=None):
    tag = data["tag"]
    print("to stdout " + tag)
    print("to stderr " + tag, file=sys.stderr)
    log.info("to logging " + tag)
    for i in range(data.get("lines", 0)):
        print("flood %s %04d %s" % (tag, i, "z" * 80))
    if data.get("raise"):
        raise ValueError("boom " + tag)
    return {"ok": True}
"#;

async fn call(h: &Harness, app: &str, rid: &str, body: Value) {
    let r = h
        .http
        .post(format!("{}/api/sync/{app}", h.url))
        .header("x-request-id", rid)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], rid);
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{text}");
}

/// Submits a job under request id `rid` and waits for its end: its id and the job.
async fn submit_and_wait(h: &Harness, app: &str, rid: &str, body: Value) -> (String, Value) {
    let (id, _) = h.submit_as(app, rid, body).await;
    let job = h
        .wait_job(&id, |j| {
            j["status"] == "completed" || j["status"] == "failed"
        })
        .await;
    (id, job)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_calls_output_is_logged_with_its_request_id_and_capped() {
    capture_platform_log();
    let h = Harness::start_with(&["--job-log-bytes", "4096"]).await;
    let app = app_name("talker");
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
            ("main.py", TALKER),
        ],
    )
    .await;

    let (tag, rid) = (app_name("tag"), app_name("rid"));
    call(&h, &app, &rid, json!({"tag": tag})).await;
    for (stream, text) in [
        ("stdout", format!("to stdout {tag}")),
        ("stderr", format!("to stderr {tag}")),
        ("logging", format!("INFO talker [{rid}] to logging {tag}")),
    ] {
        let lines = logged(&text);
        assert_eq!(lines.len(), 1, "{text:?} logged once: {lines:?}");
        let line = &lines[0];
        for field in [
            format!("app={app}"),
            format!("request_id={rid}"),
            format!("stream={stream}"),
        ] {
            assert!(line.contains(&field), "{field} missing in {line}");
        }
    }

    // Over the cap: the first lines are logged, then one marker says what was left out.
    let (tag, rid) = (app_name("flood"), app_name("rid"));
    call(&h, &app, &rid, json!({"tag": tag, "lines": 200})).await;
    let flood = logged(&format!("flood {tag} "));
    assert!(flood.len() > 10, "the first lines are logged: {flood:?}");
    assert!(
        flood.len() < 200,
        "{} lines logged past the cap",
        flood.len()
    );
    assert!(flood[0].contains(&format!("flood {tag} 0000")), "{flood:?}");
    assert!(flood
        .iter()
        .all(|l| l.contains(&format!("request_id={rid}")) && l.contains(&format!("app={app}"))));
    let marker = logged("output truncated");
    let marker: Vec<_> = marker
        .iter()
        .filter(|l| l.contains(&format!("request_id={rid}")))
        .collect();
    assert_eq!(marker.len(), 1, "{marker:?}");
    assert!(marker[0].contains("over the cap of 4096"), "{}", marker[0]);

    // A job's lines in the platform log carry the submit's request id and the job id.
    let (tag, rid) = (app_name("job"), app_name("rid"));
    let (id, job) = submit_and_wait(&h, &app, &rid, json!({"tag": tag})).await;
    assert_eq!(job["status"], "completed", "{job}");
    let lines = logged(&format!("to stdout {tag}"));
    assert_eq!(lines.len(), 1, "{lines:?}");
    for field in [
        format!("app={app}"),
        format!("request_id={rid}"),
        format!("job_id={id}"),
        "stream=stdout".to_owned(),
        format!("[{rid}] to stdout {tag}"),
    ] {
        assert!(lines[0].contains(&field), "{field} missing in {}", lines[0]);
    }

    // A job that raises: the runner's warning names the job and the submit's request id.
    let (tag, rid) = (app_name("raise"), app_name("rid"));
    let (id, job) = submit_and_wait(&h, &app, &rid, json!({"tag": tag, "raise": true})).await;
    assert_eq!(job["status"], "failed", "{job}");
    let raised: Vec<String> = logged("job raised")
        .into_iter()
        .filter(|l| l.contains(&id))
        .collect();
    assert_eq!(raised.len(), 1, "{raised:?}");
    assert!(
        raised[0].contains(&format!("request_id={rid}")),
        "request_id missing in {}",
        raised[0]
    );
}

/// Prints `n` short lines in one call: more than the app host's log burst.
const CHATTY: &str = r#"
def execute(data, conn=None):
    for i in range(data["n"]):
        print("c%d" % i)
    return {"ok": True}
"#;

/// Lines the log rate drops are counted against the call that printed them, and said
/// once that call is over, with its request id: not later, against whatever prints next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_over_the_log_rate_are_counted_against_their_call() {
    capture_platform_log();
    let h = Harness::start().await;
    let app = app_name("chatty");
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
            ("main.py", CHATTY),
        ],
    )
    .await;
    let rid = app_name("rid");
    call(&h, &app, &rid, json!({"n": 3000})).await;
    let said = || -> Vec<String> {
        logged("were not logged")
            .into_iter()
            .filter(|l| l.contains(&format!("app={app}")))
            .collect()
    };
    let mut lines = said();
    for _ in 0..50 {
        if !lines.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        lines = said();
    }
    assert_eq!(lines.len(), 1, "one note for the call: {lines:?}");
    let host_notes: Vec<String> = logged("lines dropped")
        .into_iter()
        .filter(|l| l.contains(&format!("app={app}")))
        .collect();
    assert!(host_notes.is_empty(), "counted twice: {host_notes:?}");
    assert!(
        lines[0].contains(&format!("request_id={rid}")),
        "{}",
        lines[0]
    );
    let dropped: u64 = lines[0]
        .split("dropped=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let shown = logged(&format!("request_id={rid}"))
        .iter()
        .filter(|l| l.contains("stream=stdout"))
        .count() as u64;
    assert_eq!(
        shown + dropped,
        3000,
        "every line is either logged or counted ({shown} logged, {dropped} dropped)"
    );
}

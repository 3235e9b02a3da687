//! The runner bounds what an app's processes send it: an over-long line on the host's
//! control channel stops that host (the platform's memory stays put), a job's progress
//! message is cut to 500 characters, and app lines the runner logs or publishes are cut
//! to 8 KiB with their control characters escaped, so they cannot forge log lines. The
//! frames here are the app's own (`noderouter._emit`, raw writes to the control fd),
//! not the SDK's. Real NATS, Postgres and Python workers; the platform runs in this
//! process and its log is read from a tracing subscriber writing to memory.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::logs::{capture_platform_log, logged};
use common::procs::status_kib;
use common::Harness;
use futures::StreamExt as _;
use nr_testkit::{app_name, manifest};
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn deploy(h: &Harness, prefix: &str, main: &str) -> String {
    let app = app_name(prefix);
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
            ("main.py", main),
        ],
    )
    .await;
    app
}

const HEALTHY: &str = r#"
import os

def execute(data, conn=None):
    return {"pid": os.getpid()}
"#;

/// Module code writing 64 MiB without a newline to the host's control channel, only
/// under the runner's host (the deploy check has no control channel), first a valid
/// `ok` line when `FIRST` is set (so the flood meets the runner's fork instead).
const FLOOD: &str = r#"
import __main__, os

FIRST = b""
_fds = getattr(__main__, "_CONTROL_FDS", None)
if _fds:
    if FIRST:
        os.write(_fds[0], FIRST)
    chunk = b"A" * (1024 * 1024)
    for _ in range(64):
        os.write(_fds[0], chunk)

def execute(data, conn=None):
    return {"flooded": False}
"#;

/// Keeps going past the fork flood, too.
const FIRST_OK: &str = r#"FIRST = b'{"ok": true}\n'"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_flooding_its_control_channel_is_stopped_with_bounded_memory() {
    // Alone in a process: its peak memory is the platform's and this test's only.
    if common::rerun_inner(
        "a_host_flooding_its_control_channel_is_stopped_with_bounded_memory",
        "",
        &[],
    ) {
        return;
    }
    let h = Harness::start().await;
    let healthy = deploy(&h, "calm", HEALTHY).await;
    let (s, b) = h.sync(&healthy, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // Before the deploys: the runner loads each app as soon as it is deployed.
    let peak_before = status_kib("VmHWM:");
    let mut refusals = Vec::new();
    for (prefix, main) in [
        ("ctlflood", FLOOD.to_owned()),
        ("forkflood", FLOOD.replace(r#"FIRST = b"""#, FIRST_OK)),
    ] {
        let app = app_name(prefix);
        let zip = nr_testkit::zip_files(&[
            ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
            ("main.py", &main),
        ]);
        // The runner cannot load it: the deploy is refused with the runner's reason.
        let (s, b) = tokio::time::timeout(
            Duration::from_secs(90),
            h.deploy(&format!("{app}.zip"), zip),
        )
        .await
        .expect("the deploy answers");
        refusals.push((app, s, b));
    }
    let peak_after = status_kib("VmHWM:");
    println!(
        "platform peak RSS {peak_before} KiB -> {peak_after} KiB (now {} KiB)",
        status_kib("VmRSS:")
    );
    assert!(
        peak_after < peak_before + 32 * 1024,
        "the platform's peak memory grew from {peak_before} KiB to {peak_after} KiB"
    );
    for (app, s, b) in refusals {
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{app}: {b}");
        let error = b["error"].as_str().unwrap_or_default();
        assert!(
            error.len() < 4096,
            "{app}: an error of {} bytes",
            error.len()
        );
        assert!(
            error.contains("65536-byte limit") && error.contains(app.as_str()),
            "{app}: {error}"
        );
        let (s, b) = h.sync(&app, json!({})).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{app} was undone: {b}");
    }
    // The other app is served as before.
    let (s, b) = h.sync(&healthy, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

const PROGRESS: &str = r#"
import noderouter

def execute(data, conn=None):
    for i, message in enumerate(["A" * 900000, "\u00e9" * 300000, "A" * 600000]):
        noderouter._emit({"progress": i + 1, "message": message})
    return {"done": True}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_progress_message_is_cut_to_500_characters_by_the_runner() {
    use nr_contracts::events::{JobProgress, JobStatus};
    let h = Harness::start().await;
    let app = deploy(&h, "chatter", PROGRESS).await;
    let nats = h.nats_client().await;
    let subject = format!("job.progress.{app}.>");
    let mut sub = nats.subscribe(subject.clone()).await.unwrap();
    h.nats.subscribed(&nats, &subject).await;
    let (s, b) = h.submit(&app, json!({})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let job = h
        .wait_job(b["job_id"].as_str().unwrap(), |j| {
            j["status"] == "completed" || j["status"] == "failed"
        })
        .await;
    assert_eq!(job["status"], "completed", "{job}");
    let mut messages = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(2), sub.next()).await {
        let ev: nr_contracts::Envelope<JobProgress> = nr_contracts::decode(&m.payload).unwrap();
        if ev.data.status == JobStatus::Running {
            if let Some(message) = ev.data.message {
                messages.push(message);
            }
        }
    }
    let lengths: Vec<usize> = messages.iter().map(|m| m.chars().count()).collect();
    assert!(!messages.is_empty(), "no progress event carried a message");
    assert!(
        lengths.iter().all(|&n| n <= 500),
        "progress messages of {lengths:?} characters"
    );
    assert!(lengths.contains(&500), "{lengths:?}");
}

/// Raw log frames: a 2 MB line, lines with an embedded newline forging a log line, a
/// forged stream name; then (`raise`) an exception whose message forges one too.
const RAW_LOGS: &str = r#"
import noderouter

def execute(data, conn=None):
    tag = data["tag"]
    noderouter._emit({"log": tag + " big " + "B" * 2000000, "stream": "stderr"})
    noderouter._emit({"log": tag + " one\nERROR forged " + tag + " app=pb\r\x1b[2K", "stream": "stdout"})
    noderouter._emit({"log": tag + " two", "stream": "stdout\nERROR forged " + tag + " stream"})
    if data.get("raise"):
        raise ValueError(tag + " " + "X" * 100000 + "\nERROR forged " + tag + " raised")
    if data.get("logs"):
        # A final reply of the app's own, with more captured output than the cap.
        noderouter._emit({"ok": True, "logs": tag + " " + "L" * 300000})
    return {"ok": True}
"#;

/// Asserts nothing in the platform log about `tag` is over `max` bytes or starts a
/// forged line, and returns the lines naming it.
fn assert_no_forgery(tag: &str, max: usize) -> Vec<String> {
    let forged = logged(&format!("forged {tag}"));
    for line in &forged {
        assert!(
            !line.starts_with("ERROR") && line.contains("app="),
            "a forged log line: {line:.300}"
        );
    }
    let lines = logged(tag);
    for line in &lines {
        assert!(line.len() <= max, "a log line of {} bytes", line.len());
    }
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_log_frames_are_cut_and_cannot_forge_log_lines() {
    capture_platform_log();
    let h = Harness::start().await;
    let app = deploy(&h, "forger", RAW_LOGS).await;

    let tag = app_name("sync");
    let (s, b) = h.sync(&app, json!({"tag": tag})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let lines = assert_no_forgery(&tag, 9 * 1024);
    let big = logged(&format!("{tag} big "));
    assert_eq!(big.len(), 1, "{} lines", big.len());
    assert!(
        big[0].contains("line truncated: 2000") && big[0].contains("stream=stderr"),
        "{:.300}",
        &big[0][big[0].len().saturating_sub(300)..]
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("{tag} one\\nERROR forged {tag}"))),
        "the forging line is logged, escaped: {lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("{tag} two")) && l.contains("stream=stderr")),
        "{lines:?}"
    );

    // A failing call: its error and traceback are logged cut, on one line.
    let tag = app_name("raise");
    let (s, b) = h.sync(&app, json!({"tag": tag, "raise": true})).await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{b}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let lines = assert_no_forgery(&tag, 32 * 1024);
    assert!(
        lines.iter().any(|l| l.contains("execute raised")),
        "{:?}",
        lines
            .iter()
            .map(|l| &l[..l.len().min(300)])
            .collect::<Vec<_>>()
    );

    // A job: its live lines on the bus are cut and clean, its stored output capped.
    let nats = h.nats_client().await;
    let subject = format!("job.log.{app}.>");
    let mut sub = nats.subscribe(subject.clone()).await.unwrap();
    h.nats.subscribed(&nats, &subject).await;
    let tag = app_name("job");
    let (s, b) = h.submit(&app, json!({"tag": tag, "logs": true})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let id = b["job_id"].as_str().unwrap().to_owned();
    let job = h
        .wait_job(&id, |j| {
            j["status"] == "completed" || j["status"] == "failed"
        })
        .await;
    assert_eq!(job["status"], "completed", "{job}");
    let mut live = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(2), sub.next()).await {
        let ev: nr_contracts::Envelope<nr_contracts::events::JobLog> =
            nr_contracts::decode(&m.payload).unwrap();
        live.push(ev.data.line);
    }
    assert_eq!(live.len(), 3, "{live:?}");
    for line in &live {
        assert!(
            line.len() <= 9 * 1024,
            "a live line of {} bytes",
            line.len()
        );
        assert!(
            !line.chars().any(|c| c.is_control() && c != '\t'),
            "{line:.300}"
        );
    }
    assert_no_forgery(&tag, 9 * 1024);
    let r = h
        .http
        .get(format!("{}/api/async/jobs/{id}/logs", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let logs: Value = r.json().await.unwrap();
    let logs = logs["logs"].as_str().unwrap_or_default();
    assert!(logs.starts_with(&tag), "{logs:.200}");
    assert!(
        logs.len() <= 65_536 + 1024,
        "{} bytes of output kept for a cap of 65536",
        logs.len()
    );
}

const CHATTY: &str = r#"
import noderouter

def execute(data, conn=None):
    for i in range(1000):
        noderouter._emit({"log": "line %d" % i, "stream": "stdout"})
    return {"done": True}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_job_lines_are_rate_limited_by_the_runner() {
    let h = Harness::start().await;
    let app = deploy(&h, "chatty", CHATTY).await;
    let nats = h.nats_client().await;
    let subject = format!("job.log.{app}.>");
    let mut sub = nats.subscribe(subject.clone()).await.unwrap();
    h.nats.subscribed(&nats, &subject).await;
    let (s, b) = h.submit(&app, json!({})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let id = b["job_id"].as_str().unwrap().to_owned();
    let started = std::time::Instant::now();
    let job = h.wait_job(&id, |j| j["status"] == "completed").await;
    assert_eq!(job["status"], "completed", "{job}");
    let took = started.elapsed().as_secs_f64();
    let mut live = 0;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_secs(1), sub.next()).await {
        live += 1;
    }
    assert!(live >= 100, "only {live} live lines: the burst goes out");
    // A burst of 100, then 50 a second, over the job's run (and a second of slack).
    let most = 100.0 + 50.0 * (took + 1.0);
    assert!(
        (live as f64) <= most,
        "{live} live lines in {took:.1} s (at most {most:.0})"
    );
}

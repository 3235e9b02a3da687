//! A deploy its caller stopped waiting for changes nothing: the gateway's 504 is the
//! whole story (before, deploy published the version once its check ended, after the
//! caller had been told it timed out).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Harness;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_whose_caller_gave_up_publishes_nothing() {
    let h = Harness::start_with(&["--deploy-timeout-s", "2"]).await;
    let app = nr_testkit::app_name("late");
    let zip = |main: &str| {
        nr_testkit::zip_files(&[
            (
                "manifest.json",
                &nr_testkit::manifest(&app, "1.0.0", json!({})),
            ),
            ("main.py", main),
        ])
    };
    // Module code that outlasts the caller's wait in deploy's import check.
    let slow = "import time\ntime.sleep(3.5)\n\ndef execute(data, conn=None):\n    return {}\n";
    let (s, b) = h.deploy(&format!("{app}.zip"), zip(slow)).await;
    assert_eq!(s, StatusCode::GATEWAY_TIMEOUT, "{b}");
    // Past the check's end: still nothing deployed.
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let versions = h.get_json(&format!("/admin/api/apps/{app}/versions")).await;
    assert!(
        versions["versions"].as_array().is_none_or(|v| v.is_empty()),
        "a deploy answered 504 was published after: {versions}"
    );
    let (s, b) = h.sync(&app, json!({})).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");

    // A deploy that fits the wait goes through as ever.
    let quick = "def execute(data, conn=None):\n    return {\"ok\": 1}\n";
    let (s, b) = h.deploy(&format!("{app}.zip"), zip(quick)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = h.sync(&app, json!({})).await;
    assert_eq!((s, b), (StatusCode::OK, json!({"ok": 1})));
}

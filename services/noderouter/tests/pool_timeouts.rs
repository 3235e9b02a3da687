//! Calls that time out while they wait for a worker leave the app's pool as it was:
//! the next calls are served by live workers, none of which is taken for something an
//! app left behind and killed under a call.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Harness;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_calls_that_time_out_waiting_leaves_the_pool_serving() {
    let h = Harness::start().await;
    let app = nr_testkit::app_name("burst");
    let main = "import time\n\ndef execute(data, conn=None):\n    \
                time.sleep(float(data.get(\"s\", 1)))\n    return {\"ok\": 1}\n";
    h.deploy_ok(
        &app,
        &[
            (
                "manifest.json",
                &nr_testkit::manifest(&app, "1.0.0", json!({"timeout_s": 3})),
            ),
            ("main.py", main),
        ],
    )
    .await;
    // Two workers (the harness's pool) and ten calls of a second each: some wait out
    // their time limit for a worker, some of them while one is being forked.
    for _ in 0..3 {
        let burst: Vec<_> = (0..10).map(|_| h.sync(&app, json!({"s": 1}))).collect();
        let answers = futures::future::join_all(burst).await;
        let statuses: Vec<StatusCode> = answers.iter().map(|(s, _)| *s).collect();
        // 504: stopped after waiting; 503: never got a worker, did not run.
        assert!(
            statuses.iter().all(|s| *s == StatusCode::OK
                || *s == StatusCode::GATEWAY_TIMEOUT
                || *s == StatusCode::SERVICE_UNAVAILABLE),
            "{answers:?}"
        );
    }
    // Then calls one at a time, well under the limit, each lasting past the runner's
    // once-a-second sweep of what apps leave behind: every one is answered.
    for n in 0..6 {
        let (s, b) = h.sync(&app, json!({"s": 1.5})).await;
        assert_eq!(s, StatusCode::OK, "call {n} after the bursts: {b}");
    }
}

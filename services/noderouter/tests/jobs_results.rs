//! A job's result is stored with the job and answered whole, so it is bounded
//! (`NR_JOB_RESULT_BYTES`, 16 MiB by default): a larger one fails the job at once, with
//! an error naming both sizes and what to do instead, and is not retried; a result
//! under the limit is kept whole.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Harness;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Submits a job of `app` with `data` and waits for it to end: its id and last state.
async fn finished(h: &Harness, app: &str, data: Value) -> (String, Value) {
    let (s, b) = h.submit(app, data).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let id = b["job_id"].as_str().unwrap().to_owned();
    let job = h
        .wait_job(&id, |j| {
            j["status"] == "failed" || j["status"] == "completed"
        })
        .await;
    (id, job)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_result_over_the_limit_fails_the_job_naming_the_limit() {
    let h = Harness::start().await;
    let app = nr_testkit::app_name("bigresult");
    let main = "def execute(data, conn=None):\n    print('made', data['n'])\n    \
                return {\"blob\": \"x\" * data[\"n\"]}\n";
    h.deploy_ok(
        &app,
        &[
            (
                "manifest.json",
                &nr_testkit::manifest(
                    &app,
                    "1.0.0",
                    json!({"job_retry": {"attempts": 3, "on": "exception"}}),
                ),
            ),
            ("main.py", main),
        ],
    )
    .await;

    let limit = 16 * 1024 * 1024;
    let (id, job) = finished(&h, &app, json!({"n": limit + 1})).await;
    assert_eq!(job["status"], "failed", "{}", job["error_message"]);
    let error = job["error_message"].as_str().unwrap();
    assert!(
        error.contains(&format!(
            "over the limit of {limit} bytes (NR_JOB_RESULT_BYTES)"
        )) && error.contains("noderouter.download"),
        "{error}"
    );
    assert!(job["result"].is_null(), "no part of the result is kept");
    assert_eq!(
        job["attempt"], 1,
        "not retried: the same input returns as much"
    );
    // The output it printed is kept with it, as for any failed job.
    let logs = h.get_json(&format!("/api/async/jobs/{id}/logs")).await;
    assert!(
        logs.to_string().contains(&format!("made {}", limit + 1)),
        "{logs}"
    );

    // Under the limit, the whole result is kept.
    let (_, job) = finished(&h, &app, json!({"n": 1024 * 1024})).await;
    assert_eq!(job["status"], "completed", "{}", job["error_message"]);
    assert_eq!(job["result"]["blob"].as_str().unwrap().len(), 1024 * 1024);
}

/// A job's stored log shows control characters escaped, as the platform's log and the
/// live lines do: what `noderouter job logs` prints to a terminal is the text, not a
/// cursor move or a colour (before, the stored lines kept them raw).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_stored_log_shows_control_characters_escaped() {
    let h = Harness::start().await;
    let app = nr_testkit::app_name("ctllog");
    let main = "def execute(data, conn=None):\n    print('a\\rb\\x1b[31mc\\td')\n    print('next')\n    return {}\n";
    h.deploy_ok(
        &app,
        &[
            (
                "manifest.json",
                &nr_testkit::manifest(&app, "1.0.0", json!({})),
            ),
            ("main.py", main),
        ],
    )
    .await;
    let (id, job) = finished(&h, &app, json!({})).await;
    assert_eq!(job["status"], "completed", "{job}");
    let logs = h.get_json(&format!("/api/async/jobs/{id}/logs")).await;
    let text = logs["logs"].as_str().unwrap();
    assert!(text.contains("a\\rb\\x1b[31mc\td"), "{text:?}");
    assert!(
        !text
            .chars()
            .any(|c| c.is_control() && c != '\t' && c != '\n'),
        "{text:?}"
    );
    // Lines stay lines.
    assert!(text.lines().any(|l| l.ends_with("next")), "{text:?}");
}

/// A failed job's traceback is the app's: from its own first frame, with paths relative
/// to its bundle (before, it began in the platform's host script and named the
/// server's directories).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_jobs_traceback_shows_the_apps_code_not_the_servers_paths() {
    let h = Harness::start().await;
    let app = nr_testkit::app_name("tbpaths");
    let main = "def helper():\n    raise ValueError('boom')\n\ndef execute(data, conn=None):\n    helper()\n";
    h.deploy_ok(
        &app,
        &[
            (
                "manifest.json",
                &nr_testkit::manifest(&app, "1.0.0", json!({"job_retry": {"attempts": 1}})),
            ),
            ("main.py", main),
        ],
    )
    .await;
    let (id, job) = finished(&h, &app, json!({})).await;
    assert_eq!(job["status"], "failed", "{job}");
    let logs = h.get_json(&format!("/api/async/jobs/{id}/logs")).await;
    let text = logs["logs"].as_str().unwrap();
    assert!(
        text.contains("File \"main.py\", line 5, in execute"),
        "{text}"
    );
    assert!(
        text.contains("File \"main.py\", line 2, in helper"),
        "{text}"
    );
    assert!(text.contains("ValueError: boom"), "{text}");
    assert!(!text.contains("nr_host"), "{text}");
    assert!(!text.contains("File \"/"), "an absolute path: {text}");
}

/// A job's result comes back as the app returned it, or the job fails saying why: an
/// integer beyond 64 bits became a float and a string with a lone surrogate made the
/// result null, both in a job marked completed (a sync call answers both as returned).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_result_is_kept_exactly_or_the_job_fails_naming_where() {
    let h = Harness::start().await;
    let app = nr_testkit::app_name("exact");
    let main = "def execute(data, conn=None):\n    \
                kind = data.get('kind')\n    \
                if kind == 'huge':\n        return {'n': 2 ** 70}\n    \
                if kind == 'surrogate':\n        return {'rows': [{'s': 'a\\ud800'}]}\n    \
                return {'max': 2 ** 64 - 1, 'min': -2 ** 63, 'f': 0.1, 's': 'a\\U0001F600'}\n";
    h.deploy_ok(
        &app,
        &[
            (
                "manifest.json",
                &nr_testkit::manifest(&app, "1.0.0", json!({})),
            ),
            ("main.py", main),
        ],
    )
    .await;

    let (_, job) = finished(&h, &app, json!({})).await;
    assert_eq!(job["status"], "completed", "{}", job["error_message"]);
    assert_eq!(
        job["result"],
        json!({"max": u64::MAX, "min": i64::MIN, "f": 0.1, "s": "a😀"})
    );

    let (_, job) = finished(&h, &app, json!({"kind": "huge"})).await;
    assert_eq!(job["status"], "failed", "{job}");
    let error = job["error_message"].as_str().unwrap();
    assert!(
        error.contains("result['n'] is 1180591620717411303424, an integer beyond 64 bits"),
        "{error}"
    );
    let (_, job) = finished(&h, &app, json!({"kind": "surrogate"})).await;
    assert_eq!(job["status"], "failed", "{job}");
    let error = job["error_message"].as_str().unwrap();
    assert!(
        error.contains("result['rows'][0]['s'] is a string with a lone UTF-16 surrogate"),
        "{error}"
    );

    // The same calls made sync answer what was returned, untouched.
    let res = h
        .http
        .post(format!("{}/api/sync/{app}", h.url))
        .json(&json!({"kind": "huge"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.unwrap(), r#"{"n":1180591620717411303424}"#);

    // A lone surrogate in a submitted body: named, not called invalid JSON.
    let res = h
        .http
        .post(format!("{}/api/async/{app}", h.url))
        .header("Content-Type", "application/json")
        .body(r#"{"s":"\ud800"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let text = res.text().await.unwrap();
    assert!(
        text.contains("lone UTF-16 surrogate escape") && text.contains("as a sync call"),
        "{text}"
    );
}

/// The check of a job's result does not depend on its output being kept: with
/// `NR_JOB_LOG_BYTES=0` a huge integer was stored as a float again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_job_logs_off_a_job_result_is_still_kept_exactly_or_failed() {
    let h = Harness::start_with(&["--job-log-bytes", "0"]).await;
    let app = nr_testkit::app_name("exactnolog");
    h.deploy_ok(
        &app,
        &[
            (
                "manifest.json",
                &nr_testkit::manifest(&app, "1.0.0", json!({})),
            ),
            (
                "main.py",
                "def execute(data, conn=None):\n    return {'n': 2 ** 70}\n",
            ),
        ],
    )
    .await;
    let (_, job) = finished(&h, &app, json!({})).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert!(
        job["error_message"]
            .as_str()
            .unwrap()
            .contains("an integer beyond 64 bits"),
        "{job}"
    );
}

//! A deploy answers once the live runners loaded the version it published, and a version
//! that passes the deploy's import check but that a runner cannot load (a package the
//! runner's host lacks, an import that fails there only) is refused and undone: the
//! catalogue names what is served, and the previous version keeps serving.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Harness, Role};
use nr_testkit::{app_name, manifest, zip_files};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn main_v(n: u32) -> String {
    format!("def execute(data, conn=None):\n    return {{\"v\": {n}}}\n")
}

/// A `main.py` whose import raises `raise` in the runner's host process only, when
/// `when` holds too, and passes the deploy's own import check: what a package installed
/// where deploy runs but missing on the runner's machine looks like.
fn runner_only_failure(when: &str, raise: &str) -> String {
    format!(
        "import os, sys\nif os.path.basename(sys.argv[0]) == \"nr_host.py\" and {when}:\n    raise {raise}\n\n\
         def execute(data, conn=None):\n    return {{\"v\": 2}}\n"
    )
}

const MISSING_PACKAGE: &str =
    "ImportError(\"No module named 'reportlab' (missing on this runner)\")";

/// Fails on every runner.
fn runner_failure() -> String {
    runner_only_failure("True", MISSING_PACKAGE)
}

/// `POST /admin/api/apps/<app>/rollback` to `version`.
async fn rollback(h: &Harness, app: &str, version: &str) -> (StatusCode, Value) {
    common::post(
        &h.http,
        format!("{}/admin/api/apps/{app}/rollback", h.url),
        json!({ "version": version }),
    )
    .await
}

async fn deploy(h: &Harness, app: &str, version: &str, main: &str) -> (StatusCode, Value) {
    let zip = zip_files(&[
        ("manifest.json", &manifest(app, version, json!({}))),
        ("main.py", main),
    ]);
    h.deploy(&format!("{app}.zip"), zip).await
}

async fn current_version(h: &Harness, app: &str) -> Option<String> {
    let apps = h.get_json("/admin/api/apps").await;
    apps["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["app_name"] == app)
        .map(|a| a["version"].as_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_no_runner_can_load_is_refused_undone_and_the_previous_keeps_serving() {
    let h = Harness::start().await;
    let app = app_name("loads");

    let (s, b) = deploy(&h, &app, "1.0.0", &main_v(1)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let loaded_by = b["loaded_by"].as_array().unwrap();
    assert_eq!(loaded_by.len(), 1, "the runner's load is reported: {b}");
    assert!(loaded_by[0].as_str().unwrap().starts_with("runner-"), "{b}");

    let (s, b) = deploy(&h, &app, "2.0.0", &runner_failure()).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let error = b["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("could not load {app} 2.0.0")),
        "{b}"
    );
    assert!(
        error.contains("No module named 'reportlab'"),
        "the runner's error: {b}"
    );
    assert!(error.contains("1.0.0 keeps serving"), "{b}");
    assert_eq!(b["details"][0]["rule"], "runner.load", "{b}");

    // The catalogue and the calls agree: 1.0.0.
    assert_eq!(current_version(&h, &app).await.as_deref(), Some("1.0.0"));
    let (s, b) = h.sync(&app, json!({})).await;
    assert_eq!((s, b["v"].clone()), (StatusCode::OK, json!(1)), "{b}");
    let versions = h.get_json(&format!("/admin/api/apps/{app}/versions")).await;
    assert_eq!(versions["current_version"], "1.0.0", "{versions}");
    let listed: Vec<(&str, bool)> = versions["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["version"].as_str().unwrap(), v["current"] == json!(true)))
        .collect();
    assert_eq!(
        listed,
        [("2.0.0", false), ("1.0.0", true)],
        "the refused version stays listed, not current: {versions}"
    );
    let why = versions["versions"][0]["refused"]
        .as_str()
        .unwrap_or_default();
    assert!(
        why.starts_with("runner runner-") && why.contains("No module named 'reportlab'"),
        "the refused version says why: {versions}"
    );
    assert_eq!(
        versions["versions"][1]["refused"],
        Value::Null,
        "{versions}"
    );
    // The audit shows the undo for what it is, with the refused version and why.
    let audit = h.get_json("/admin/api/audit?kind=apps").await;
    let undo = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["target"] == app.as_str())
        .unwrap();
    assert_eq!(undo["action"], "rolled_back", "{undo}");
    assert_eq!(undo["details"]["undoes"]["version"], "2.0.0", "{undo}");
    assert_eq!(undo["details"]["undoes"]["reason"], why, "{undo}");
    assert_eq!(undo["details"]["undoes"]["sha256"], Value::Null, "{undo}");

    // A corrected version deploys, and a rollback waits for the runner as well.
    let (s, b) = deploy(&h, &app, "2.0.1", &main_v(3)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = h.sync(&app, json!({})).await;
    assert_eq!(b["v"], json!(3), "{s} {b}");
    let (s, b) = rollback(&h, &app, "1.0.0").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["loaded_by"].as_array().map(Vec::len), Some(1), "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_version_no_runner_can_load_leaves_no_app_behind() {
    let h = Harness::start().await;
    let app = app_name("loadsnew");
    let (s, b) = deploy(&h, &app, "1.0.0", &runner_failure()).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let error = b["error"].as_str().unwrap();
    assert!(error.contains(&format!("{app} is not deployed")), "{b}");
    assert_eq!(current_version(&h, &app).await, None);
    let (s, b) = h.sync(&app, json!({})).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    let versions = h.get_json(&format!("/admin/api/apps/{app}/versions")).await;
    assert_eq!(versions["deleted"], true, "{versions}");
    let why = versions["versions"][0]["refused"]
        .as_str()
        .unwrap_or_default();
    assert!(why.contains("reportlab"), "{versions}");
    // The list says it was never served, and why, where an app deleted by someone
    // says nothing of the kind.
    let deleted_entry = |list: &Value, name: &str| {
        list["deleted"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["app_name"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let list = h.get_json("/admin/api/apps").await;
    let entry = deleted_entry(&list, &app);
    assert!(
        entry["refused"]
            .as_str()
            .unwrap_or_default()
            .contains("reportlab"),
        "{list}"
    );
    let gone = app_name("gone");
    assert_eq!(
        deploy(&h, &gone, "1.0.0", &main_v(1)).await.0,
        StatusCode::OK
    );
    let r = h
        .http
        .delete(format!("{}/admin/api/apps/{gone}", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let list = h.get_json("/admin/api/apps").await;
    let entry = deleted_entry(&list, &gone);
    assert_eq!(entry["app_name"], gone.as_str(), "{list}");
    assert!(entry.get("refused").is_none(), "{list}");
    // The name is free for a version that loads.
    let (s, b) = deploy(&h, &app, "1.0.1", &main_v(1)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = h.sync(&app, json!({})).await;
    assert_eq!((s, b["v"].clone()), (StatusCode::OK, json!(1)), "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_error_of_any_size_is_reported_as_the_apps_error() {
    let h = Harness::start().await;
    let app = app_name("loadsbig");
    let (s, b) = deploy(
        &h,
        &app,
        "1.0.0",
        // Larger than a control line.
        &runner_only_failure(
            "True",
            "RuntimeError(\"missing setting REPORTS_URL \" + \"x\" * 200000)",
        ),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let error = b["error"].as_str().unwrap();
    assert!(
        error.contains("RuntimeError: missing setting REPORTS_URL xxx"),
        "the app's own error, cut: {}",
        &error[..error.len().min(2000)]
    );
    assert!(
        !error.contains("control line"),
        "not a protocol breach: {}",
        &error[..error.len().min(2000)]
    );
    assert!(error.len() < 64 * 1024, "{} bytes", error.len());
    assert_eq!(b["details"][0]["rule"], "runner.load", "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_version_that_loads_later_loses_its_mark() {
    let h = Harness::start().await;
    let app = app_name("loadsfix");
    let (s, b) = deploy(&h, &app, "1.0.0", &main_v(1)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let env = format!("{}/admin/api/apps/{app}/env", h.url);
    let (s, b) = common::post(
        &h.http,
        env.clone(),
        json!({"name": "REPORTS_BROKEN", "value": "1"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = deploy(
        &h,
        &app,
        "2.0.0",
        // Fails while the app's variable REPORTS_BROKEN is 1.
        &runner_only_failure(
            "os.environ.get(\"REPORTS_BROKEN\") == \"1\"",
            MISSING_PACKAGE,
        ),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let refused = |v: &Value| v["versions"][0]["refused"].clone();
    let versions = h.get_json(&format!("/admin/api/apps/{app}/versions")).await;
    assert!(refused(&versions).is_string(), "{versions}");

    // The runner can load it now: a rollback to it serves it, and the mark is gone.
    let res = h
        .http
        .delete(format!("{env}/REPORTS_BROKEN"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let (s, b) = rollback(&h, &app, "2.0.0").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = h.sync(&app, json!({})).await;
    assert_eq!((s, b["v"].clone()), (StatusCode::OK, json!(2)), "{b}");
    let versions = h.get_json(&format!("/admin/api/apps/{app}/versions")).await;
    assert_eq!(versions["versions"][0]["current"], true, "{versions}");
    assert_eq!(refused(&versions), Value::Null, "{versions}");
}

/// Beats on `runner.alive` as a runner that never loads anything, until dropped.
fn ghost_runner(nats: async_nats::Client) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            nats.publish("runner.alive", "runner-ghost".into())
                .await
                .unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
    })
}

fn pending_warnings(report: &Value) -> Vec<String> {
    report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["rule"] == "deploy.load_pending")
        .map(|w| w["message"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_runner_that_does_not_report_is_named_and_a_silent_one_is_not_waited_for() {
    let h = Harness::start_with(&["--load-wait-s", "8"]).await;
    let app = app_name("ghost");
    let ghost = ghost_runner(h.nats_as(Role::Runner).await);
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;

    // A runner that beats but never reports: the deploy answers at the end of the wait,
    // naming it, with the runner that did load it.
    let (s, b) = deploy(&h, &app, "1.0.0", &main_v(1)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["loaded_by"].as_array().map(Vec::len), Some(1), "{b}");
    let pending = pending_warnings(&b);
    assert_eq!(pending.len(), 1, "{b}");
    assert!(
        pending[0].starts_with("runner-ghost did not report loading"),
        "{b}"
    );

    // A runner that stops beating during the wait is dropped from it (the deploy
    // answers before the 8 s are up), and named as gone silent.
    let stop = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        ghost.abort();
    });
    let started = std::time::Instant::now();
    let (s, b) = deploy(&h, &app, "1.0.1", &main_v(2)).await;
    stop.await.unwrap();
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(started.elapsed() < std::time::Duration::from_secs(8), "{b}");
    let pending = pending_warnings(&b);
    assert_eq!(pending.len(), 1, "{b}");
    assert!(
        pending[0].starts_with("runner-ghost stopped sending heartbeats"),
        "{b}"
    );
    let (s, b) = h.sync(&app, json!({})).await;
    assert_eq!((s, b["v"].clone()), (StatusCode::OK, json!(2)), "{b}");
}

/// Imports in 3 s on the runner (at once in the deploy's check).
const SLOW_ON_THE_RUNNER: &str = r#"
import os, sys, time
if os.path.basename(sys.argv[0]) == "nr_host.py":
    time.sleep(3)

def execute(data, conn=None):
    return {"v": 2}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_previous_version_serves_while_the_runner_imports_the_new_one() {
    let h = std::sync::Arc::new(Harness::start().await);
    let app = app_name("slowload");
    let (s, b) = deploy(&h, &app, "1.0.0", &main_v(1)).await;
    assert_eq!(s, StatusCode::OK, "{b}");

    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut callers = Vec::new();
    for _ in 0..2 {
        let (h, app, done) = (h.clone(), app.clone(), done.clone());
        callers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                let started = std::time::Instant::now();
                let (s, b) = h.sync(&app, json!({})).await;
                seen.push((s, b["v"].clone(), started.elapsed()));
            }
            seen
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (s, b) = deploy(&h, &app, "2.0.0", SLOW_ON_THE_RUNNER).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["loaded_by"].as_array().map(Vec::len), Some(1), "{b}");
    let (s, after) = h.sync(&app, json!({})).await;
    assert_eq!(
        (s, after["v"].clone()),
        (StatusCode::OK, json!(2)),
        "{after}"
    );
    done.store(true, std::sync::atomic::Ordering::Release);
    let mut calls = Vec::new();
    for c in callers {
        calls.extend(c.await.unwrap());
    }
    assert!(
        calls.iter().all(|(s, _, _)| *s == StatusCode::OK),
        "{calls:?}"
    );
    let old = calls.iter().filter(|(_, v, _)| *v == json!(1)).count();
    assert!(
        old > 10,
        "the previous version answered during the import: {calls:?}"
    );
    // No call was held for the 3 s import.
    let longest = calls.iter().map(|(_, _, t)| *t).max().unwrap();
    assert!(
        longest < std::time::Duration::from_millis(2500),
        "a call waited {longest:?} for the import"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runners_refusal_never_shows_the_apps_secret_values() {
    let h = Harness::start().await;
    let app = app_name("loadsecret");
    let value = "sk-live-9c1e4b7d-never-shown";
    let res = h
        .http
        .put(format!("{}/admin/api/apps/{app}/env", h.url))
        .json(&json!({"name": "API_KEY", "value": value, "secret": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // A secret Python's repr escapes (its backslash doubled).
    let path = r"C:\vault\key-7f3a";
    let (s, b) = common::post(
        &h.http,
        format!("{}/admin/api/apps/{app}/env", h.url),
        json!({"name": "KEY_PATH", "value": path, "secret": true}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let main = r#"
import os, sys
if os.path.basename(sys.argv[0]) == "nr_host.py":
    raise RuntimeError("cannot log in with " + os.environ["API_KEY"] + " from " + repr(os.environ["KEY_PATH"]))

def execute(data, conn=None):
    return {}
"#;
    let (s, b) = deploy(&h, &app, "1.0.0", main).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let text = b.to_string();
    assert!(!text.contains(value), "{b}");
    assert!(text.contains("cannot log in with [secret]"), "{b}");
    // The traceback is the app's: its file by name, its line, no runner frames.
    assert_eq!(b["details"][0]["line"], json!(4), "{b}");
    let error = b["error"].as_str().unwrap();
    assert!(error.contains("File \"main.py\", line 4"), "{b}");
    assert!(!error.contains("nr_host.py"), "{b}");
    assert!(!error.contains("<frozen") && !error.contains("^^^"), "{b}");
    let escaped = path.replace('\\', "\\\\");
    assert!(!text.contains(&escaped) && !text.contains("vault"), "{b}");

    // Nor does what the platform keeps of it: the version list and the audit trail.
    let versions = h.get_json(&format!("/admin/api/apps/{app}/versions")).await;
    let why = versions["versions"][0]["refused"]
        .as_str()
        .unwrap_or_default();
    assert!(
        why.contains("cannot log in with [secret] from '[secret]'"),
        "{versions}"
    );
    let audit = h.get_json("/admin/api/audit?kind=apps").await;
    for kept in [versions.to_string(), audit.to_string()] {
        assert!(!kept.contains(value) && !kept.contains("vault"), "{kept}");
    }
}

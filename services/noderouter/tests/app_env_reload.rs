//! A change of an app's variables is answered once the runners reloaded the app, and a
//! reload that failed is named in the answer (`warnings`) and by the CLI (exit 1): the
//! app serves on with the previous values. Before, the change was answered as done while
//! the app went on with the value it replaced (a removed secret still in use).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Harness;
use reqwest::StatusCode;
use serde_json::{json, Value};

const MAIN: &str = "import os\nAPI_KEY = os.environ[\"API_KEY\"]\n\ndef execute(data, conn=None):\n    return {\"key\": API_KEY}\n";

async fn send(req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let res = req.send().await.unwrap();
    let s = res.status();
    (s, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_the_app_cannot_reload_with_is_named_in_the_answer() {
    let h = Harness::start().await;
    // The gateway knows the runners from their heartbeats (one a second).
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let app = nr_testkit::app_name("keyed");
    let env = format!("{}/admin/api/apps/{app}/env", h.url);
    let (s, b) = send(
        h.http
            .put(&env)
            .json(&json!({"name": "API_KEY", "value": "abc"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    h.deploy_ok(
        &app,
        &[
            (
                "manifest.json",
                &nr_testkit::manifest(&app, "1.0.0", json!({})),
            ),
            ("main.py", MAIN),
        ],
    )
    .await;
    let (s, b) = h.sync(&app, json!({})).await;
    assert_eq!((s, b["key"].as_str()), (StatusCode::OK, Some("abc")), "{b}");

    // A new value the app imports with: answered once reloaded, nothing to warn of.
    let (s, b) = send(
        h.http
            .put(&env)
            .json(&json!({"name": "API_KEY", "value": "def"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["warnings"], json!([]), "{b}");
    let (s, b) = h.sync(&app, json!({})).await;
    assert_eq!((s, b["key"].as_str()), (StatusCode::OK, Some("def")), "{b}");

    // Removed: the app's import fails without it; the answer says so, naming why.
    let (s, b) = send(h.http.delete(format!("{env}/API_KEY"))).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let warnings = b["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{b}");
    let w = warnings[0].as_str().unwrap();
    assert!(
        w.contains("did not reload with this change")
            && w.contains("KeyError")
            && w.contains("API_KEY"),
        "{w}"
    );
    // ...and the app serves on with the previous value, as the warning says.
    let (s, b) = h.sync(&app, json!({})).await;
    assert_eq!((s, b["key"].as_str()), (StatusCode::OK, Some("def")), "{b}");
}

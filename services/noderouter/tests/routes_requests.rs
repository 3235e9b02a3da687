//! What a route hands the app of the request: params decoded once the path has matched
//! (an encoded `/` stays inside its param), the conditional headers (so an app that
//! sends `ETag` can answer 304), a webhook's own delivery header; and a webhook
//! delivery released after a failure never forgets a later request's record of its id.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::Harness;
use nr_testkit::{app_name, manifest};
use reqwest::StatusCode;
use serde_json::{json, Value};

const MAIN: &str = r#"
import time

def execute(data, conn=None):
    a = data.get("action")
    if a == "file":
        return {"json": {"name": data["params"]["name"], "path": data["path"]}}
    if a == "item":
        etag = '"v1"'
        if data["headers"].get("if-none-match") == etag:
            return {"json": {}, "status": 304, "headers": {"ETag": etag}}
        return {"json": {"id": data["params"]["id"]}, "headers": {"ETag": etag}}
    if a == "hook":
        if data["body"].get("slow"):
            time.sleep(4)
            raise RuntimeError("failed after a while")
        return {"json": {"delivery": data["headers"].get("x-delivery-id"), "headers": sorted(data["headers"])}}
    return {}
"#;

async fn deploy(h: &Harness) -> String {
    let app = app_name("reqs");
    let extra = json!({
        "actions": [
            {"name": "file", "display_name": "File"},
            {"name": "item", "display_name": "Item"},
            {"name": "hook", "display_name": "Hook"}
        ],
        "routes": [
            {"method": "GET", "path": "/files/:name/raw", "action": "file"},
            {"method": "GET", "path": "/items/:id", "action": "item"},
            {"method": "POST", "path": "/hook", "action": "hook",
             "webhook": {"secret_name": "HOOK_SECRET", "delivery_header": "X-Delivery-Id"}}
        ]
    });
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", extra)),
            ("main.py", MAIN),
        ],
    )
    .await;
    common::secret(h, &app, "HOOK_SECRET", "s3cret-value").await;
    app
}

/// Sends a signed delivery `id` with `body` to the app's webhook route.
async fn deliver(base: &str, app: &str, body: &'static str, id: &str) -> (StatusCode, Value) {
    let sig = common::shop::sign("s3cret-value", body.as_bytes());
    let r = reqwest::Client::new()
        .post(format!("{base}/apps/{app}/api/hook"))
        .header("content-type", "application/json")
        .header("x-delivery-id", id)
        .header("x-hub-signature-256", sig)
        .header("cookie", "nr_session=not-for-the-app")
        .body(body)
        .send()
        .await
        .unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_gets_decoded_params_conditional_headers_and_its_delivery_id() {
    let h = Harness::start().await;
    let app = deploy(&h).await;
    let api = format!("{}/apps/{app}/api", h.url);

    // Before: the path was decoded before matching, so `a%2Fb` was two segments (404).
    let r = h
        .http
        .get(format!("{api}/files/a%2Fb%20c/raw"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["name"], "a/b c", "{b}");

    // Before: If-None-Match never reached the app, which could not answer 304.
    let r = h.http.get(format!("{api}/items/7")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["etag"], "\"v1\"");
    let r = h
        .http
        .get(format!("{api}/items/7"))
        .header("if-none-match", "\"v1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(r.headers()["etag"], "\"v1\"");

    // Before: a custom delivery header was checked but not passed on. A cookie never is.
    let (s, b) = deliver(&h.url, &app, r#"{"ok": 1}"#, "d-77").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["delivery"], "d-77", "{b}");
    assert!(!b["headers"].to_string().contains("cookie"), "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_delivery_released_late_keeps_a_later_requests_record_of_its_id() {
    let h = Harness::start_with(&["--webhook-replay-window-s", "2"]).await;
    let app = deploy(&h).await;
    // The first request takes its id, runs 4 s and fails; past the 2 s window a second
    // request under the same id is served and handled.
    let first = {
        let base = h.url.clone();
        let app = app.clone();
        tokio::spawn(async move { deliver(&base, &app, r#"{"slow": true}"#, "d-late").await.0 })
    };
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (s, b) = deliver(&h.url, &app, r#"{"ok": 2}"#, "d-late").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(first.await.unwrap().is_server_error());
    // The first one's failure released only its own record: the handled one stays a
    // replay (before, the release deleted it and this was served again).
    let (s, b) = deliver(&h.url, &app, r#"{"ok": 3}"#, "d-late").await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
}

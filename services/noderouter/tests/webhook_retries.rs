//! A webhook delivery that was not handled can be sent again under its id (GitHub's
//! "Redeliver" keeps `X-GitHub-Delivery`): one the app failed (it raised, or answered
//! its own 5xx) or the platform refused after its signature (a body that is not JSON).
//! One the app may have acted on stays a replay.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Harness;
use nr_testkit::{app_name, manifest};
use reqwest::StatusCode;
use serde_json::json;

const MAIN: &str = r#"
def execute(data, conn=None):
    if data["body"].get("fail"):
        raise RuntimeError("not now")
    if data["body"].get("busy"):
        return {"json": {"busy": True}, "status": 503}
    if data["body"].get("bad"):
        return {"redirect": ""}
    return {"received": data["body"]}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_that_was_not_handled_can_be_sent_again_under_its_id() {
    let h = Harness::start().await;
    let app = app_name("hooks");
    let extra = json!({
        "actions": [{"name": "hook", "display_name": "Hook"}],
        "routes": [{"method": "POST", "path": "/hook", "action": "hook",
                    "webhook": {"secret_name": "HOOK_SECRET"}}]
    });
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", extra)),
            ("main.py", MAIN),
        ],
    )
    .await;
    common::secret(&h, &app, "HOOK_SECRET", "s3cret-value").await;
    let url = format!("{}/apps/{app}/api/hook", h.url);
    let send = |body: &'static str, delivery: &'static str| {
        let sig = common::shop::sign("s3cret-value", body.as_bytes());
        let req = reqwest::Client::new()
            .post(&url)
            .header("content-type", "application/json")
            .header("x-github-delivery", delivery)
            .header("x-hub-signature-256", sig)
            .body(body);
        async move { req.send().await.unwrap().status() }
    };

    // The app failed: the same delivery again is served.
    assert!(send(r#"{"fail": true}"#, "d-1").await.is_server_error());
    assert_eq!(send(r#"{"ok": 1}"#, "d-1").await, StatusCode::OK);
    // The platform refused the body after its signature: likewise.
    assert_eq!(send("{oops", "d-2").await, StatusCode::BAD_REQUEST);
    assert_eq!(send(r#"{"ok": 2}"#, "d-2").await, StatusCode::OK);
    // The app answered its own 5xx: likewise.
    assert_eq!(
        send(r#"{"busy": true}"#, "d-3").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(send(r#"{"ok": 3}"#, "d-3").await, StatusCode::OK);
    // The app ran and then answered what the platform cannot send (502): it may have
    // acted, so the id stays received.
    assert_eq!(
        send(r#"{"bad": true}"#, "d-4").await,
        StatusCode::BAD_GATEWAY
    );
    assert_eq!(send(r#"{"ok": 4}"#, "d-4").await, StatusCode::CONFLICT);
    // A handled delivery stays a replay.
    assert_eq!(send(r#"{"ok": 2}"#, "d-2").await, StatusCode::CONFLICT);
    assert_eq!(send(r#"{"ok": 1}"#, "d-1").await, StatusCode::CONFLICT);
}

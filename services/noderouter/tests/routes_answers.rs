//! A route's answer with an error status is the app's own: its body and type reach the
//! caller as the app made them (before, the platform wrapped them in its own error
//! shape). A status that is not an HTTP status is the app's mistake, answered 502
//! naming it; the platform's own errors keep their `{"error", "code"}` shape.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Harness;
use reqwest::StatusCode;
use serde_json::{json, Value};

const MAIN: &str = r#"
def execute(data, conn=None):
    if data.get("action") == "boom":
        raise RuntimeError("it broke")
    return data["body"]
"#;

#[tokio::test]
async fn a_routes_error_status_keeps_the_apps_body_and_a_bad_status_is_named() {
    let h = Harness::start().await;
    let app = nr_testkit::app_name("answers");
    let manifest = nr_testkit::manifest(
        &app,
        "1.0.0",
        json!({
            "actions": [
                {"name": "echo", "display_name": "Echo"},
                {"name": "boom", "display_name": "Boom"}
            ],
            "routes": [
                {"method": "POST", "path": "/r", "action": "echo"},
                {"method": "GET", "path": "/boom", "action": "boom"}
            ]
        }),
    );
    h.deploy_ok(&app, &[("manifest.json", &manifest), ("main.py", MAIN)])
        .await;
    let url = format!("{}/apps/{app}/api/r", h.url);
    let answer = |body: Value| {
        let req = h.http.post(&url).json(&body);
        async move {
            let r = req.send().await.unwrap();
            let status = r.status();
            let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
            (status, ct, r.text().await.unwrap())
        }
    };

    let (s, ct, body) = answer(json!({"json": {"msg": "taken"}, "status": 409})).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(ct, "application/json");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"msg": "taken"})
    );

    let (s, ct, body) = answer(json!({"json": {"error": "bad name"}, "status": 422})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"error": "bad name"}),
        "{ct}"
    );

    let (s, ct, body) = answer(json!({"html": "<p>no such page</p>", "status": 404})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(ct.starts_with("text/html"), "{ct}");
    assert_eq!(body, "<p>no such page</p>");

    for bad in [json!(999), json!(101), json!("201"), json!(201.5)] {
        let (s, _, body) = answer(json!({"json": {"ok": 1}, "status": bad})).await;
        assert_eq!(s, StatusCode::BAD_GATEWAY, "{bad}: {body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["code"], "bad_gateway");
        let error = body["error"].as_str().unwrap();
        assert!(
            error.contains(&format!("status {bad}")) && error.contains("200 to 599"),
            "{error}"
        );
    }

    // The platform's own errors keep their shape: a wrong method, an exception.
    let r = h.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers()["allow"], "POST");
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["code"], "method_not_allowed", "{b}");
    let r = h
        .http
        .get(format!("{}/apps/{app}/api/boom", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let b: Value = r.json().await.unwrap();
    assert!(b["code"].is_string(), "{b}");
    assert!(b["error"].as_str().unwrap().contains("it broke"), "{b}");
}

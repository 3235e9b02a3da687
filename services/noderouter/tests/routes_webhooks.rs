//! Webhook routes against the real platform: signatures, replays, a body refused before
//! it is read, and what keys a webhook (a secret, never a plain variable).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::shop::{manifest, sign, MAIN};
use common::Harness;
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn webhooks_need_a_valid_signature_and_a_fresh_delivery() {
    let h = Harness::start().await;
    h.deploy_ok("shop", &[("manifest.json", &manifest()), ("main.py", MAIN)])
        .await;
    let url = format!("{}/apps/shop/api/hook", h.url);
    let outsider = reqwest::Client::new();
    let body = br#"{"ref":"main"}"#.to_vec();
    let send = |sig: Option<String>, delivery: &str| {
        let mut r = outsider
            .post(&url)
            .header("content-type", "application/json")
            .header("x-github-event", "push")
            .header("x-github-delivery", delivery)
            .body(body.clone());
        if let Some(s) = sig {
            r = r.header("x-hub-signature-256", s);
        }
        r.send()
    };

    // No secret set yet: refused even with some signature, as a wrong one is.
    let r = send(Some(sign("guess", &body)), "d-0").await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.text().await.unwrap().contains("does not match"));

    common::secret(&h, "shop", "HOOK_SECRET", "s3cret-value").await;

    let r = send(None, "d-1").await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = send(Some(sign("wrong-secret", &body)), "d-1")
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.text().await.unwrap().contains("does not match"));
    // A signature of another body.
    let r = send(Some(sign("s3cret-value", b"{}")), "d-1")
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let r = send(Some(sign("s3cret-value", &body)), "d-1")
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b, json!({"received": {"ref": "main"}, "event": "push"}));

    // The same delivery again is a replay.
    let r = send(Some(sign("s3cret-value", &body)), "d-1")
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let r = send(Some(sign("s3cret-value", &body)), "d-2")
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_webhook_is_refused_before_its_body_is_read_and_an_empty_secret_opens_nothing() {
    let h = Harness::start().await;
    h.deploy_ok("shop", &[("manifest.json", &manifest()), ("main.py", MAIN)])
        .await;
    let url = format!("{}/apps/shop/api/hook", h.url);
    let outsider = reqwest::Client::new();
    // Unsigned, and larger than any call body: refused on its headers alone (before,
    // the body was read first and the answer was 413).
    let r = outsider
        .post(&url)
        .header("x-github-delivery", "big-1")
        .body(vec![b'x'; 2 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.text().await.unwrap().contains("header is missing"));

    let set = |value: &str, secret: bool| {
        h.http
            .put(format!("{}/admin/api/apps/shop/env", h.url))
            .json(&json!({"name": "HOOK_SECRET", "value": value, "secret": secret}))
            .send()
    };
    // An empty secret is refused, naming the value.
    let r = set("", true).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let b: Value = r.json().await.unwrap();
    assert!(
        b["error"].as_str().unwrap().contains("cannot be empty"),
        "{b}"
    );
    // An empty plain variable of that name is no secret: a body signed with an empty
    // key does not get through (before: 200, and the app ran).
    let r = set("", false).await.unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let body = br#"{"ref":"forged"}"#.to_vec();
    let r = outsider
        .post(&url)
        .header("content-type", "application/json")
        .header("x-github-delivery", "forged-1")
        .header("x-hub-signature-256", sign("", &body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // The answer a wrong signature gets: a stranger cannot tell whether a secret is set.
    assert!(r.text().await.unwrap().contains("does not match"));

    // A plain variable keys nothing either: its value is listed to whoever may read the
    // app's variables (before: 200, and the app ran).
    let r = set("listed-to-readers", false).await.unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let body = br#"{"ref":"forged-2"}"#.to_vec();
    let r = outsider
        .post(&url)
        .header("content-type", "application/json")
        .header("x-github-delivery", "forged-2")
        .header("x-hub-signature-256", sign("listed-to-readers", &body))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.text().await.unwrap().contains("does not match"));
    // The same value set as a secret opens it.
    let r = set("listed-to-readers", true).await.unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let r = outsider
        .post(&url)
        .header("content-type", "application/json")
        .header("x-github-delivery", "forged-2")
        .header("x-hub-signature-256", sign("listed-to-readers", &body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // Without a credential only the webhook answers: no app, route or method is named
    // (before: 404 "has no route", "not deployed", 405 with Allow).
    for (method, path) in [
        ("GET", "/apps/shop/api/nope"),
        ("GET", "/apps/ghost/api/x"),
        ("DELETE", "/apps/shop/api/hook"),
    ] {
        let r = outsider
            .request(method.parse().unwrap(), format!("{}{path}", h.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
        assert!(r.headers().get("allow").is_none());
        let text = r.text().await.unwrap();
        assert!(!text.contains("shop") && !text.contains("ghost"), "{text}");
    }
}

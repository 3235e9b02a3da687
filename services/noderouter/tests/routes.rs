//! Manifest routes against the real platform: matching and params, the permission
//! gate, RouteResult mapping (json, html in a sandbox, redirect, safe headers), and
//! files in and out. Webhooks: `routes_webhooks.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::shop::{manifest, user_with, MAIN};
use common::{post, role, Harness};
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn routes_match_gate_and_map_the_apps_answer() {
    let h = Harness::start().await;
    h.deploy_ok("shop", &[("manifest.json", &manifest()), ("main.py", MAIN)])
        .await;
    let api = format!("{}/apps/shop/api", h.url);

    // Params, query, passed headers; only safe headers come back.
    let r = h
        .http
        .get(format!("{api}/items/42?color=red%20dark&n=1"))
        .header("X-Github-Event", "ping")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-app-kind"], "item");
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert!(r.headers().get("set-cookie").is_none());
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["id"], "42");
    assert_eq!(b["q"], json!({"color": "red dark", "n": "1"}));
    assert!(b["headers"].get("authorization").is_none(), "{b}");

    // A literal segment wins over a param; GET answers HEAD.
    let r = h.http.get(format!("{api}/items/new")).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"plain": true}));
    let r = h.http.head(format!("{api}/items/7")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // JSON body and status.
    let r = h
        .http
        .post(format!("{api}/items"))
        .json(&json!({"name": "pen"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"made": {"name": "pen"}})
    );

    // A known path with another method: 405 with Allow; an unknown one: 404.
    let r = h.http.delete(format!("{api}/items")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers()["allow"], "POST");
    let r = h.http.get(format!("{api}/nothing")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // html is sandboxed; redirect is a 303.
    let r = h.http.get(format!("{api}/page")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .starts_with("sandbox"));
    let no_follow = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_follow.get(format!("{api}/go")).send().await.unwrap();
    // Without a credential the route refuses before the app runs.
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let token = h.platform.as_ref().unwrap().admin_token().to_owned();
    let r = no_follow
        .get(format!("{api}/go"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/apps/shop/");

    // The route's permission: a user without it is refused, one with it passes.
    role(&h, "shop-reader", &["shop:read"]).await;
    let plain = user_with(&h, "plain", &[]).await;
    let reader = user_with(&h, "reader", &["shop-reader"]).await;
    let r = plain.get(format!("{api}/items/1")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("shop:read"));
    let r = reader.get(format!("{api}/items/1")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn files_go_in_as_handles_and_out_as_expiring_attachment_links() {
    let h = Harness::start().await;
    h.deploy_ok("shop", &[("manifest.json", &manifest()), ("main.py", MAIN)])
        .await;
    let url = format!("{}/apps/shop/api/upload", h.url);
    let bytes: Vec<u8> = (0..2000u32).map(|i| (i % 251) as u8).collect();
    let form = reqwest::multipart::Form::new().text("note", "q3").part(
        "sheet",
        reqwest::multipart::Part::bytes(bytes.clone())
            .file_name("q3.xlsx")
            .mime_str("application/vnd.ms-excel")
            .unwrap(),
    );
    let r = h.http.post(&url).multipart(form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let b: Value = r.json().await.unwrap();
    use sha2::Digest as _;
    assert_eq!(
        b,
        json!({
            "files": [{"name": "q3.xlsx", "size": 2000, "type": "application/vnd.ms-excel",
                       "sha": hex::encode(sha2::Sha256::digest(&bytes))}],
            "form": {"note": "q3"}
        })
    );

    let big = reqwest::multipart::Form::new().part(
        "sheet",
        reqwest::multipart::Part::bytes(vec![7u8; 5000]).file_name("big.bin"),
    );
    let r = h.http.post(&url).multipart(big).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(r.text().await.unwrap().contains("4096"));
    // Nothing sent is an empty form; a body of another kind is a 415 naming both.
    let r = h.http.post(&url).send().await.unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"files": [], "form": {}})
    );
    let r = h
        .http
        .post(&url)
        .header("content-type", "text/plain")
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let said = r.text().await.unwrap();
    assert!(
        said.contains("multipart/form-data") && said.contains("text/plain"),
        "{said}"
    );

    // Files out: a short-lived link served as an attachment, 410 once expired.
    let r = h
        .http
        .get(format!("{}/apps/shop/api/export.csv", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let link: Value = r.json().await.unwrap();
    let path = link["download_url"].as_str().unwrap().to_owned();
    assert!(path.starts_with("/files/"), "{link}");
    // The link alone is the credential (it can be handed to a browser or a script).
    let r = reqwest::get(format!("{}{path}", h.url)).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "text/csv");
    assert_eq!(
        r.headers()["content-disposition"],
        "attachment; filename=\"items q3.csv\""
    );
    assert_eq!(r.text().await.unwrap(), "id,name\n1,pen\n");
    let r = reqwest::get(format!("{}/files/{}", h.url, "0".repeat(64)))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let db = sqlx::PgPool::connect(&h.db.url).await.unwrap();
    sqlx::query("UPDATE noderouter_core.app_files SET expires_at = NOW() - INTERVAL '1 second'")
        .execute(&db)
        .await
        .unwrap();
    let r = reqwest::get(format!("{}{path}", h.url)).await.unwrap();
    assert_eq!(r.status(), StatusCode::GONE);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["code"], "gone", "{b}");
}

/// A route's gate holds on the direct path too: the same `{"action": …}` posted to
/// `/api/sync/<app>` or `/api/async/<app>` takes the route's permission, a webhook's
/// action is served through its route only, and `_schedule`/`_job_id` are refused.
#[tokio::test]
async fn a_routes_gate_cannot_be_skipped_by_calling_the_app_directly() {
    let h = Harness::start().await;
    h.deploy_ok("shop", &[("manifest.json", &manifest()), ("main.py", MAIN)])
        .await;
    let viewer = user_with(&h, "walker", &[]).await;
    let sync = format!("{}/api/sync/shop", h.url);
    let submit = format!("{}/api/async/shop", h.url);

    // `item` is behind `shop:read` on its route.
    for url in [&sync, &submit] {
        let (s, b) = post(
            &viewer,
            url.clone(),
            json!({"action": "item", "params": {"id": "1"}}),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{url}: {b}");
        assert!(b["error"].as_str().unwrap().contains("shop:read"), "{b}");
    }
    // Spelled as the app reads it after the guide's `.strip()` (and a `.lower()`):
    // the same action, the same gate (before: 200 and 202, the gate skipped).
    for spelled in ["item ", "\titem", "ITEM", "\u{1c}Item\u{a0}"] {
        for url in [&sync, &submit] {
            let (s, b) = post(
                &viewer,
                url.clone(),
                json!({"action": spelled, "params": {"id": "1"}}),
            )
            .await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{url} {spelled:?}: {b}");
        }
    }
    // The webhook's action, with forged headers, from anyone: refused, the route named.
    for c in [&viewer, &h.http] {
        for spelled in ["hook", "\thook", "HOOK\n"] {
            let (s, b) = post(
                c,
                sync.clone(),
                json!({"action": spelled, "headers": {"x-github-event": "forged"}, "body": {"forged": true}}),
            )
            .await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{spelled:?}: {b}");
            assert!(
                b["error"].as_str().unwrap().contains("/apps/shop/api/hook"),
                "{b}"
            );
        }
    }
    // A body naming two actions, an ungated one first, is refused, not guessed at.
    let r = viewer
        .post(sync.clone())
        .header("content-type", "application/json")
        .body(r#"{"action": "other", "action": "item", "params": {"id": "1"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Keys only the platform sets.
    for key in ["_schedule", "_job_id"] {
        for url in [&sync, &submit] {
            let (s, b) = post(
                &h.http,
                url.clone(),
                json!({"action": "other", key: {"tick": "2020-01-01T00:00:00Z"}}),
            )
            .await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{url} {key}: {b}");
            assert!(b["error"].as_str().unwrap().contains(key), "{b}");
        }
    }
    // Ungated actions, and gated ones for a holder, are served as before.
    let (s, b) = post(&viewer, sync.clone(), json!({"action": "other"})).await;
    assert_eq!((s, b), (StatusCode::OK, json!({"plain": true})));
    let (s, b) = post(
        &h.http,
        sync.clone(),
        json!({"action": "item", "params": {"id": "7"}, "query": {}, "headers": {}}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

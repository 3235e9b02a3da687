//! Manifest routes and webhooks against the real platform: matching and params, the
//! permission gate, RouteResult mapping (json, html in a sandbox, redirect, safe
//! headers), and webhook signatures and replays.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{client_with_token, post, role, Harness};
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::Sha256;

const MAIN: &str = r#"
def execute(data, conn=None):
    a = str(data.get("action", "")).strip().lower()
    if a == "item":
        return {"json": {"id": data["params"]["id"], "q": data["query"], "headers": data["headers"]},
                "headers": {"X-App-Kind": "item", "Set-Cookie": "stolen=1", "Cache-Control": "no-store"}}
    if a == "create":
        return {"json": {"made": data["body"]}, "status": 201}
    if a == "page":
        return {"html": "<h1>hello</h1>"}
    if a == "go":
        return {"redirect": "/apps/shop/"}
    if a == "up":
        import hashlib
        from noderouter import read_upload
        files = data["body"]["files"]
        return {"files": [{"name": f["name"], "size": f["size"], "type": f["content_type"],
                           "sha": hashlib.sha256(read_upload(f)).hexdigest()} for f in files],
                "form": data["body"]["form"]}
    if a == "export":
        from noderouter import download
        return download("id,name\n1,pen\n", "items \"q3\".csv", "text/csv")
    if a == "hook":
        return {"received": data["body"], "event": data["headers"].get("x-github-event")}
    return {"plain": True}
"#;

fn manifest() -> String {
    json!({
        "app_name": "shop",
        "version": "1.0.0",
        "actions": [
            {"name": "item", "display_name": "Item"},
            {"name": "create", "display_name": "Create"},
            {"name": "page", "display_name": "Page"},
            {"name": "go", "display_name": "Go"},
            {"name": "hook", "display_name": "Hook"},
            {"name": "other", "display_name": "Other"},
            {"name": "up", "display_name": "Upload"},
            {"name": "export", "display_name": "Export"}
        ],
        "routes": [
            {"method": "GET", "path": "/items/:id", "action": "item", "permission": "shop:read"},
            {"method": "GET", "path": "/items/new", "action": "other"},
            {"method": "POST", "path": "/items", "action": "create"},
            {"method": "GET", "path": "/page", "action": "page"},
            {"method": "GET", "path": "/go", "action": "go"},
            {"method": "GET", "path": "/export.csv", "action": "export"},
            {"method": "POST", "path": "/upload", "action": "up", "upload": {"max_bytes": 4096}},
            {"method": "POST", "path": "/hook", "action": "hook",
             "webhook": {"secret_name": "HOOK_SECRET"}}
        ]
    })
    .to_string()
}

async fn user_with(h: &Harness, name: &str, roles: &[&str]) -> reqwest::Client {
    let (s, b) = post(
        &h.http,
        format!("{}/admin/api/users", h.url),
        json!({"username": name, "password": "a-long-password-42", "roles": roles}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = post(
        &reqwest::Client::new(),
        format!("{}/api/auth/login", h.url),
        json!({"username": name, "password": "a-long-password-42"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    client_with_token(b["token"].as_str().unwrap())
}

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

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

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

    let r = h
        .http
        .put(format!("{}/admin/api/apps/shop/env", h.url))
        .json(&json!({"name": "HOOK_SECRET", "value": "s3cret-value", "secret": true}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());

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

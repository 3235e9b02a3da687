//! The `shop` app of the route tests: routes of every kind, a webhook, an upload and a
//! download, and the helpers that call them.

use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::json;
use sha2::Sha256;

use super::{client_with_token, post, Harness};

pub const MAIN: &str = r#"
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

pub fn manifest() -> String {
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

pub async fn user_with(h: &Harness, name: &str, roles: &[&str]) -> reqwest::Client {
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

/// GitHub's `sha256=<hex>` signature of `body` under `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

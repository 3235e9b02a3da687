//! The admin pages of the shell over HTTP: `/admin/apps` (deploy, versions, rollback,
//! delete) and `/admin/notifications` (subscription toggles), their access rules, and the
//! actions `GET /api/apps` lists. The headless Chromium test is in
//! `admin_pages_browser.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::admin_pages::{bell_files, get_with, login, no_redirects, user_with, zip_of};
use common::{Harness, ADMIN_PASSWORD};
use reqwest::header::{CONTENT_TYPE, LOCATION};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn content_type(res: &reqwest::Response) -> String {
    res.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admin_pages_access_rules_and_app_actions() {
    let h = Harness::start().await;
    let app = "bellrules";
    let files = bell_files(app, "1.0.0");
    let (s, b) = h.deploy(&format!("{app}.zip"), zip_of(&files)).await;
    assert_eq!(s, StatusCode::OK, "{b}");

    // Without a session: to the login page, coming back afterwards.
    for (path, next) in [
        ("/admin/apps", "/admin/apps"),
        ("/admin/notifications", "/admin/notifications"),
    ] {
        let res = no_redirects()
            .get(format!("{}{path}", h.url))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(
            res.headers()[LOCATION].to_str().unwrap(),
            format!("/login?next={next}")
        );
    }

    // A user without apps:read / apps:deploy: 403 page for apps, notifications fine.
    let plain = user_with(&h, "plain", &[]).await;
    let res = get_with(&h, &plain, "/admin/apps").await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(content_type(&res).starts_with("text/html"));
    let body = res.text().await.unwrap();
    assert!(
        body.contains("apps:deploy") && body.contains("apps:read"),
        "{body}"
    );
    let res = get_with(&h, &plain, "/admin/notifications").await;
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.text().await.unwrap();
    assert!(body.contains("id=\"nr-admin-notifications\""), "{body}");
    assert!(body.contains("/nr-admin.js\""), "{body}");
    // The sidebar links the pages the viewer may open, the current one marked; Manage
    // apps is not offered to a user without apps:read or apps:deploy.
    assert!(
        body.contains(
            "id=\"nr-link-notifications\" href=\"/admin/notifications\" aria-current=\"page\""
        ) && !body.contains("href=\"/admin/apps\""),
        "{body}"
    );
    assert!(body.contains("id=\"nr-toasts\""), "{body}");

    // Readers and deployers see the apps page; so does the admin.
    let reader = user_with(&h, "reader", &["apps:read"]).await;
    let deployer = user_with(&h, "deployer", &["apps:deploy"]).await;
    let admin = login(&h, "admin", ADMIN_PASSWORD).await;
    for cookie in [&reader, &deployer, &admin] {
        let res = get_with(&h, cookie, "/admin/apps").await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["cache-control"], "no-store");
        let body = res.text().await.unwrap();
        assert!(
            body.contains("id=\"nr-deploy-form\"") && body.contains("name=\"file\""),
            "{body}"
        );
        assert!(body.contains("<title>Manage apps · NodeRouter</title>"));
    }

    // The page script is served like the shell's others.
    let res = get_with(&h, &plain, "/assets/nr-admin-apps.js").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(content_type(&res).starts_with("text/javascript"));
    let js = res.text().await.unwrap();
    assert!(js.contains("\"use strict\"") && js.contains("/admin/api/apps/deploy"));

    // GET /api/apps lists each app's actions, with `allowed` for the caller.
    let apps: Value = get_with(&h, &plain, "/api/apps")
        .await
        .json()
        .await
        .unwrap();
    let entry = apps["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["app_name"] == app)
        .unwrap_or_else(|| panic!("{apps}"));
    assert_eq!(entry["version"], "1.0.0");
    assert_eq!(entry["display_name"], "Bell <Page>");
    assert_eq!(
        entry["actions"],
        json!([
            {"name": "rang", "display_name": "Rang", "description": "The bell rang", "required_permission": "bell:hear", "allowed": false},
            {"name": "open", "display_name": "Open", "description": "Anyone may follow this", "required_permission": null, "allowed": true}
        ]),
        "{entry}"
    );
    let hearer = user_with(&h, "hearer", &["bell:hear"]).await;
    for cookie in [&hearer, &admin] {
        let apps: Value = get_with(&h, cookie, "/api/apps")
            .await
            .json()
            .await
            .unwrap();
        let entry = apps["apps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["app_name"] == app)
            .unwrap();
        assert_eq!(entry["actions"][0]["allowed"], true, "{entry}");
        assert_eq!(entry["actions"][1]["allowed"], true, "{entry}");
    }
}

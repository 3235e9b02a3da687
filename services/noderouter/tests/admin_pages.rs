//! The admin pages of the shell: `/admin/apps` (deploy, versions, rollback, delete)
//! and `/admin/notifications` (subscription toggles), their access rules, the actions
//! `GET /api/apps` lists, and a headless Chromium that deploys through the form,
//! toggles a subscription and sees the toast of a fired action.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::browser::{launch_chromium, Cdp, CHROMIUM};

use common::{Harness, ADMIN_PASSWORD};
use nr_testkit::manifest;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// A bundle whose call fires the action named in `data["action"]`; `rang` needs
/// `bell:hear`, `open` needs nothing.
fn bell_files(app: &str, version: &str) -> Vec<(String, String)> {
    let m = manifest(
        app,
        version,
        json!({
            "display_name": "Bell <Page>",
            "actions": [
                {"name": "rang", "display_name": "Rang", "description": "The bell rang", "required_permission": "bell:hear"},
                {"name": "open", "display_name": "Open", "description": "Anyone may follow this"}
            ]
        }),
    );
    vec![
        ("manifest.json".into(), m),
        (
            "main.py".into(),
            "def execute(data, conn=None):\n    return {'ok': True, '_actions': [{'name': data.get('action', 'open'), 'payload': data.get('payload')}]}\n".into(),
        ),
        (
            "index.html".into(),
            "<!doctype html><html><head><title>b</title></head><body><p class=\"bp-hello\">hello</p></body></html>\n".into(),
        ),
    ]
}

fn zip_of(files: &[(String, String)]) -> Vec<u8> {
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    nr_testkit::zip_files(&refs)
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn login(h: &Harness, username: &str, password: &str) -> String {
    let res = no_redirects()
        .post(format!("{}/api/auth/login", h.url))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("nr_session="))
        .expect("session cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

async fn get_with(h: &Harness, cookie: &str, path: &str) -> reqwest::Response {
    no_redirects()
        .get(format!("{}{path}", h.url))
        .header(COOKIE, format!("nr_session={cookie}"))
        .send()
        .await
        .unwrap()
}

async fn post_admin(h: &Harness, path: &str, body: Value) {
    let r = h
        .http
        .post(format!("{}{path}", h.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    let s = r.status();
    assert!(s.is_success(), "{path}: {s} {}", r.text().await.unwrap());
}

async fn user_with(h: &Harness, name: &str, permissions: &[&str]) -> String {
    let mut roles = Vec::new();
    if !permissions.is_empty() {
        let role = format!("{name}_role");
        post_admin(h, "/admin/api/roles", json!({"name": role})).await;
        for p in permissions {
            post_admin(
                h,
                &format!("/admin/api/roles/{role}/permissions"),
                json!({"permission": p}),
            )
            .await;
        }
        roles.push(role);
    }
    post_admin(
        h,
        "/admin/api/users",
        json!({"username": name, "password": "password-123", "roles": roles}),
    )
    .await;
    login(h, name, "password-123").await
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn browser_deploys_through_the_form_toggles_a_subscription_and_sees_a_toast() {
    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is not installed: this browser test needs it (apt-get install -y chromium)"
    );
    let h = Harness::start().await;
    let app = "bellpage";
    let cookie = login(&h, "admin", ADMIN_PASSWORD).await;
    let dir = tempfile::tempdir().unwrap();
    // Named with its version, as authors keep one zip per release.
    let good = dir.path().join(format!("{app}_1.0.0.zip"));
    std::fs::write(&good, zip_of(&bell_files(app, "1.0.0"))).unwrap();
    let bad = dir.path().join(format!("{app}.zip.bad"));
    // Not a zip at all: the deploy service refuses it.
    std::fs::write(&bad, b"this is not a zip").unwrap();

    let profile = tempfile::tempdir().unwrap();
    let (mut child, ws_url) = launch_chromium(profile.path()).await;
    let (ws, _) = tokio_tungstenite::connect_async(ws_url.as_str())
        .await
        .unwrap();
    let mut cdp = Cdp {
        ws,
        next_id: 0,
        session: None,
    };
    let target = cdp
        .call("Target.createTarget", json!({"url": "about:blank"}))
        .await;
    let attached = cdp
        .call(
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        )
        .await;
    cdp.session = Some(attached["sessionId"].as_str().unwrap().to_owned());
    cdp.call("Page.enable", json!({})).await;
    cdp.call("Runtime.enable", json!({})).await;
    cdp.call("Network.enable", json!({})).await;
    cdp.call("DOM.enable", json!({})).await;
    cdp.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": false}),
    )
    .await;
    cdp.call(
        "Network.setCookie",
        json!({"name": "nr_session", "value": cookie, "url": h.url, "httpOnly": true, "sameSite": "Strict"}),
    )
    .await;

    // ── /admin/apps: nothing deployed yet; the deploy form is there for the admin.
    cdp.call(
        "Page.navigate",
        json!({"url": format!("{}/admin/apps", h.url)}),
    )
    .await;
    cdp.wait_for("document.getElementById('nr-admin-apps-list') && document.getElementById('nr-admin-apps-list').getAttribute('data-nr-loaded') === '0'")
        .await;
    assert_eq!(
        cdp.eval("document.getElementById('nr-deploy-card').hidden")
            .await,
        json!(false)
    );
    cdp.wait_for(
        "document.querySelectorAll('#nr-link-admin-apps.active:not([hidden])').length === 1",
    )
    .await;

    // A file that is not a zip: the refusal is shown.
    upload(&mut cdp, &bad).await;
    cdp.wait_for(
        "document.getElementById('nr-deploy-result').getAttribute('data-nr-outcome') === 'refused'",
    )
    .await;
    let refusal = cdp
        .eval("document.getElementById('nr-deploy-result').textContent")
        .await;
    assert!(
        refusal.as_str().unwrap().contains("Refused (4")
            && refusal
                .as_str()
                .unwrap()
                .contains("the file is not a zip archive")
            && !refusal.as_str().unwrap().contains("EOCD"),
        "{refusal}"
    );
    assert_eq!(
        cdp.eval("document.querySelectorAll('#nr-deploy-result .alert-danger').length")
            .await,
        json!(1)
    );

    // The bundle: the report names the version; the list shows the app and its version.
    upload(&mut cdp, &good).await;
    cdp.wait_for("document.getElementById('nr-deploy-result').getAttribute('data-nr-outcome') === 'deployed'")
        .await;
    let report = cdp
        .eval(
            r#"(() => {
              const r = document.getElementById("nr-deploy-result");
              return {
                summary: r.querySelector(".nr-deploy-summary").textContent,
                text: r.textContent,
                warnings: r.querySelectorAll(".nr-finding").length,
              };
            })()"#,
        )
        .await;
    assert_eq!(
        report["summary"],
        json!(format!("Deployed {app} version 1.0.0")),
        "{report}"
    );
    let warnings = report["warnings"].as_u64().unwrap();
    assert!(
        if warnings == 0 {
            report["text"].as_str().unwrap().contains("No warnings.")
        } else {
            report["text"]
                .as_str()
                .unwrap()
                .contains(&format!("{warnings} warning(s)"))
        },
        "{report}"
    );
    cdp.wait_for(&format!(
        "document.querySelectorAll('.nr-admin-app[data-app=\"{app}\"] .nr-version[data-version=\"1.0.0\"]').length === 1"
    ))
    .await;
    // The menu was reloaded with the new app.
    cdp.wait_for(&format!(
        "document.querySelectorAll('#nr-nav a[href=\"/apps/{app}/\"]').length === 1"
    ))
    .await;
    let (s, b) = h
        .deploy(&format!("{app}.zip"), zip_of(&bell_files(app, "1.1.0")))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    cdp.eval("window.nrOld = true; location.reload(); true")
        .await;
    cdp.wait_for("!window.nrOld && document.readyState === 'complete'")
        .await;
    // Versions are folded: opening the fold loads them, with times in the viewer's
    // zone (no raw ISO strings) and a labelled actions column.
    cdp.wait_for(&format!(
        "(() => {{ const d = document.querySelector('.nr-admin-app[data-app=\"{app}\"][data-version=\"1.1.0\"] details'); if (d && !d.open) d.open = true; return !!d; }})()"
    ))
    .await;
    cdp.wait_for(&format!(
        "document.querySelectorAll('.nr-admin-app[data-app=\"{app}\"][data-version=\"1.1.0\"] button[data-nr-admin=\"rollback\"][data-version=\"1.0.0\"]').length === 1"
    ))
    .await;
    let table = cdp
        .eval(
            r#"(() => {
              const t = document.querySelector(".nr-versions");
              return {
                when: t.querySelector("tbody tr td:nth-child(2)").textContent,
                empty_headers: Array.from(t.querySelectorAll("th")).filter(h => !h.textContent.trim()).length,
                unlabelled: Array.from(document.querySelectorAll("input")).filter(i => !(i.labels && i.labels.length) && !i.getAttribute("aria-label")).length,
              };
            })()"#,
        )
        .await;
    assert!(regex_lite_when(table["when"].as_str().unwrap()), "{table}");
    assert_eq!(table["empty_headers"], json!(0), "{table}");
    assert_eq!(table["unlabelled"], json!(0), "{table}");
    let shot = cdp.screenshot("admin-apps.png").await;
    eprintln!("screenshot: {}", shot.display());
    // Rollback (confirm answered yes) makes 1.0.0 current again.
    cdp.eval(&format!(
        "window.confirm = () => true; document.querySelector('.nr-admin-app[data-app=\"{app}\"] button[data-nr-admin=\"rollback\"][data-version=\"1.0.0\"]').click(); true"
    ))
    .await;
    cdp.wait_for(&format!(
        "document.querySelectorAll('.nr-admin-app[data-app=\"{app}\"][data-version=\"1.0.0\"]').length === 1"
    ))
    .await;
    let apps: Value = get_with(&h, &cookie, "/api/apps")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(apps["apps"][0]["version"], "1.0.0", "{apps}");

    // ── /admin/notifications: toggle `open` on; the API has the subscription.
    cdp.call(
        "Page.navigate",
        json!({"url": format!("{}/admin/notifications", h.url)}),
    )
    .await;
    cdp.wait_for("document.getElementById('nr-notify-list') && document.getElementById('nr-notify-list').getAttribute('data-nr-loaded') === '1'")
        .await;
    let toggles = cdp
        .eval(
            r#"Array.from(document.querySelectorAll(".nr-notify-toggle")).map(t => ({
              app: t.dataset.app, action: t.dataset.action, checked: t.checked, disabled: t.disabled
            }))"#,
        )
        .await;
    assert_eq!(
        toggles,
        json!([
            {"app": app, "action": "rang", "checked": false, "disabled": false},
            {"app": app, "action": "open", "checked": false, "disabled": false}
        ])
    );
    cdp.eval(&format!(
        "document.querySelector('.nr-notify-toggle[data-app=\"{app}\"][data-action=\"open\"]').click(); true"
    ))
    .await;
    cdp.wait_for(&format!(
        "document.querySelector('.nr-notify-toggle[data-app=\"{app}\"][data-action=\"open\"]').getAttribute('data-nr-state') === 'on'"
    ))
    .await;
    let subs: Value = get_with(&h, &cookie, "/api/notify/subscriptions")
        .await
        .json()
        .await
        .unwrap();
    let list: Vec<(String, String)> = subs["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["app_name"].as_str().unwrap().to_owned(),
                s["action_name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(list, vec![(app.to_owned(), "open".to_owned())], "{subs}");

    // ── A fired action shows a toast on the shell page.
    cdp.wait_for("window.AdminWS && window.AdminWS.state === 'open'")
        .await;
    let (s, b) = h
        .sync(app, json!({"action": "open", "payload": {"n": "<7>"}}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let toast = cdp
        .wait_for(&format!(
            "(() => {{ const t = document.querySelector('#nr-toasts .nr-toast[data-nr-app=\"{app}\"][data-nr-action-name=\"open\"]'); return t ? t.textContent : null; }})()"
        ))
        .await;
    let toast = toast.as_str().unwrap();
    assert!(
        toast.contains("Bell <Page> · Open") && toast.contains("{\"n\":\"<7>\"}"),
        "{toast}"
    );
    // Text, not markup.
    assert_eq!(
        cdp.eval("!document.querySelector('#nr-toasts page')").await,
        json!(true)
    );
    // Shown (Bootstrap's fade-in done) and inside the viewport.
    let visible = cdp
        .wait_for(
            r##"(() => {
              const t = document.querySelector("#nr-toasts .nr-toast.show:not(.showing)");
              if (!t || getComputedStyle(t).opacity !== "1") return false;
              const r = t.getBoundingClientRect();
              return r.width > 0 && r.height > 0 && r.bottom <= innerHeight && r.right <= innerWidth;
            })()"##,
        )
        .await;
    assert_eq!(visible, json!(true));
    let shot = cdp.screenshot("admin-notifications-toast.png").await;
    eprintln!("screenshot: {}", shot.display());

    // Unsubscribe again through the toggle.
    cdp.eval(&format!(
        "document.querySelector('.nr-notify-toggle[data-app=\"{app}\"][data-action=\"open\"]').click(); true"
    ))
    .await;
    cdp.wait_for(&format!(
        "document.querySelector('.nr-notify-toggle[data-app=\"{app}\"][data-action=\"open\"]').getAttribute('data-nr-state') === 'off'"
    ))
    .await;
    let subs: Value = get_with(&h, &cookie, "/api/notify/subscriptions")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(subs["subscriptions"], json!([]), "{subs}");

    // A reader (apps:read, not bell:hear): lists without buttons, `rang` disabled with
    // the permission it needs.
    let reader = user_with(&h, "reader", &["apps:read"]).await;
    cdp.call("Network.clearBrowserCookies", json!({})).await;
    cdp.call(
        "Network.setCookie",
        json!({"name": "nr_session", "value": reader, "url": h.url, "httpOnly": true, "sameSite": "Strict"}),
    )
    .await;
    cdp.call(
        "Page.navigate",
        json!({"url": format!("{}/admin/apps", h.url)}),
    )
    .await;
    cdp.wait_for(&format!(
        "(() => {{ const d = document.querySelector('.nr-admin-app[data-app=\"{app}\"] details'); if (d && !d.open) d.open = true; return document.querySelectorAll('.nr-admin-app[data-app=\"{app}\"] .nr-version').length === 2; }})()"
    ))
    .await;
    let facts = cdp
        .eval("({deployHidden: document.getElementById('nr-deploy-card').hidden, buttons: document.querySelectorAll('[data-nr-admin]').length})")
        .await;
    assert_eq!(facts, json!({"deployHidden": true, "buttons": 0}));
    cdp.call(
        "Page.navigate",
        json!({"url": format!("{}/admin/notifications", h.url)}),
    )
    .await;
    cdp.wait_for("document.getElementById('nr-notify-list') && document.getElementById('nr-notify-list').getAttribute('data-nr-loaded') === '1'")
        .await;
    let rang = cdp
        .eval(&format!(
            "(() => {{ const t = document.querySelector('.nr-notify-toggle[data-app=\"{app}\"][data-action=\"rang\"]'); return {{disabled: t.disabled, note: t.closest('.nr-notify-action').querySelector('.nr-notify-denied').textContent}}; }})()"
        ))
        .await;
    assert_eq!(rang["disabled"], json!(true), "{rang}");
    assert!(
        rang["note"].as_str().unwrap().contains("bell:hear"),
        "{rang}"
    );

    // Back as the admin: delete the app (confirm answered yes).
    cdp.call("Network.clearBrowserCookies", json!({})).await;
    cdp.call(
        "Network.setCookie",
        json!({"name": "nr_session", "value": cookie, "url": h.url, "httpOnly": true, "sameSite": "Strict"}),
    )
    .await;
    cdp.call(
        "Page.navigate",
        json!({"url": format!("{}/admin/apps", h.url)}),
    )
    .await;
    cdp.wait_for(&format!(
        "document.querySelectorAll('.nr-admin-app[data-app=\"{app}\"] button[data-nr-admin=\"delete\"]').length === 1"
    ))
    .await;
    cdp.eval(&format!(
        "window.confirm = () => true; document.querySelector('.nr-admin-app[data-app=\"{app}\"] button[data-nr-admin=\"delete\"]').click(); true"
    ))
    .await;
    cdp.wait_for(
        "document.getElementById('nr-admin-apps-list').getAttribute('data-nr-loaded') === '0'",
    )
    .await;
    let apps: Value = get_with(&h, &cookie, "/api/apps")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(apps["apps"], json!([]), "{apps}");

    drop(cdp);
    let _ = child.kill().await;
}

/// `YYYY-MM-DD HH:mm`: a time as the page shows it (not `2026-11-28T09:01:02.123456Z`).
fn regex_lite_when(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 16
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b' ',
            13 => *c == b':',
            _ => c.is_ascii_digit(),
        })
}

/// Puts `file` into the deploy form's file input (DOM.setFileInputFiles) and submits.
async fn upload(cdp: &mut Cdp, file: &std::path::Path) {
    let doc = cdp.call("DOM.getDocument", json!({"depth": 0})).await;
    let node = cdp
        .call(
            "DOM.querySelector",
            json!({"nodeId": doc["root"]["nodeId"], "selector": "#nr-deploy-file"}),
        )
        .await;
    cdp.call(
        "DOM.setFileInputFiles",
        json!({"files": [file.to_string_lossy()], "nodeId": node["nodeId"]}),
    )
    .await;
    cdp.eval("document.getElementById('nr-deploy-form').requestSubmit(); true")
        .await;
}

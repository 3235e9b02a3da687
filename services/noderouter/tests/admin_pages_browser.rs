//! The admin pages in a headless Chromium: it deploys through the `/admin/apps` form,
//! toggles a subscription on `/admin/notifications` and sees the toast of a fired action.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::browser::{open_page, sign_in, Cdp};

use common::admin_pages::{bell_files, get_with, login, user_with, zip_of};
use common::{Harness, ADMIN_PASSWORD};
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn browser_deploys_through_the_form_toggles_a_subscription_and_sees_a_toast() {
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
    let (mut child, mut cdp) = open_page(profile.path()).await;
    cdp.call("DOM.enable", json!({})).await;
    sign_in(&mut cdp, &h.url, &cookie).await;

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

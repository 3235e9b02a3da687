//! Origins in a real browser (issue 10): a bundle's HTML file opened by an admin cannot
//! use the admin's session, the app page's own inline script runs under the CSP (and
//! its socket connects), and the login page does not send a signed-in user off-site.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::browser::{open_page, Cdp};
use common::{Harness, ADMIN_PASSWORD};
use nr_testkit::{app_name, manifest};
use serde_json::{json, Value};

async fn navigate(cdp: &mut Cdp, url: &str) {
    cdp.call("Page.navigate", json!({"url": url})).await;
    cdp.wait_for("document.readyState === 'complete'").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bundle_file_cannot_act_with_the_viewers_session_and_app_pages_still_work() {
    let h = Harness::start().await;
    let app = app_name("origin");
    let stealer = r#"<!doctype html><html><body><script>
      fetch('/admin/api/users').then(r => r.text()).then(t => { document.title = 'stolen:' + t.length; });
    </script></body></html>"#;
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
            ("main.py", "def execute(data, conn=None):\n    return {}\n"),
            (
                "index.html",
                "<!doctype html><html><head><style>.nr-probe{width:7px}</style></head><body><div class=\"nr-probe\" id=\"probe\">x</div><script>document.getElementById('probe').dataset.inline = 'ran';</script></body></html>",
            ),
            ("report.html", stealer),
        ],
    )
    .await;
    let login: Value = reqwest::Client::new()
        .post(format!("{}/api/auth/login", h.url))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cookie = login["token"].as_str().unwrap().to_owned();

    let profile = tempfile::tempdir().unwrap();
    let (mut child, mut cdp) = open_page(profile.path()).await;
    cdp.call(
        "Network.setCookie",
        json!({"name": "nr_session", "value": cookie, "url": h.url, "httpOnly": true, "sameSite": "Strict"}),
    )
    .await;

    // The app page: its inline script and style run by nonce; the hub's socket opens.
    navigate(&mut cdp, &format!("{}/apps/{app}/", h.url)).await;
    let ran = cdp
        .wait_for(
            "document.getElementById('probe') && document.getElementById('probe').dataset.inline",
        )
        .await;
    assert_eq!(ran, json!("ran"));
    assert_eq!(
        cdp.eval("getComputedStyle(document.getElementById('probe')).width")
            .await,
        json!("7px")
    );
    assert_eq!(
        cdp.wait_for("window.AdminWS && AdminWS.state === 'open'")
            .await,
        json!(true)
    );

    // The bundle's other HTML file, opened by the admin: no script, no session.
    navigate(&mut cdp, &format!("{}/apps/{app}/report.html", h.url)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let title = cdp.eval("document.title").await;
    assert!(
        !title.as_str().unwrap_or("").starts_with("stolen"),
        "{title}"
    );
    assert_eq!(
        cdp.eval("self.origin").await,
        json!("null"),
        "an opaque origin"
    );
    let attempt = cdp
        .eval(
            "fetch('/admin/api/users', {method: 'GET'}).then(r => r.status).catch(() => 'blocked')",
        )
        .await;
    assert_eq!(
        attempt,
        json!("blocked"),
        "the admin's session is out of reach"
    );

    // The login page with a next that the URL parser would turn into another host.
    cdp.call("Network.clearBrowserCookies", json!({})).await;
    navigate(
        &mut cdp,
        &format!("{}/login?next=/%09/evil.example/phish", h.url),
    )
    .await;
    cdp.eval(&format!(
        "document.getElementById('nr-username').value = 'admin';\
         document.getElementById('nr-password').value = '{ADMIN_PASSWORD}';\
         document.getElementById('nr-login-submit').click(); true"
    ))
    .await;
    let landed = cdp
        .wait_for("location.pathname === '/admin' && location.href")
        .await;
    let host = h.url.trim_start_matches("http://");
    assert!(
        landed
            .as_str()
            .unwrap()
            .starts_with(&format!("http://{host}/admin")),
        "{landed}"
    );
    let _ = child.kill().await;
}

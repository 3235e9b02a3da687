//! The shell in a real headless Chromium driven over the DevTools protocol: an app's page
//! runs inside the shell (its script, its styles kept to itself, its form), the theme
//! toggles and persists, the home and not-found pages, the menu at phone width, and the
//! login page returning to the app.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::browser::{open_page, sign_in};

use common::shell::{deploy_app, login};
use common::{Harness, ADMIN_PASSWORD};
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn browser_runs_the_app_in_the_shell_and_toggles_the_theme() {
    let h = Harness::start().await;
    let app = "browserapp";
    deploy_app(
        &h,
        app,
        "1.0.0",
        "Browser notes",
        json!({"display_name": "Browser Notes"}),
    )
    .await;
    for name in ["first <row>", "second row"] {
        let (s, b) = h.sync(app, json!({"action": "create", "name": name})).await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    let cookie = login(&h, "admin", ADMIN_PASSWORD).await;

    let profile = tempfile::tempdir().unwrap();
    let (mut child, mut cdp) = open_page(profile.path()).await;
    sign_in(&mut cdp, &h.url, &cookie).await;

    let page_url = format!("{}/apps/{app}/", h.url);
    cdp.call("Page.navigate", json!({"url": page_url})).await;
    // index.js ran inside the IIFE and rendered the rows /api/sync returned.
    let loaded = cdp
        .wait_for("document.querySelector('.nr-app') && document.querySelector('.nr-app').getAttribute('data-st-loaded')")
        .await;
    assert_eq!(loaded, json!("2"));
    let facts = cdp
        .eval(
            r#"(() => {
              const app = document.querySelector(".nr-app");
              return {
                path: location.pathname,
                rows: Array.from(app.querySelectorAll(".st-item")).map(li => li.textContent),
                error: app.getAttribute("data-st-error"),
                leaked: typeof esc !== "undefined" || typeof syncCall !== "undefined" || typeof refresh !== "undefined",
                bootstrap: typeof bootstrap === "object",
                dayjs: app.querySelector(".st-when").textContent,
                bodyScripts: Array.from(app.querySelectorAll("script")).map(s => s.getAttribute("src")),
                title: document.title,
                user: document.getElementById("nr-user").textContent,
              };
            })()"#,
        )
        .await;
    assert_eq!(facts["path"], json!(format!("/apps/{app}/")), "{facts}");
    assert_eq!(
        facts["rows"],
        json!(["second row", "first <row>"]),
        "{facts}"
    );
    assert_eq!(facts["error"], Value::Null, "{facts}");
    assert_eq!(facts["leaked"], json!(false), "{facts}");
    assert_eq!(
        facts["bootstrap"],
        json!(true),
        "layout's Bootstrap loaded: {facts}"
    );
    assert!(
        facts["dayjs"].as_str().unwrap().starts_with("dayjs 20"),
        "{facts}"
    );
    assert_eq!(
        facts["bodyScripts"],
        json!([format!("/apps/{app}/index.js")]),
        "{facts}"
    );
    assert_eq!(
        facts["title"],
        json!("Browser Notes · NodeRouter"),
        "{facts}"
    );
    // The app's bare `button` rule styles its own button, never the shell's.
    let transforms = cdp
        .eval(
            r#"(() => {
              const t = (el) => getComputedStyle(el).textTransform;
              return {
                app: t(document.querySelector(".nr-app .st-form button")),
                logout: t(document.getElementById("nr-logout")),
                theme: t(document.getElementById("nr-theme-toggle")),
              };
            })()"#,
        )
        .await;
    assert_eq!(
        transforms,
        json!({"app": "uppercase", "logout": "none", "theme": "none"}),
        "{transforms}"
    );
    // The menu from /api/apps links to the app, marked as the current page.
    cdp.wait_for(&format!(
        "document.querySelectorAll('#nr-nav a.active[href=\"/apps/{app}/\"]').length === 1"
    ))
    .await;
    cdp.wait_for("document.getElementById('nr-user').textContent === 'admin'")
        .await;

    // Adding a row through the form posts with the session cookie (origin-checked).
    cdp.eval(
        r#"(() => {
          const f = document.querySelector(".nr-app .st-form");
          f.elements.name.value = "third from the browser";
          f.requestSubmit();
        })()"#,
    )
    .await;
    cdp.wait_for("document.querySelector('.nr-app').getAttribute('data-st-loaded') === '3'")
        .await;

    // Theme: light first (set explicitly), toggled to dark by the button, persisted.
    // `window.nrOld` marks the page before a reload, so waits never see the old page.
    cdp.eval(
        "localStorage.setItem('nr-theme', 'light'); window.nrOld = true; location.reload(); true",
    )
    .await;
    cdp.wait_for("!window.nrOld && document.readyState === 'complete' && document.querySelector('.nr-app') && document.querySelector('.nr-app').getAttribute('data-st-loaded') === '3'").await;
    assert_eq!(
        cdp.eval("document.documentElement.dataset.bsTheme").await,
        json!("light")
    );
    let light = cdp.screenshot("app-light.png").await;
    let theme = cdp
        .eval("document.getElementById('nr-theme-toggle').click(); document.documentElement.dataset.bsTheme")
        .await;
    assert_eq!(theme, json!("dark"));
    assert_eq!(
        cdp.eval("localStorage.getItem('nr-theme')").await,
        json!("dark")
    );
    let bg = cdp
        .eval("getComputedStyle(document.body).backgroundColor")
        .await;
    assert_ne!(
        bg,
        json!("rgb(255, 255, 255)"),
        "dark theme repaints the page"
    );
    let dark = cdp.screenshot("app-dark.png").await;
    cdp.eval("window.nrOld = true; location.reload(); true")
        .await;
    cdp.wait_for("!window.nrOld && document.readyState === 'complete'")
        .await;
    assert_eq!(
        cdp.eval("document.documentElement.dataset.bsTheme").await,
        json!("dark")
    );
    assert_eq!(
        cdp.eval("document.getElementById('nr-theme-toggle').click(); document.documentElement.dataset.bsTheme").await,
        json!("light")
    );

    // The home page lists the app.
    cdp.call("Page.navigate", json!({"url": format!("{}/admin", h.url)}))
        .await;
    cdp.wait_for(&format!(
        "document.querySelectorAll('#nr-apps a[href=\"/apps/{app}/\"]').length === 1"
    ))
    .await;
    let home = cdp.screenshot("home-light.png").await;
    eprintln!(
        "screenshots: {} {} {}",
        light.display(),
        dark.display(),
        home.display()
    );

    // An unknown page is a friendly page, not JSON.
    cdp.call(
        "Page.navigate",
        json!({"url": format!("{}/admin/no-such-page", h.url)}),
    )
    .await;
    cdp.wait_for("document.readyState === 'complete' && document.title.startsWith('404')")
        .await;
    assert_eq!(
        cdp.eval("document.querySelector('a[href=\"/admin\"]') !== null && !document.body.textContent.includes('not_found')").await,
        json!(true)
    );

    // Phone width: no sideways scrolling; the menu opens over the top bar with a
    // backdrop, says so in aria-expanded, and Escape closes it.
    cdp.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": true}),
    )
    .await;
    cdp.call("Page.navigate", json!({"url": format!("{}/admin", h.url)}))
        .await;
    cdp.wait_for(&format!(
        "document.querySelectorAll('#nr-apps a[href=\"/apps/{app}/\"]').length === 1"
    ))
    .await;
    let narrow = cdp
        .eval("({scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth, expanded: document.getElementById('nr-menu-toggle').getAttribute('aria-expanded')})")
        .await;
    assert!(
        narrow["scroll"].as_u64().unwrap() <= narrow["client"].as_u64().unwrap(),
        "{narrow}"
    );
    assert_eq!(narrow["expanded"], json!("false"), "{narrow}");
    cdp.eval("document.getElementById('nr-menu-toggle').click(); true")
        .await;
    cdp.wait_for("document.getElementById('nr-menu-toggle').getAttribute('aria-expanded') === 'true' && !document.getElementById('nr-backdrop').hidden")
        .await;
    // After the slide-in, the point over the top bar's left belongs to the menu.
    cdp.wait_for("(() => { const e = document.elementFromPoint(20, 20); return !!e && !!e.closest('#nr-sidebar'); })()")
        .await;
    let menu_shot = cdp.screenshot("menu-390.png").await;
    eprintln!("menu screenshot: {}", menu_shot.display());
    cdp.call(
        "Input.dispatchKeyEvent",
        json!({"type": "keyDown", "key": "Escape", "code": "Escape", "windowsVirtualKeyCode": 27}),
    )
    .await;
    cdp.wait_for("document.getElementById('nr-menu-toggle').getAttribute('aria-expanded') === 'false' && document.getElementById('nr-backdrop').hidden")
        .await;
    cdp.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": false}),
    )
    .await;

    // Without the cookie the browser lands on the login page, and logging in there
    // returns to the app.
    cdp.call("Network.clearBrowserCookies", json!({})).await;
    cdp.call("Page.navigate", json!({"url": page_url})).await;
    cdp.wait_for("location.pathname === '/login' && !!document.getElementById('nr-login')")
        .await;
    let login_shot = cdp.screenshot("login.png").await;
    eprintln!("login screenshot: {}", login_shot.display());
    cdp.eval(&format!(
        r#"(() => {{
          const f = document.getElementById("nr-login");
          f.elements.username.value = "admin";
          f.elements.password.value = {};
          f.requestSubmit();
        }})()"#,
        json!(ADMIN_PASSWORD)
    ))
    .await;
    cdp.wait_for(&format!(
        "location.pathname === '/apps/{app}/' && !!document.querySelector('.nr-app') && document.querySelector('.nr-app').getAttribute('data-st-loaded') === '3'"
    ))
    .await;

    drop(cdp);
    let _ = child.kill().await;
}

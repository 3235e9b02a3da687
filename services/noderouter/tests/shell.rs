//! The browser side of the gateway: login page, app pages composed into the shell,
//! bundle files, embedded vendor assets, access rules, and a real headless Chromium
//! driven over the DevTools protocol.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::browser::{launch_chromium, Cdp, CHROMIUM};

use common::{guide_starter_main, Harness, ADMIN_PASSWORD};
use nr_testkit::manifest;
use reqwest::header::{CONTENT_TYPE, COOKIE, ETAG, IF_NONE_MATCH, LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A guide-style page: standalone Bootstrap links (stripped by the shell), a vendor
/// stylesheet and script, the app's style.css and index.js.
fn index_html(marker: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="UTF-8" />
  <title>shell test</title>
  <link rel="stylesheet" href="/static/css/bootstrap.min.css" />
  <link rel="stylesheet" href="/assets/vendor/tabulator.min.css" />
  <link rel="stylesheet" href="style.css" />
  <script src="/assets/vendor/dayjs.min.js"></script>
</head>
<body>
  <div class="container py-4">
    <h1 class="h3 mb-3 st-title">{marker}</h1>
    <p class="text-body-secondary st-when"></p>
    <form class="st-form d-flex gap-2 mb-3" data-action="create">
      <input class="form-control" name="name" placeholder="New item" required />
      <button class="btn btn-primary" type="submit">Add</button>
    </form>
    <ul class="st-list list-group"></ul>
  </div>
  <!-- Stripped by admin shell; kept for standalone testing: -->
  <script src="/static/js/bootstrap.bundle.min.js"></script>
  <script src="index.js"></script>
</body>
</html>
"#
    )
}

/// The notes example's script, with a flag the browser test reads.
fn index_js(app: &str) -> String {
    r#"(function () {
  "use strict";
  var root = document.querySelector(".nr-app") || document.body;
  function esc(str) {
    return String(str == null ? "" : str)
      .replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
  }
  async function syncCall(body) {
    var res = await fetch("/api/sync/<app>", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    var data = await res.json();
    if (!res.ok) throw new Error(data.error || "HTTP " + res.status);
    return data;
  }
  async function refresh() {
    var data = await syncCall({ action: "list" });
    root.querySelector(".st-list").innerHTML = data.rows
      .map(function (r) { return '<li class="list-group-item st-item">' + esc(r.name) + "</li>"; })
      .join("");
    root.setAttribute("data-st-loaded", String(data.rows.length));
  }
  root.querySelector(".st-when").textContent = "dayjs " + (typeof dayjs === "function" ? dayjs().format("YYYY") : "missing");
  root.addEventListener("submit", async function (e) {
    var form = e.target.closest("[data-action='create']");
    if (!form) return;
    e.preventDefault();
    await syncCall({ action: "create", name: form.elements.name.value });
    form.reset();
    refresh();
  });
  refresh().catch(function (err) { root.setAttribute("data-st-error", err.message); });
})();
"#
    .replace("<app>", app)
}

/// The app's stylesheet: its bare `button` rule must reach the app's buttons only.
const STYLE: &str =
    ".st-item { border-left: 3px solid var(--bs-primary); }\nbutton { text-transform: uppercase; }\n";

async fn deploy_app(h: &Harness, app: &str, version: &str, marker: &str, extra: Value) {
    let m = manifest(app, version, extra);
    let page = index_html(marker);
    let js = index_js(app);
    let main = guide_starter_main(app);
    h.deploy_ok(
        app,
        &[
            ("manifest.json", m.as_str()),
            ("main.py", main.as_str()),
            ("index.html", page.as_str()),
            ("index.js", js.as_str()),
            ("style.css", STYLE),
            ("libs/helper.py", "X = 1\n"),
            (
                "img/logo.svg",
                "<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
            ),
        ],
    )
    .await;
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Logs in through the API and returns the `nr_session` cookie value.
async fn login(h: &Harness, username: &str, password: &str) -> String {
    let res = no_redirects()
        .post(format!("{}/api/auth/login", h.url))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = res
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("nr_session="))
        .expect("session cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(!cookie.is_empty());
    cookie
}

async fn get_with(h: &Harness, cookie: &str, path: &str) -> reqwest::Response {
    no_redirects()
        .get(format!("{}{path}", h.url))
        .header(COOKIE, format!("nr_session={cookie}"))
        .send()
        .await
        .unwrap()
}

fn content_type(res: &reqwest::Response) -> String {
    res.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// A raw request line, so the path reaches the server exactly as written.
async fn raw_get(h: &Harness, path: &str, cookie: &str) -> u16 {
    let addr = h.url.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: nr_session={cookie}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out);
    text.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pages_files_assets_and_access_rules() {
    let h = Harness::start().await;
    let app = "shellapp";
    deploy_app(
        &h,
        app,
        "1.0.0",
        "First version",
        json!({"display_name": "Shell <Test>"}),
    )
    .await;
    let anon = no_redirects();

    // The login page is public HTML with a form.
    let res = anon.get(format!("{}/login", h.url)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(content_type(&res).starts_with("text/html"));
    let body = res.text().await.unwrap();
    assert!(
        body.contains("<form") && body.contains("/nr-login.js\""),
        "{body}"
    );

    // Pages without a session go to the login page, remembering where they were.
    for (path, next) in [
        (format!("/apps/{app}/"), format!("/login?next=/apps/{app}/")),
        ("/admin".to_owned(), "/login?next=/admin".to_owned()),
        ("/".to_owned(), "/login?next=/".to_owned()),
    ] {
        let res = anon.get(format!("{}{path}", h.url)).send().await.unwrap();
        assert!(res.status().is_redirection(), "{path}: {}", res.status());
        assert_eq!(res.headers()[LOCATION], next.as_str(), "{path}");
    }
    // A bad cookie is no session either; files answer 401 rather than redirecting.
    let res = get_with(&h, "not-a-token", &format!("/apps/{app}/")).await;
    assert!(res.status().is_redirection());
    let res = get_with(&h, "not-a-token", &format!("/apps/{app}/index.js")).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    let cookie = login(&h, "admin", ADMIN_PASSWORD).await;

    // The app page: the shell with the app's body inside .nr-app.
    let res = get_with(&h, &cookie, &format!("/apps/{app}")).await;
    assert!(res.status().is_redirection());
    assert_eq!(res.headers()[LOCATION], format!("/apps/{app}/").as_str());
    let res = get_with(&h, &cookie, &format!("/apps/{app}/")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(content_type(&res).starts_with("text/html"));
    assert_eq!(res.headers()["cache-control"], "no-store");
    let page = res.text().await.unwrap();
    let app_div = page.find("<div class=\"nr-app\"").expect("nr-app wrapper");
    let title = page.find("First version").expect("app body");
    let index_js = page
        .find(&format!("<script src=\"/apps/{app}/index.js\"></script>"))
        .expect("index.js resolved against the app");
    let bootstrap = page
        .find("/bootstrap.bundle.min.js\"></script>")
        .expect("layout's bootstrap");
    let admin_ws = page
        .find("<script src=\"/assets/admin-ws.js\"></script>")
        .expect("admin-ws.js");
    assert!(app_div < title && title < index_js && index_js < bootstrap && bootstrap < admin_ws);
    assert_eq!(
        page.matches("bootstrap.bundle.min.js").count(),
        1,
        "the app's bootstrap script is stripped: {page}"
    );
    assert_eq!(page.matches("bootstrap.min.css").count(), 1, "{page}");
    assert!(
        page.contains(&format!("href=\"/apps/{app}/style.css\"")),
        "{page}"
    );
    // Vendor files under their versioned names.
    assert!(page.contains("/tabulator.min.css\">") && page.contains("href=\"/assets/v/"));
    assert!(page.contains("/dayjs.min.js\"></script>") && !page.contains("\"/assets/vendor/"));
    // The display name is escaped where the shell interpolates it.
    assert!(
        page.contains("<title>Shell &lt;Test&gt; · NodeRouter</title>"),
        "{page}"
    );
    assert!(!page.contains("Shell <Test>"));

    // The home page.
    for path in ["/admin", "/"] {
        let res = get_with(&h, &cookie, path).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let body = res.text().await.unwrap();
        assert!(
            body.contains("id=\"nr-nav\"") && body.contains("id=\"nr-apps\""),
            "{body}"
        );
    }

    // The bundle's public files, with their types.
    for (path, ty, needle) in [
        ("index.js", "text/javascript", "use strict"),
        // The app's stylesheet comes confined to its wrapper.
        (
            "style.css",
            "text/css",
            ".nr-app[data-app=\"shellapp\"] button",
        ),
        ("img/logo.svg", "image/svg+xml", "<svg"),
        ("index.html", "text/html", "First version"),
    ] {
        let res = get_with(&h, &cookie, &format!("/apps/{app}/{path}")).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert!(
            content_type(&res).starts_with(ty),
            "{path}: {}",
            content_type(&res)
        );
        let etag = res.headers()[ETAG].to_str().unwrap().to_owned();
        assert!(res.text().await.unwrap().contains(needle), "{path}");
        let again = no_redirects()
            .get(format!("{}/apps/{app}/{path}", h.url))
            .header(COOKIE, format!("nr_session={cookie}"))
            .header(IF_NONE_MATCH, &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
    }

    // Private files and missing ones are not served.
    for path in [
        "main.py",
        "manifest.json",
        "libs/helper.py",
        "libs/x.js",
        "nope.js",
        "MAIN.PY",
    ] {
        let res = get_with(&h, &cookie, &format!("/apps/{app}/{path}")).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
    }

    // Traversal is refused, whether encoded or sent raw.
    let res = get_with(&h, &cookie, &format!("/apps/{app}/img%2F..%2F..%2Fmain.py")).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    for path in [
        format!("/apps/{app}/../../etc/passwd"),
        format!("/apps/{app}/img/../main.py"),
        format!("/apps/{app}/%2e%2e/%2e%2e/etc/passwd"),
        format!("/apps/{app}/img%5C..%5Cmain.py"),
    ] {
        let status = raw_get(&h, &path, &cookie).await;
        assert!(status == 400 || status == 404, "{path}: {status}");
    }

    // Embedded assets: right types, an ETag, revalidated under their plain names, 304.
    for (path, ty) in [
        ("/static/css/bootstrap.min.css", "text/css"),
        ("/static/js/bootstrap.bundle.min.js", "text/javascript"),
        ("/assets/bootstrap.min.css", "text/css"),
        ("/assets/bootstrap.bundle.min.js", "text/javascript"),
        ("/assets/vendor/echarts.min.js", "text/javascript"),
        ("/assets/vendor/tabulator.min.js", "text/javascript"),
        ("/assets/vendor/tabulator.min.css", "text/css"),
        ("/assets/vendor/xlsx.full.min.js", "text/javascript"),
        ("/assets/vendor/papaparse.min.js", "text/javascript"),
        ("/assets/vendor/dayjs.min.js", "text/javascript"),
        ("/assets/vendor/lucide.min.js", "text/javascript"),
        ("/assets/nr-shell.js", "text/javascript"),
        ("/assets/nr-shell.css", "text/css"),
    ] {
        let res = anon.get(format!("{}{path}", h.url)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert!(
            content_type(&res).starts_with(ty),
            "{path}: {}",
            content_type(&res)
        );
        assert_eq!(res.headers()["x-content-type-options"], "nosniff");
        let etag = res.headers()[ETAG].to_str().unwrap().to_owned();
        assert_eq!(res.headers()["cache-control"], "no-cache", "{path}");
        assert!(res.bytes().await.unwrap().len() > 1000, "{path}");
        let again = anon
            .get(format!("{}{path}", h.url))
            .header(IF_NONE_MATCH, &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
    }
    // Pages link the versioned names, cached for a year and never revalidated.
    let page = get_with(&h, &cookie, "/admin").await.text().await.unwrap();
    let versioned: Vec<&str> = page
        .split('"')
        .filter(|s| s.starts_with("/assets/v/"))
        .collect();
    assert!(versioned.len() >= 4, "{page}");
    for name in [
        "nr-shell.css",
        "nr-shell.js",
        "nr-theme.js",
        "bootstrap.min.css",
    ] {
        assert!(
            versioned.iter().any(|u| u.ends_with(name)),
            "{name}: {page}"
        );
        assert!(!page.contains(&format!("\"/assets/{name}\"")), "{name}");
    }
    for url in &versioned {
        let res = anon.get(format!("{}{url}", h.url)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{url}");
        assert_eq!(
            res.headers()["cache-control"],
            "public, max-age=31536000, immutable",
            "{url}"
        );
    }
    let app_page = get_with(&h, &cookie, &format!("/apps/{app}/"))
        .await
        .text()
        .await
        .unwrap();
    assert!(!app_page.contains("\"/assets/vendor/"), "{app_page}");
    let res = anon
        .get(format!("{}/assets/vendor/nope.js", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    // A new deploy is served at once.
    deploy_app(&h, app, "1.0.1", "Second version", json!({})).await;
    let page = get_with(&h, &cookie, &format!("/apps/{app}/"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Second version") && !page.contains("First version"));
    let html = get_with(&h, &cookie, &format!("/apps/{app}/index.html"))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("Second version"));

    // A user without the app's permission gets a 403 page (and 403 for its files);
    // the open app is fine for them.
    let guarded = "shellguarded";
    deploy_app(
        &h,
        guarded,
        "1.0.0",
        "Secret",
        json!({"required_permission": "secret:read"}),
    )
    .await;
    let (s, b) = {
        let r = h
            .http
            .post(format!("{}/admin/api/users", h.url))
            .json(&json!({"username": "viewer", "password": "password-123", "roles": []}))
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    };
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let viewer = login(&h, "viewer", "password-123").await;
    let res = get_with(&h, &viewer, &format!("/apps/{guarded}/")).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(content_type(&res).starts_with("text/html"));
    let body = res.text().await.unwrap();
    assert!(
        body.contains("secret:read") && !body.contains("Secret</h1>"),
        "{body}"
    );
    let res = get_with(&h, &viewer, &format!("/apps/{guarded}/index.js")).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = get_with(&h, &viewer, &format!("/apps/{app}/")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = get_with(&h, &cookie, &format!("/apps/{guarded}/")).await;
    assert_eq!(res.status(), StatusCode::OK, "the admin may use every app");

    // An app that is not deployed, and a name that cannot be one.
    assert_eq!(
        get_with(&h, &cookie, "/apps/nothere/").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get_with(&h, &cookie, "/apps/_bad/").await.status(),
        StatusCode::NOT_FOUND
    );
    // An unknown page is a page a person can act on, under the pages' policy.
    for path in ["/admin/nothing-here", "/nowhere"] {
        let res = get_with(&h, &cookie, path).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(content_type(&res).starts_with("text/html"), "{path}");
        assert!(res
            .headers()
            .get("content-security-policy")
            .is_some_and(|v| v.to_str().unwrap().contains("default-src 'self'")));
        let body = res.text().await.unwrap();
        assert!(body.contains("There is no page at this address"), "{body}");
        assert!(body.contains("href=\"/admin\""), "{body}");
    }
    // The API keeps its JSON error shape.
    let res = anon
        .get(format!("{}/api/nope", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["code"], "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn browser_runs_the_app_in_the_shell_and_toggles_the_theme() {
    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is not installed: this browser test needs it (apt-get install -y chromium)"
    );
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

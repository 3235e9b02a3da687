//! Helpers of the shell tests: a guide-style app (page, script, stylesheet, vendor
//! assets) deployed in one call, and a login through the API that returns the session
//! cookie.

use nr_testkit::manifest;
use reqwest::header::SET_COOKIE;
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{guide_starter_main, Harness};

/// A guide-style page: standalone Bootstrap links (stripped by the shell), a vendor
/// stylesheet and script, the app's style.css and index.js.
pub fn index_html(marker: &str) -> String {
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
pub fn index_js(app: &str) -> String {
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
pub const STYLE: &str =
    ".st-item { border-left: 3px solid var(--bs-primary); }\nbutton { text-transform: uppercase; }\n";

pub async fn deploy_app(h: &Harness, app: &str, version: &str, marker: &str, extra: Value) {
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

pub fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Logs in through the API and returns the `nr_session` cookie value.
pub async fn login(h: &Harness, username: &str, password: &str) -> String {
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

//! The browser side of the gateway over HTTP: login page, app pages composed into the
//! shell, bundle files, embedded vendor assets and access rules. The headless Chromium
//! test is in `shell_browser.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::shell::{deploy_app, login, no_redirects};
use common::{Harness, ADMIN_PASSWORD};
use reqwest::header::{CONTENT_TYPE, COOKIE, ETAG, IF_NONE_MATCH, LOCATION};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

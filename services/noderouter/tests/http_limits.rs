//! HTTP limits and origins (issue 10): slow clients are cut off, connections are
//! capped, and a bundle's files cannot act with the viewer's session while shell and
//! app pages allow only the platform's own origin.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::Harness;
use nr_testkit::{app_name, manifest};
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn addr(h: &Harness) -> String {
    h.url.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection (or `limit` passes); returns what it
/// sent and how long that took.
async fn until_closed(s: &mut TcpStream, limit: Duration) -> (String, Duration) {
    let t = Instant::now();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tokio::time::timeout(limit.saturating_sub(t.elapsed()), s.read(&mut chunk)).await {
            Err(_) => panic!("the connection is still open after {limit:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    (String::from_utf8_lossy(&buf).into_owned(), t.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_finish_its_request_head_is_cut_off() {
    let h = Harness::start_with(&["--header-timeout-s", "1"]).await;
    let mut s = TcpStream::connect(addr(&h)).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let (_, took) = until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(4), "{took:?}");
    // A client that sends nothing at all is cut off the same way.
    let mut idle = TcpStream::connect(addr(&h)).await.unwrap();
    let (_, took) = until_closed(&mut idle, Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(4), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_does_not_arrive_in_time_answers_408_and_closes() {
    let h = Harness::start_with(&["--body-timeout-s", "1"]).await;
    let token = h.platform.as_ref().unwrap().admin_token().to_owned();
    let mut s = TcpStream::connect(addr(&h)).await.unwrap();
    let head = format!(
        "POST /api/sync/anything HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"a\":"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let (answer, took) = until_closed(&mut s, Duration::from_secs(6)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_closed_at_once_and_slots_come_back() {
    let h = Harness::start_with(&["--max-connections", "4"]).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(addr(&h)).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        held.push(s);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = TcpStream::connect(addr(&h)).await.unwrap();
    let _ = extra
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let (answer, took) = until_closed(&mut extra, Duration::from_secs(3)).await;
    assert!(answer.is_empty(), "{answer}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    drop(held);
    let mut ok = false;
    for _ in 0..30 {
        if let Ok(r) = reqwest::get(format!("{}/healthz", h.url)).await {
            ok = r.status() == StatusCode::OK;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "a freed slot serves again");
}

/// A connection from `source` (any address of 127.0.0.0/8 reaches the loopback
/// listener) that has sent a request head's first line only, so it stays open.
async fn held_from(h: &Harness, source: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let mut s = socket.connect(addr(h).parse().unwrap()).await.unwrap();
    // A connection the server refuses may be closed before this arrives.
    let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await;
    s
}

/// Ends the request head begun by [`held_from`] and returns the status line, or "" when
/// the server closed the connection without answering.
async fn status_line(mut s: TcpStream) -> String {
    let _ = s.write_all(b"Connection: close\r\n\r\n").await;
    let (answer, took) = until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(4), "{took:?}");
    answer.lines().next().unwrap_or("").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_its_share_of_connections_and_others_still_get_in() {
    let h = Harness::start_with(&[
        "--max-connections",
        "8",
        "--max-connections-per-address",
        "3",
        "--header-timeout-s",
        "60",
    ])
    .await;
    let mut flood = Vec::new();
    for _ in 0..3 {
        flood.push(held_from(&h, "127.0.0.1").await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The flooding address's next connection is closed unanswered, at once...
    let extra = held_from(&h, "127.0.0.1").await;
    assert_eq!(status_line(extra).await, "");
    // ...while another address, with the whole cap far from full, is served.
    let other = held_from(&h, "127.0.0.2").await;
    assert_eq!(status_line(other).await, "HTTP/1.1 200 OK");
    // A place the flood gives back serves its address again.
    drop(flood.pop());
    let mut line = String::new();
    for _ in 0..30 {
        line = status_line(held_from(&h, "127.0.0.1").await).await;
        if !line.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(line, "HTTP/1.1 200 OK");
}

fn csp(r: &reqwest::Response) -> String {
    r.headers()
        .get("content-security-policy")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// The value of `directive` in a policy.
fn directive<'a>(policy: &'a str, name: &str) -> &'a str {
    policy
        .split(';')
        .map(str::trim)
        .find(|d| d.split_whitespace().next() == Some(name))
        .unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundle_files_are_sandboxed_and_pages_allow_only_this_origin() {
    let h = Harness::start().await;
    let app = app_name("files");
    let evil = "<script>fetch('/admin/api/users').then(r => r.text()).then(t => fetch('/admin/api/roles', {method: 'POST', body: t}))</script>";
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
            ("main.py", "def execute(data, conn=None):\n    return {}\n"),
            (
                "index.html",
                "<!doctype html><html><head><style>.x{color:red}</style></head><body><div class=\"x\" style=\"height:3px\">hi</div><script>window.nrInline = 1;</script><script src=\"index.js\"></script></body></html>",
            ),
            ("index.js", "window.nrFile = 1;"),
            ("report.html", evil),
            ("logo.svg", "<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>"),
        ],
    )
    .await;
    let get = |path: String| {
        let c = h.http.clone();
        let url = format!("{}{path}", h.url);
        async move { c.get(url).send().await.unwrap() }
    };
    for file in ["report.html", "logo.svg"] {
        let r = get(format!("/apps/{app}/{file}")).await;
        assert_eq!(r.status(), StatusCode::OK, "{file}");
        let p = csp(&r);
        assert!(directive(&p, "sandbox") == "sandbox", "{file}: {p}");
        assert_eq!(
            directive(&p, "default-src"),
            "default-src 'none'",
            "{file}: {p}"
        );
        // Another site cannot frame it (before: no frame-ancestors).
        assert_eq!(
            directive(&p, "frame-ancestors"),
            "frame-ancestors 'self'",
            "{file}: {p}"
        );
    }
    // The page opened raw is held to the pages' policy, not sandboxed.
    let r = get(format!("/apps/{app}/index.html")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let p = csp(&r);
    assert_eq!(directive(&p, "script-src"), "script-src 'self'", "{p}");
    assert!(!p.contains("sandbox"), "{p}");
    let r = get(format!("/apps/{app}/index.js")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        !csp(&r).contains("sandbox"),
        "a script is loaded by its page"
    );

    // The app page: this origin only, the author's inline code by nonce.
    let r = get(format!("/apps/{app}/")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let p = csp(&r);
    let script = directive(&p, "script-src").to_owned();
    assert!(script.starts_with("script-src 'self' 'nonce-"), "{p}");
    assert!(!script.contains("unsafe") && !script.contains('*'), "{p}");
    assert_eq!(directive(&p, "object-src"), "object-src 'none'");
    let nonce = script
        .split("'nonce-")
        .nth(1)
        .unwrap()
        .trim_end_matches('\'')
        .to_owned();
    let html = r.text().await.unwrap();
    assert!(
        html.contains(&format!("<script nonce=\"{nonce}\">window.nrInline = 1;")),
        "{html}"
    );
    assert!(
        html.contains(&format!("<style nonce=\"{nonce}\">")),
        "{html}"
    );
    // A nonce is never reused.
    let again = csp(&get(format!("/apps/{app}/")).await);
    assert!(!again.contains(&nonce));

    // Shell pages, the login page included.
    for path in ["/admin", "/admin/apps", "/login"] {
        let r = get(path.to_owned()).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let p = csp(&r);
        assert_eq!(
            directive(&p, "script-src"),
            "script-src 'self'",
            "{path}: {p}"
        );
        assert_eq!(
            directive(&p, "default-src"),
            "default-src 'self'",
            "{path}: {p}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_body_nested_too_deep_or_not_utf8_is_a_400_naming_why() {
    let h = Harness::start().await;
    let app = app_name("plain");
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
            (
                "main.py",
                "def execute(data, conn=None):\n    return {'ok': True}\n",
            ),
        ],
    )
    .await;
    let send = |body: Vec<u8>| {
        h.http
            .post(format!("{}/api/sync/{app}", h.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let deep = format!("{{\"a\":{}1{}}}", "[".repeat(5000), "]".repeat(5000));
    let r = send(deep.into_bytes()).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let b: serde_json::Value = r.json().await.unwrap();
    assert!(
        b["error"]
            .as_str()
            .unwrap()
            .contains("nested deeper than 128"),
        "{b}"
    );
    let r = send(b"{\"a\":\"\xff\"}".to_vec()).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let b: serde_json::Value = r.json().await.unwrap();
    assert!(!b.to_string().contains("UnicodeDecodeError"), "{b}");
    // The app serves as before.
    let (s, b) = h.sync(&app, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

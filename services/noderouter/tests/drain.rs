//! Graceful drain of the `noderouter up` binary on SIGTERM: the sync call in flight
//! completes, new calls are refused, WebSockets close with 1001, the process exits 0.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::StreamExt;
use nr_testkit::{app_name, manifest, TestDb, TestNats};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

const MAIN: &str = r#"
import os, time

HERE = os.path.dirname(os.path.abspath(__file__))

def execute(data, conn=None):
    time.sleep(float(data.get("sleep", 0)))
    # Reads its bundle after the wait: the runner must not have removed it.
    with open(os.path.join(HERE, "data.txt")) as f:
        return {"slept": data.get("sleep", 0), "data": f.read()}
"#;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_call_in_flight_refuses_new_ones_and_exits_0() {
    let nats = TestNats::start().await.unwrap();
    let db = TestDb::create().await.unwrap();
    let dir = common::traversable_tempdir();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let base = common::app_uid_base().to_string();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_noderouter"))
        .arg("up")
        .args(["--http-addr", &format!("127.0.0.1:{port}")])
        .args(["--nats-url", &nats.url])
        .arg("--nats-passwords-file")
        .arg(nats.passwords_file())
        .args(["--database-url", &db.url])
        .arg("--object-store-url")
        .arg(dir.path().join("objects"))
        .arg("--runner-dir")
        .arg(dir.path().join("runner"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--python", &nr_testkit::python()])
        .args(["--admin-password", common::ADMIN_PASSWORD])
        .args(["--jwt-secret", "test-secret-0123456789abcdef"])
        .args(["--runner-secret", common::RUNNER_SECRET])
        .args(["--app-uid-base", &base, "--app-uid-count", "1000"])
        .args(["--pool-size", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let anon = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while anon.get(format!("{url}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "the platform did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (s, b) = common::post(
        &anon,
        format!("{url}/api/auth/login"),
        json!({"username": "admin", "password": common::ADMIN_PASSWORD}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let token = b["token"].as_str().unwrap().to_owned();
    let http = common::client_with_token(&token);
    let app = app_name("drain");
    let zip = nr_testkit::zip_files(&[
        ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
        ("main.py", MAIN),
        ("data.txt", "kept"),
    ]);
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(zip).file_name(format!("{app}.zip")),
    );
    let res = http
        .post(format!("{url}/admin/api/apps/deploy"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let body = res.text().await.unwrap_or_default();
    assert_eq!(status, StatusCode::OK, "{body}");
    let (s, b) = common::post(&http, format!("{url}/api/sync/{app}"), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");

    // A socket of the hub, from the site's own origin.
    let mut req = format!("ws://127.0.0.1:{port}/api/ws/notify")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "cookie",
        HeaderValue::from_str(&format!("nr_session={token}")).unwrap(),
    );
    req.headers_mut().insert(
        "origin",
        HeaderValue::from_str(&format!("http://127.0.0.1:{port}")).unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let closed = tokio::spawn(async move {
        let limit = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            match tokio::time::timeout_at(limit, ws.next()).await {
                Ok(Some(Ok(Message::Close(f)))) => return f.map(|f| f.code),
                Ok(Some(Ok(_))) => continue,
                _ => return None,
            }
        }
    });

    // A slow call in flight when the signal arrives.
    let slow = {
        let (http, url, app) = (http.clone(), url.clone(), app.clone());
        tokio::spawn(async move {
            common::post(&http, format!("{url}/api/sync/{app}"), json!({"sleep": 3})).await
        })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // New calls are refused while the call in flight finishes.
    let fresh = tokio::time::timeout(
        Duration::from_secs(2),
        reqwest::Client::new()
            .post(format!("{url}/api/sync/{app}"))
            .bearer_auth(&token)
            .json(&json!({}))
            .send(),
    )
    .await
    .expect("a new call was left waiting instead of refused");
    match fresh {
        Err(e) => assert!(e.is_connect(), "{e}"),
        Ok(r) => panic!("a new call was taken during the drain: {}", r.status()),
    }
    let (s, b): (StatusCode, Value) = slow.await.unwrap();
    assert_eq!(
        (s, b),
        (StatusCode::OK, json!({"slept": 3, "data": "kept"}))
    );
    assert_eq!(closed.await.unwrap(), Some(CloseCode::Away));
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the process did not exit within 30 s")
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
}

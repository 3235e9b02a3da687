//! Fail fast, recover alone: NATS stopped and started again (or hanging), Postgres cut
//! off behind a proxy, an app's database backends terminated. Real NATS, Postgres and
//! workers. Starts refused are in `resilience_startup.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::resilience::deploy_version;
use common::Harness;
use noderouter::Platform;
use nr_testkit::{app_name, manifest, TestDb, TestNats};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Retries a sync call until it answers 200 with `want` (at most `limit`).
async fn until_ok(h: &Harness, app: &str, want: &Value, limit: Duration) -> (StatusCode, Value) {
    let deadline = Instant::now() + limit;
    loop {
        let (s, b) = h.sync(app, json!({})).await;
        if (s == StatusCode::OK && &b == want) || Instant::now() > deadline {
            return (s, b);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_nats_down_calls_answer_503_at_once_and_everything_resumes_when_it_is_back() {
    let mut h = Harness::start().await;
    let app = app_name("natsdown");
    let (s, b) = deploy_version(&h, &app, "1.0.0").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = h.sync(&app, json!({})).await;
    assert_eq!((s, &b), (StatusCode::OK, &json!({"version": "1.0.0"})));

    h.nats.stop();
    // The clients notice the closed connection; then every call fails fast.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..3 {
        let started = Instant::now();
        let (s, b) = h.sync(&app, json!({})).await;
        let took = started.elapsed();
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{b}");
        assert!(
            b["error"]
                .as_str()
                .unwrap_or("")
                .contains("NATS is unreachable"),
            "{b}"
        );
        assert_eq!(b["code"], "unavailable", "{b}");
        assert!(took < Duration::from_secs(1), "answered after {took:?}");
    }
    let (s, b) = h.submit(&app, json!({})).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{b}");
    let ready = h
        .http
        .get(format!("{}/readyz", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let ready: Value = ready.json().await.unwrap();
    let reason = ready["error"].as_str().unwrap_or("");
    assert!(reason.contains("NATS is unreachable"), "{ready}");
    assert!(!reason.contains("Postgres"), "{ready}");

    h.nats.restart().await.unwrap();
    // Same process, no restart: connections come back by themselves...
    let (s, b) = until_ok(
        &h,
        &app,
        &json!({"version": "1.0.0"}),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "calls did not resume: {b}");
    let ready = h
        .http
        .get(format!("{}/readyz", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    // ...and so do the followers: a new version reaches the gateway and the runner.
    let (s, b) = deploy_version(&h, &app, "2.0.0").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = until_ok(
        &h,
        &app,
        &json!({"version": "2.0.0"}),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "the new version was not served: {b}");
    assert_eq!(b, json!({"version": "2.0.0"}));
}

/// Resumes a paused process when the test ends, passed or failed.
struct Resume(i32);

impl Drop for Resume {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0),
            nix::sys::signal::Signal::SIGCONT,
        );
    }
}

/// A NATS server that hangs (here: paused with SIGSTOP) keeps the gateway's connection
/// open but answers nothing: `/readyz` says so within its probe time, rather than ready
/// while every change waits for an answer that does not come.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_reports_a_nats_server_that_hangs() {
    let h = Harness::start().await;
    let readyz = || async {
        let res = tokio::time::timeout(
            Duration::from_secs(10),
            h.http.get(format!("{}/readyz", h.url)).send(),
        )
        .await
        .expect("/readyz did not answer within 10 s")
        .unwrap();
        let status = res.status();
        (status, res.json::<Value>().await.unwrap_or(Value::Null))
    };
    let (s, b) = readyz().await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let pid = h.nats.pid() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .unwrap();
    let resume = Resume(pid);
    let (s, b) = readyz().await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{b}");
    assert!(
        b["error"]
            .as_str()
            .unwrap_or("")
            .contains("NATS is unreachable"),
        "{b}"
    );
    drop(resume);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (s, b) = readyz().await;
        if s == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not ready again after SIGCONT: {b}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Calls over the bus (as between separate services): one that is running when the
/// gateway's NATS connection drops cannot get its reply any more, and is answered 503 at
/// once instead of after its whole time limit; calls resume when NATS is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bus_call_in_flight_when_nats_drops_is_answered_503_at_once() {
    let mut h = Harness::start_with(&["--bus-calls"]).await;
    let app = app_name("inflight");
    let main = "import time\ndef execute(data, conn=None):\n    time.sleep(data.get('sleep', 0))\n    return {'slept': True}\n";
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
            ("main.py", main),
        ],
    )
    .await;
    let (s, b) = h.sync(&app, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");

    let call = {
        let (http, url) = (h.http.clone(), format!("{}/api/sync/{app}", h.url));
        tokio::spawn(async move {
            let started = Instant::now();
            let res = http
                .post(url)
                .json(&json!({"sleep": 2}))
                .send()
                .await
                .unwrap();
            let status = res.status();
            let body: Value = res.json().await.unwrap_or(Value::Null);
            (status, body, started.elapsed())
        })
    };
    // The call is in the app's worker when NATS goes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    h.nats.stop();
    let (s, b, took) = tokio::time::timeout(Duration::from_secs(15), call)
        .await
        .expect("the call still waits 15 s after the connection dropped")
        .unwrap();
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{b}");
    assert!(
        b["error"]
            .as_str()
            .unwrap_or("")
            .contains("lost its connection to NATS during this call"),
        "{b}"
    );
    assert!(took < Duration::from_secs(2), "answered after {took:?}");

    h.nats.restart().await.unwrap();
    let (s, b) = until_ok(&h, &app, &json!({"slept": true}), Duration::from_secs(30)).await;
    assert_eq!(s, StatusCode::OK, "calls did not resume: {b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_app_backends_are_terminated_the_next_call_succeeds() {
    let h = Harness::start_with(&["--pool-size", "1"]).await;
    let app = app_name("stale");
    let main = "def execute(data, conn=None):\n    with conn.cursor() as cur:\n        cur.execute(\"SELECT pg_backend_pid()\")\n        pid = cur.fetchone()[0]\n    return {\"pid\": pid}\n";
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
            ("main.py", main),
        ],
    )
    .await;
    let (s, first) = h.sync(&app, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{first}");
    let pool = sqlx::PgPool::connect(&h.db.url).await.unwrap();
    for round in 0..2 {
        // What a Postgres restart does to every warm connection.
        let (killed,): (i64,) = sqlx::query_as(
            "SELECT count(pg_terminate_backend(a.pid)) FROM pg_stat_activity a \
             JOIN noderouter_core.app_identities i ON i.db_role = a.usename \
             WHERE i.app_name = $1 AND a.datname = current_database()",
        )
        .bind(&app)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert!(
            killed >= 1,
            "round {round}: no backend of the app to terminate"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        for _ in 0..3 {
            let (s, b) = h.sync(&app, json!({})).await;
            assert_eq!(
                s,
                StatusCode::OK,
                "round {round}: a call failed on a stale connection: {b}"
            );
            assert_ne!(b["pid"], first["pid"], "{b}");
        }
    }
}

/// A TCP proxy to Postgres that the test can cut: listener closed and every open
/// connection dropped, as when the database host goes away.
struct CutProxy {
    port: u16,
    cut: tokio_util::sync::CancellationToken,
}

impl CutProxy {
    async fn start(target: u16) -> CutProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = tokio_util::sync::CancellationToken::new();
        let stop = cut.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = stop.cancelled() => return,
                    a = listener.accept() => a,
                };
                let Ok((mut inbound, _)) = accepted else {
                    continue;
                };
                let stop = stop.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = stop.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    }
                });
            }
        });
        CutProxy { port, cut }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_postgres_unreachable_platform_endpoints_answer_503_naming_it() {
    let nats = TestNats::start().await.unwrap();
    let db = TestDb::create().await.unwrap();
    let dir = common::traversable_tempdir();
    // postgres://user@host:port/db -> the same through the proxy.
    let (head, tail) = db.url.rsplit_once('/').unwrap();
    let (host, port) = head.rsplit_once(':').unwrap();
    let proxy = CutProxy::start(port.parse().unwrap()).await;
    let via = format!("{host}:{}/{tail}", proxy.port);
    let mut config = common::config_for(&nats, &db, dir.path(), &[]);
    config.gateway.db.database_url = via;
    let platform = Platform::start(config).await.expect("platform starts");
    let http = common::client_with_token(platform.admin_token());
    let url = platform.url();
    let res = http
        .get(format!("{url}/admin/api/users"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    proxy.cut.cancel();
    tokio::time::sleep(Duration::from_millis(200)).await;
    for path in ["/admin/api/users", "/admin/api/roles", "/api/async/jobs"] {
        let res = http.get(format!("{url}{path}")).send().await.unwrap();
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}: {body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap_or("")
                .contains("Postgres is unreachable"),
            "{path}: {body}"
        );
    }
    let ready = http.get(format!("{url}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let ready: Value = ready.json().await.unwrap();
    let reason = ready["error"].as_str().unwrap_or("");
    assert!(reason.contains("Postgres is unreachable"), "{ready}");
    assert!(!reason.contains("NATS"), "{ready}");
    platform.shutdown().await.unwrap();
}

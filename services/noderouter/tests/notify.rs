//! The WebSocket hub end to end: real sockets against the whole platform, a second hub
//! instance on its own port, and an outside NATS consumer in another process.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{client_with_token, post, role, Harness};
use futures::{SinkExt, StreamExt};
use nr_contracts::events::{ActionTriggered, ACTION_TRIGGERED};
use nr_contracts::{subjects, Envelope};
use nr_testkit::{app_name, manifest};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct User {
    http: reqwest::Client,
    token: String,
}

/// Creates a user with `roles` and logs in.
async fn user(h: &Harness, name: &str, roles: &[&str]) -> User {
    let (s, b) = post(
        &h.http,
        format!("{}/admin/api/users", h.url),
        json!({"username": name, "password": "password-123", "roles": roles}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = post(
        &reqwest::Client::new(),
        format!("{}/api/auth/login", h.url),
        json!({"username": name, "password": "password-123"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let token = b["token"].as_str().unwrap().to_owned();
    User {
        http: client_with_token(&token),
        token,
    }
}

/// An app whose call fires the action named in `data["action"]` with `data["payload"]`.
/// `rang` needs `bell:hear`; `open` needs nothing.
async fn bell_app(h: &Harness) -> String {
    let app = app_name("bell");
    h.deploy_ok(
        &app,
        &[
            (
                "manifest.json",
                &manifest(
                    &app,
                    "1.0.0",
                    json!({
                        "actions": [
                            {"name": "rang", "display_name": "Rang", "required_permission": "bell:hear"},
                            {"name": "open", "display_name": "Open"}
                        ]
                    }),
                ),
            ),
            (
                "main.py",
                "import time\n\
                 def execute(data, conn=None):\n\
                 \x20   if data.get('_job_id'):\n\
                 \x20       time.sleep(0.3)\n\
                 \x20       return {'done': True}\n\
                 \x20   return {'ok': True, '_actions': [{'name': data['action'], 'payload': data.get('payload')}]}\n",
            ),
        ],
    )
    .await;
    app
}

async fn subscribe(h: &Harness, u: &User, app: &str, action: &str) {
    let (s, b) = post(
        &u.http,
        format!("{}/api/notify/subscribe", h.url),
        json!({"app_name": app, "action_name": action}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

async fn fire(h: &Harness, app: &str, action: &str, payload: Value) {
    let (s, b) = h
        .sync(app, json!({"action": action, "payload": payload}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(b.get("_actions").is_none(), "{b}");
}

fn ws_url(base: &str, query: &str) -> String {
    let host = base.trim_start_matches("http://");
    format!("ws://{host}/api/ws/notify{query}")
}

/// Opens a socket with the session cookie, from the site's own origin.
async fn ws_cookie(base: &str, token: &str, query: &str) -> Ws {
    let mut req = ws_url(base, query).into_client_request().unwrap();
    let host = base.trim_start_matches("http://").to_owned();
    req.headers_mut().insert(
        "cookie",
        HeaderValue::from_str(&format!("nr_session={token}")).unwrap(),
    );
    req.headers_mut().insert(
        "origin",
        HeaderValue::from_str(&format!("http://{host}")).unwrap(),
    );
    let (ws, res) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(res.status(), 101);
    ws
}

/// The HTTP status of a refused handshake.
async fn refused(req: tokio_tungstenite::tungstenite::handshake::client::Request) -> (u16, Value) {
    match tokio_tungstenite::connect_async(req).await {
        Ok(_) => panic!("the handshake was accepted"),
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            let status = res.status().as_u16();
            let body = res
                .body()
                .as_ref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            (status, body)
        }
        Err(e) => panic!("unexpected handshake error: {e}"),
    }
}

/// The next JSON message within `limit` (None when none came).
async fn next_json(ws: &mut Ws, limit: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return None,
            Ok(Some(Ok(Message::Text(t)))) => return Some(serde_json::from_str(&t).unwrap()),
            Ok(Some(Ok(Message::Close(f)))) => panic!("socket closed: {f:?}"),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => panic!("socket failed: {e}"),
            Ok(None) => panic!("socket ended"),
        }
    }
}

/// Every message that arrives within `limit`.
async fn drain(ws: &mut Ws, limit: Duration) -> Vec<Value> {
    let mut all = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    while let Some(v) = next_json(ws, deadline - tokio::time::Instant::now()).await {
        all.push(v);
    }
    all
}

async fn next_action(ws: &mut Ws) -> Value {
    loop {
        let v = next_json(ws, Duration::from_secs(15))
            .await
            .expect("an action message");
        if v["type"] == "action" {
            return v;
        }
    }
}

async fn ticket(u: &User, base: &str) -> String {
    let (s, b) = post(&u.http, format!("{base}/api/notify/ticket"), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["ticket"].as_str().unwrap().to_owned()
}

const WAIT: Duration = Duration::from_secs(15);
const QUIET: Duration = Duration::from_millis(1500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_receives_the_action_and_nobody_else_does() {
    let h = Harness::start().await;
    let app = bell_app(&h).await;
    role(&h, "hearers", &["bell:hear"]).await;
    let alice = user(&h, "alice", &["hearers"]).await;
    let bob = user(&h, "bob", &["hearers"]).await;
    subscribe(&h, &alice, &app, "rang").await;
    // Bob may hear it but did not subscribe.
    let mut a = ws_cookie(&h.url, &alice.token, "").await;
    let mut b = ws_cookie(&h.url, &bob.token, "").await;

    fire(&h, &app, "rang", json!({"deal": 7})).await;
    let msg = tokio::time::timeout(WAIT, next_action(&mut a))
        .await
        .unwrap();
    assert_eq!(msg["app_name"], app.as_str());
    assert_eq!(msg["action_name"], "rang");
    assert_eq!(msg["payload"], json!({"deal": 7}));
    assert!(msg["id"].as_u64().unwrap() >= 1, "{msg}");
    assert!(msg["ts"].as_str().unwrap().contains('T'), "{msg}");
    let keys: Vec<&str> = msg
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 6, "{msg}");
    // Alice is not subscribed to `open`; Bob to nothing.
    fire(&h, &app, "open", json!(1)).await;
    assert!(drain(&mut a, QUIET).await.is_empty());
    assert!(drain(&mut b, QUIET).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_the_permission_stops_delivery_at_once() {
    let h = Harness::start().await;
    let app = bell_app(&h).await;
    role(&h, "hearers", &["bell:hear"]).await;
    let alice = user(&h, "alice", &["hearers"]).await;
    subscribe(&h, &alice, &app, "rang").await;
    subscribe(&h, &alice, &app, "open").await;
    let mut a = ws_cookie(&h.url, &alice.token, "").await;
    fire(&h, &app, "rang", json!("before")).await;
    assert_eq!(next_action(&mut a).await["payload"], "before");

    let r = h
        .http
        .delete(format!(
            "{}/admin/api/roles/hearers/permissions/bell:hear",
            h.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{:?}", r.text().await);
    fire(&h, &app, "rang", json!("after")).await;
    // `open` needs no permission; it comes after `rang` in the stream, so once it is
    // here the revoked one would have been too.
    fire(&h, &app, "open", json!("marker")).await;
    let next = next_action(&mut a).await;
    assert_eq!(next["action_name"], "open", "{next}");
    assert_eq!(next["payload"], "marker");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_with_the_last_id_replays_what_was_missed_without_duplicates() {
    let h = Harness::start().await;
    let app = bell_app(&h).await;
    let alice = user(&h, "alice", &[]).await;
    subscribe(&h, &alice, &app, "open").await;
    let mut a = ws_cookie(&h.url, &alice.token, "").await;
    fire(&h, &app, "open", json!(1)).await;
    let first = next_action(&mut a).await;
    let last_id = first["id"].as_u64().unwrap();
    a.close(None).await.unwrap();
    drop(a);

    for n in 2..=4 {
        fire(&h, &app, "open", json!(n)).await;
    }
    let mut b = ws_cookie(&h.url, &alice.token, &format!("?last_id={last_id}")).await;
    fire(&h, &app, "open", json!(5)).await;
    let got = drain(&mut b, Duration::from_secs(4)).await;
    let payloads: Vec<Value> = got.iter().map(|m| m["payload"].clone()).collect();
    assert_eq!(
        payloads,
        vec![json!(2), json!(3), json!(4), json!(5)],
        "{got:?}"
    );
    let ids: Vec<u64> = got.iter().map(|m| m["id"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    // Resuming from the newest id replays nothing.
    let newest = *ids.last().unwrap();
    let mut c = ws_cookie(&h.url, &alice.token, &format!("?last_id={newest}")).await;
    assert!(drain(&mut c, QUIET).await.is_empty());
    // A bad id is refused with the error shape.
    let req = ws_url(&h.url, "?last_id=x").into_client_request().unwrap();
    let mut req = req;
    req.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {}", alice.token)).unwrap(),
    );
    let (status, body) = refused(req).await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "bad_request");
}

/// A second hub on its own port against the same NATS and database.
async fn second_hub(h: &Harness) -> (String, CancellationToken) {
    let db = nr_infra::db::connect(&h.db.url, 4).await.unwrap();
    let nats = h.nats_client().await;
    let config = common::config_for(&h.nats, &h.db, h.dir.path(), &[]);
    let notify = nr_notify::Notify::build(
        nr_notify::NotifyConfig {
            http_addr: "127.0.0.1:0".into(),
            nats: config.gateway.nats.clone(),
            db: config.gateway.db.clone(),
            auth: config.gateway.auth.clone(),
            limits: nr_notify::HubLimits::default(),
        },
        nr_notify::NotifyDeps { nats, db },
    )
    .await
    .unwrap();
    let stop = CancellationToken::new();
    let (addr, serve) = nr_telemetry::serve(
        "127.0.0.1:0",
        "NR_NOTIFY_ADDR",
        notify.router(),
        stop.clone(),
    )
    .await
    .unwrap();
    tokio::spawn(serve);
    let s = stop.clone();
    tokio::spawn(async move { notify.run_until_stopped(s).await });
    (format!("http://{addr}"), stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_hubs_each_socket_gets_each_event_once_and_a_ticket_works_once() {
    let h = Harness::start().await;
    let app = bell_app(&h).await;
    let alice = user(&h, "alice", &[]).await;
    let bob = user(&h, "bob", &[]).await;
    subscribe(&h, &alice, &app, "open").await;
    subscribe(&h, &bob, &app, "open").await;
    let (other, stop) = second_hub(&h).await;

    // Alice on the gateway's hub, Bob on the second one (by a one-time ticket).
    let mut a = ws_cookie(&h.url, &alice.token, "").await;
    let t = ticket(&bob, &h.url).await;
    let (mut b, _) = tokio_tungstenite::connect_async(ws_url(&other, &format!("?ticket={t}")))
        .await
        .unwrap();
    // The ticket is spent, on either hub.
    for base in [&other, &h.url] {
        let (status, body) = refused(
            ws_url(base, &format!("?ticket={t}"))
                .into_client_request()
                .unwrap(),
        )
        .await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["code"], "unauthorized");
    }

    for n in 0..3 {
        fire(&h, &app, "open", json!(n)).await;
    }
    for ws in [&mut a, &mut b] {
        let got = drain(ws, Duration::from_secs(4)).await;
        let payloads: Vec<Value> = got.iter().map(|m| m["payload"].clone()).collect();
        assert_eq!(payloads, vec![json!(0), json!(1), json!(2)], "{got:?}");
    }
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_closed_with_1013_and_the_hub_keeps_serving() {
    let h = Harness::start_with(&["--ws-queue", "16"]).await;
    let app = bell_app(&h).await;
    let alice = user(&h, "alice", &[]).await;
    subscribe(&h, &alice, &app, "open").await;
    let mut slow = ws_cookie(&h.url, &alice.token, "").await;
    let mut fine = ws_cookie(&h.url, &alice.token, "").await;

    // A client that keeps reading gets everything, in order.
    let total = 400;
    let (read_tx, mut read_rx) = tokio::sync::watch::channel(0u64);
    let reader = tokio::spawn(async move {
        for n in 0..total {
            let m = next_action(&mut fine).await;
            assert_eq!(m["payload"]["n"], n, "in order, none missing");
            read_tx.send_replace(n + 1);
        }
        fine
    });
    // Far more than the socket buffers hold, published as the runner does.
    let js = async_nats::jetstream::new(h.nats_client().await);
    let big = "x".repeat(64 * 1024);
    for n in 0..total {
        // Keep the reading client within a few messages (it is not what is measured).
        read_rx
            .wait_for(|read| *read + 4 >= n)
            .await
            .expect("the reader runs");
        let event = Envelope::new(
            ACTION_TRIGGERED,
            "test",
            ActionTriggered {
                app_name: app.clone(),
                action_name: "open".into(),
                payload: json!({"n": n, "pad": big}),
                declared: true,
                request_id: None,
                job_id: None,
            },
        );
        nr_infra::bus::publish_event(&js, &subjects::action_triggered(&app, "open"), &event, None)
            .await
            .unwrap();
    }
    let mut fine = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("the reading client keeps up")
        .unwrap();
    // The stalled one, once it reads again, finds the close code after what was buffered.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut code = None;
    let mut received = 0;
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(10), slow.next()).await {
            Ok(Some(Ok(Message::Text(_)))) => received += 1,
            Ok(Some(Ok(Message::Close(f)))) => {
                code = f.map(|f| f.code);
                break;
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_))) | Ok(None) | Err(_) => break,
        }
    }
    assert_eq!(code, Some(CloseCode::Again), "after {received} messages");
    assert!(received < total, "the slow socket was cut off early");

    fire(&h, &app, "open", json!("still serving")).await;
    assert_eq!(next_action(&mut fine).await["payload"], "still serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_frame_over_the_cap_closes_the_socket() {
    let h = Harness::start().await;
    let alice = user(&h, "alice", &[]).await;
    let mut a = ws_cookie(&h.url, &alice.token, "").await;
    a.send(Message::Text("small is fine".into())).await.unwrap();
    a.send(Message::Text("x".repeat(64 * 1024).into()))
        .await
        .unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match a.next().await {
                Some(Ok(Message::Close(f))) => return f.map(|f| f.code),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    })
    .await
    .expect("the socket is closed");
    assert!(
        closed.is_none() || closed == Some(CloseCode::Size),
        "{closed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_progress_reaches_the_submitter_only() {
    let h = Harness::start().await;
    let app = bell_app(&h).await;
    let alice = user(&h, "alice", &[]).await;
    let bob = user(&h, "bob", &[]).await;
    let mut a = ws_cookie(&h.url, &alice.token, "").await;
    let mut b = ws_cookie(&h.url, &bob.token, "").await;
    let r = alice
        .http
        .post(format!("{}/api/async/{app}", h.url))
        .json(&json!({"action": "open"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let job: Value = r.json().await.unwrap();
    let id = job["job_id"].as_str().unwrap().to_owned();
    let mut statuses = Vec::new();
    loop {
        let m = next_json(&mut a, WAIT).await.expect("job messages");
        assert_eq!(m["type"], "job", "{m}");
        assert_eq!(m["job_id"], id.as_str());
        assert_eq!(m["app_name"], app.as_str());
        assert!(m["progress"].is_i64(), "{m}");
        let status = m["status"].as_str().unwrap().to_owned();
        statuses.push(status.clone());
        if status == "completed" {
            assert_eq!(m["progress"], 100);
            break;
        }
        assert!(status == "running" || status == "pending", "{m}");
    }
    assert!(drain(&mut b, QUIET).await.is_empty(), "bob sees nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_need_a_credential_and_cookies_need_the_sites_origin() {
    let h = Harness::start().await;
    let alice = user(&h, "alice", &[]).await;
    let host = h.url.trim_start_matches("http://").to_owned();

    let (status, body) = refused(ws_url(&h.url, "").into_client_request().unwrap()).await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "unauthorized");
    assert!(body["error"].as_str().unwrap().contains("ticket"), "{body}");

    let with_origin = |origin: &str| {
        let mut req = ws_url(&h.url, "").into_client_request().unwrap();
        req.headers_mut().insert(
            "cookie",
            HeaderValue::from_str(&format!("nr_session={}", alice.token)).unwrap(),
        );
        if !origin.is_empty() {
            req.headers_mut()
                .insert("origin", HeaderValue::from_str(origin).unwrap());
        }
        req
    };
    let (status, body) = refused(with_origin("http://evil.example")).await;
    assert_eq!(status, 403);
    assert_eq!(body["code"], "forbidden");
    assert_eq!(refused(with_origin("")).await.0, 403);
    let (_, res) = tokio_tungstenite::connect_async(with_origin(&format!("http://{host}")))
        .await
        .unwrap();
    assert_eq!(res.status(), 101);

    let (status, _) = refused(
        ws_url(&h.url, "?ticket=nrk_made_up")
            .into_client_request()
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    let mut bad = ws_url(&h.url, "").into_client_request().unwrap();
    bad.headers_mut().insert(
        "authorization",
        HeaderValue::from_static("Bearer not-a-token"),
    );
    assert_eq!(refused(bad).await.0, 401);
    // The ticket endpoint itself needs a caller.
    let r = reqwest::Client::new()
        .post(format!("{}/api/notify/ticket", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let t = ticket(&alice, &h.url).await;
    assert!(t.starts_with("nrk_"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_ws_client_is_served() {
    let h = Harness::start().await;
    let r = reqwest::get(format!("{}/assets/admin-ws.js", h.url))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    let body = r.text().await.unwrap();
    for api in ["AdminWS", "onJob", "onAction", "last_id=", "sessionStorage"] {
        assert!(body.contains(api), "{api}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outside_python_process_decodes_what_an_app_fired() {
    let h = Harness::start().await;
    let app = bell_app(&h).await;
    let script = r#"
import asyncio, json, sys
import msgpack, nats

async def main():
    nc = await nats.connect(sys.argv[1])
    done = asyncio.get_running_loop().create_future()
    async def on_msg(msg):
        event = msgpack.unpackb(msg.data, raw=False)
        if not done.done():
            done.set_result({"subject": msg.subject, "event": event})
    await nc.subscribe("action.triggered.>", cb=on_msg)
    await nc.flush()
    print("ready", flush=True)
    print(json.dumps(await asyncio.wait_for(done, 30)), flush=True)
    await nc.close()

asyncio.run(main())
"#;
    let mut child = tokio::process::Command::new(nr_testkit::python())
        .arg("-c")
        .arg(script)
        // An outside system holds only the read-only credentials.
        .arg(h.nats.url_as(common::Role::Reader))
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let ready = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ready.as_deref(), Some("ready"));

    fire(&h, &app, "open", json!({"deal_id": 42, "amount": 9.5})).await;
    let line = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .expect("the consumer printed the event");
    let got: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(got["subject"], format!("action.triggered.{app}.open"));
    let event = &got["event"];
    assert_eq!(event["type"], "action.triggered");
    assert_eq!(event["data"]["app_name"], app.as_str());
    assert_eq!(event["data"]["action_name"], "open");
    assert_eq!(
        event["data"]["payload"],
        json!({"deal_id": 42, "amount": 9.5})
    );
    assert_eq!(event["data"]["declared"], true);
    assert!(uuid_like(event["id"].as_str().unwrap()), "{event}");
    assert!(child.wait().await.unwrap().success());
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_pings_and_closes_a_client_that_never_answers() {
    let h = Harness::start_with(&["--ws-ping-s", "0.2"]).await;
    let alice = user(&h, "alice", &[]).await;
    let mut live = ws_cookie(&h.url, &alice.token, "").await;
    let mut silent = ws_cookie(&h.url, &alice.token, "").await;
    // A client that reads answers pings (tungstenite replies on read) and stays open.
    let mut pings = 0;
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    while let Ok(Some(frame)) = tokio::time::timeout_at(until, live.next()).await {
        match frame.unwrap() {
            Message::Ping(_) => pings += 1,
            other => panic!("unexpected frame {other:?}"),
        }
    }
    assert!(pings >= 5, "{pings} pings in 3 s");
    // One that read nothing meanwhile has answered no ping: the hub closed it (1001). It
    // sees the close frame, or, when its late pongs hit the closed connection, a reset.
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match silent.next().await {
                Some(Ok(Message::Close(f))) => return Some(f.map(|f| f.code)),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    })
    .await
    .expect("the silent client was disconnected");
    assert!(
        ended.is_none() || ended == Some(Some(CloseCode::Away)),
        "{ended:?}"
    );
}

/// Errors of `instance` against `schemas/events/<name>.json`.
fn schema_errors(name: &str, instance: &Value) -> Vec<String> {
    let path = nr_testkit::workspace_root().join(format!("schemas/events/{name}.json"));
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    validator
        .iter_errors(instance)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_platform_publishes_validates_against_the_event_schemas() {
    let h = Harness::start().await;
    let app = bell_app(&h).await;
    let nats = h.nats_client().await;
    let mut events = nats.subscribe("action.triggered.>").await.unwrap();
    let mut jobs = nats.subscribe("job.>").await.unwrap();
    h.nats.subscribed(&nats, "action.triggered.>").await;
    h.nats.subscribed(&nats, "job.>").await;

    fire(&h, &app, "open", json!({"nested": [1, "two", null]})).await;
    let (s, job) = h.submit(&app, json!({"action": "open"})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{job}");
    let id = job["job_id"].as_str().unwrap().to_owned();

    let msg = tokio::time::timeout(WAIT, events.next())
        .await
        .unwrap()
        .unwrap();
    let event: Value = nr_contracts::decode(&msg.payload).unwrap();
    let errs = schema_errors("action.triggered", &event);
    assert!(errs.is_empty(), "{event:#}\n{}", errs.join("\n"));

    let mut seen = std::collections::BTreeSet::new();
    loop {
        let msg = tokio::time::timeout(WAIT, jobs.next())
            .await
            .unwrap()
            .unwrap();
        let event: Value = nr_contracts::decode(&msg.payload).unwrap();
        let kind = event["type"].as_str().unwrap().to_owned();
        if kind != "job.submitted" && kind != "job.progress" {
            continue;
        }
        let errs = schema_errors(&kind, &event);
        assert!(errs.is_empty(), "{event:#}\n{}", errs.join("\n"));
        assert_eq!(event["data"]["job_id"], id.as_str());
        seen.insert(kind);
        if event["data"]["status"] == "completed" {
            break;
        }
    }
    assert!(
        seen.contains("job.submitted") && seen.contains("job.progress"),
        "{seen:?}"
    );
}

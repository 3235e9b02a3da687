//! The hub ends access when it should (issue 10): replay bounded by the subscription
//! and by what the viewer may see now, sockets closed within seconds when the session
//! or the access behind them ends, and a cap on sockets per user.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{client_with_token, post, role, Harness, JWT_SECRET};
use futures::{SinkExt, StreamExt};
use nr_testkit::{app_name, manifest};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const PASSWORD: &str = "password-123";

struct User {
    id: String,
    http: reqwest::Client,
    token: String,
}

async fn user(h: &Harness, name: &str, roles: &[&str]) -> User {
    let (s, b) = post(
        &h.http,
        format!("{}/admin/api/users", h.url),
        json!({"username": name, "password": PASSWORD, "roles": roles}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let id = b["id"].as_str().unwrap().to_owned();
    let (s, b) = post(
        &reqwest::Client::new(),
        format!("{}/api/auth/login", h.url),
        json!({"username": name, "password": PASSWORD}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let token = b["token"].as_str().unwrap().to_owned();
    User {
        id,
        http: client_with_token(&token),
        token,
    }
}

/// `open` needs nothing; `rang` needs `bell:hear`; the app needs `bell:use`.
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
                        "required_permission": "bell:use",
                        "actions": [
                            {"name": "rang", "display_name": "Rang", "required_permission": "bell:hear"},
                            {"name": "open", "display_name": "Open"}
                        ]
                    }),
                ),
            ),
            (
                "main.py",
                "def execute(data, conn=None):\n    return {'_actions': [{'name': data['action'], 'payload': data.get('payload')}]}\n",
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
}

/// Opens a socket with a bearer credential (or a ticket in `query`).
async fn ws(base: &str, bearer: Option<&str>, query: &str) -> Result<Ws, u16> {
    let host = base.trim_start_matches("http://");
    let mut req = format!("ws://{host}/api/ws/notify{query}")
        .into_client_request()
        .unwrap();
    if let Some(t) = bearer {
        req.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {t}")).unwrap(),
        );
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => Err(res.status().as_u16()),
        Err(e) => panic!("unexpected handshake error: {e}"),
    }
}

/// Payloads of the action messages arriving within `limit`.
async fn payloads(ws: &mut Ws, limit: Duration) -> Vec<Value> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline, ws.next()).await {
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] == "action" {
                out.push(v["payload"].clone());
            }
        }
    }
    out
}

/// Waits for the server to close the socket; returns the close code.
async fn closed_with(ws: &mut Ws, within: Duration) -> u16 {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => panic!("the socket is still open after {within:?}"),
            Ok(Some(Ok(Message::Close(Some(f))))) => return f.code.into(),
            Ok(Some(Ok(Message::Close(None)))) | Ok(None) => return 1005,
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(_))) => return 1006,
        }
    }
}

const SECONDS: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_never_delivers_events_from_before_the_subscription_or_no_longer_visible() {
    let h = Harness::start().await;
    let app = bell_app(&h).await;
    role(&h, "users", &["bell:use"]).await;
    role(&h, "hearers", &["bell:hear"]).await;
    let alice = user(&h, "alice", &["users", "hearers"]).await;
    fire(&h, &app, "open", json!("before")).await;
    subscribe(&h, &alice, &app, "open").await;
    subscribe(&h, &alice, &app, "rang").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    fire(&h, &app, "open", json!("after")).await;
    fire(&h, &app, "rang", json!("rang")).await;
    let mut s = ws(&h.url, Some(&alice.token), "?last_id=0").await.unwrap();
    assert_eq!(
        payloads(&mut s, Duration::from_secs(3)).await,
        vec![json!("after"), json!("rang")]
    );
    drop(s);

    // Losing the action's permission hides its past events too; losing the app's
    // permission hides all of them.
    let r = h
        .http
        .delete(format!(
            "{}/admin/api/roles/hearers/permissions/bell:hear",
            h.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let mut s = ws(&h.url, Some(&alice.token), "?last_id=0").await.unwrap();
    assert_eq!(
        payloads(&mut s, Duration::from_secs(3)).await,
        vec![json!("after")]
    );
    drop(s);
    let r = h
        .http
        .delete(format!(
            "{}/admin/api/roles/users/permissions/bell:use",
            h.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let mut s = ws(&h.url, Some(&alice.token), "?last_id=0").await.unwrap();
    assert!(payloads(&mut s, Duration::from_secs(3)).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_sockets_close_within_seconds_when_access_ends() {
    let h = Harness::start().await;
    role(&h, "hearers", &["bell:hear"]).await;

    // Logout, by bearer and by a ticket issued to the session.
    let ann = user(&h, "ann", &[]).await;
    let mut by_bearer = ws(&h.url, Some(&ann.token), "").await.unwrap();
    let (s, b) = post(&ann.http, format!("{}/api/notify/ticket", h.url), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let q = format!("?ticket={}", b["ticket"].as_str().unwrap());
    let mut by_ticket = ws(&h.url, None, &q).await.unwrap();
    let (s, _) = post(&ann.http, format!("{}/api/auth/logout", h.url), json!({})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        closed_with(&mut by_bearer, SECONDS).await,
        4401,
        "logout (bearer)"
    );
    assert_eq!(
        closed_with(&mut by_ticket, SECONDS).await,
        4401,
        "logout (ticket)"
    );

    // A password change.
    let ben = user(&h, "ben", &[]).await;
    let mut s = ws(&h.url, Some(&ben.token), "").await.unwrap();
    let (st, b) = post(
        &ben.http,
        format!("{}/api/auth/password", h.url),
        json!({"current_password": PASSWORD, "new_password": "another-password-2"}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(closed_with(&mut s, SECONDS).await, 4401, "password change");

    // The user disabled.
    let cy = user(&h, "cy", &[]).await;
    let mut s = ws(&h.url, Some(&cy.token), "").await.unwrap();
    let r = h
        .http
        .patch(format!("{}/admin/api/users/{}", h.url, cy.id))
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(closed_with(&mut s, SECONDS).await, 4401, "disabled");

    // A role change that removes access.
    let dee = user(&h, "dee", &["hearers"]).await;
    let mut s = ws(&h.url, Some(&dee.token), "").await.unwrap();
    let r = h
        .http
        .put(format!("{}/admin/api/users/{}/roles", h.url, dee.id))
        .json(&json!({"roles": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(closed_with(&mut s, SECONDS).await, 4403, "role removed");

    // An API token revoked.
    let (st, b) = post(
        &h.http,
        format!("{}/admin/api/tokens", h.url),
        json!({"name": "feed", "roles": ["hearers"]}),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let token_id = b["id"].as_str().unwrap().to_owned();
    let mut s = ws(&h.url, b["token"].as_str(), "").await.unwrap();
    let r = h
        .http
        .delete(format!("{}/admin/api/tokens/{token_id}", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(closed_with(&mut s, SECONDS).await, 4401, "token revoked");

    // Someone else's change leaves a socket open.
    let eve = user(&h, "eve", &[]).await;
    let mut s = ws(&h.url, Some(&eve.token), "").await.unwrap();
    role(&h, "unrelated", &["x:y"]).await;
    let quiet = tokio::time::timeout(Duration::from_secs(1), s.next()).await;
    assert!(
        !matches!(quiet, Ok(Some(Ok(Message::Close(_)))) | Ok(None)),
        "{quiet:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_cannot_become_a_socket_does_not_use_up_its_ticket() {
    let h = Harness::start().await;
    let kim = user(&h, "kim", &[]).await;
    let (s, b) = post(&kim.http, format!("{}/api/notify/ticket", h.url), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let ticket = b["ticket"].as_str().unwrap().to_owned();
    // A plain GET (a link followed, a prefetch), then a bad last_id.
    let r = reqwest::get(format!("{}/api/ws/notify?ticket={ticket}", h.url))
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("WebSocket upgrade is required"));
    let bad = format!("?ticket={ticket}&last_id=yesterday");
    assert_eq!(ws(&h.url, None, &bad).await.err(), Some(400));
    // Before: both used the ticket up, and this answered 401.
    let q = format!("?ticket={ticket}");
    assert!(ws(&h.url, None, &q).await.is_ok());
    // Once, still.
    assert_eq!(ws(&h.url, None, &q).await.err(), Some(401));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_holds_at_most_the_configured_number_of_sockets() {
    let h = Harness::start_with(&["--ws-max-per-user", "2"]).await;
    let fay = user(&h, "fay", &[]).await;
    let a = ws(&h.url, Some(&fay.token), "").await.unwrap();
    let _b = ws(&h.url, Some(&fay.token), "").await.unwrap();
    assert_eq!(ws(&h.url, Some(&fay.token), "").await.err(), Some(429));
    // Another user is not affected; a closed socket frees its slot.
    let gus = user(&h, "gus", &[]).await;
    assert!(ws(&h.url, Some(&gus.token), "").await.is_ok());
    drop(a);
    let mut ok = false;
    for _ in 0..50 {
        if ws(&h.url, Some(&fay.token), "").await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "the slot of a closed socket is given back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_under_the_cap_that_takes_several_reads_keeps_the_socket_serving() {
    let h = Harness::start().await;
    let app = bell_app(&h).await;
    role(&h, "users", &["bell:use"]).await;
    let ida = user(&h, "ida", &["users"]).await;
    subscribe(&h, &ida, &app, "open").await;
    let mut a = ws(&h.url, Some(&ida.token), "").await.unwrap();
    // The hub reads a socket 512 bytes at a time; the inbound cap is 4,096 bytes.
    a.send(Message::Text("y".repeat(4000).into()))
        .await
        .unwrap();
    a.send(Message::Ping("still there".into())).await.unwrap();
    fire(&h, &app, "open", json!("after a large frame")).await;
    assert_eq!(
        payloads(&mut a, SECONDS).await,
        vec![json!("after a large frame")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_refused_over_the_socket_cap_opens_a_socket_once_a_slot_is_free() {
    let h = Harness::start_with(&["--ws-max-per-user", "1"]).await;
    let lea = user(&h, "lea", &[]).await;
    let first = ws(&h.url, Some(&lea.token), "").await.unwrap();
    let (s, b) = post(&lea.http, format!("{}/api/notify/ticket", h.url), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let q = format!("?ticket={}", b["ticket"].as_str().unwrap());
    assert_eq!(ws(&h.url, None, &q).await.err(), Some(429));
    drop(first);
    // Before: the 429 had used the ticket up, and every later try answered 401.
    let mut opened = None;
    for _ in 0..50 {
        match ws(&h.url, None, &q).await {
            Ok(socket) => {
                opened = Some(socket);
                break;
            }
            Err(status) => assert_eq!(status, 429, "the ticket is still good"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        opened.is_some(),
        "the slot of the closed socket is given back"
    );
    // And it opened one socket only.
    assert_eq!(ws(&h.url, None, &q).await.err(), Some(401));
}

/// `token` (a session) with its expiry moved to `secs` from now, signed with the
/// platform's key: what a shorter `NR_SESSION_TTL_S` would have issued.
fn expiring(token: &str, secs: i64) -> String {
    use base64::Engine as _;
    use hmac::{Hmac, Mac};
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = token.split('.');
    let (head, claims) = (parts.next().unwrap(), parts.next().unwrap());
    let mut c: Value = serde_json::from_slice(&b64.decode(claims).unwrap()).unwrap();
    c["exp"] = json!(chrono::Utc::now().timestamp() + secs);
    let body = format!("{head}.{}", b64.encode(c.to_string()));
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(JWT_SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    format!("{body}.{}", b64.encode(mac.finalize().into_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_closes_when_its_session_expires() {
    let h = Harness::start_with(&["--runners", "0"]).await;
    let u = user(&h, "eve", &[]).await;
    let mut lasting = ws(&h.url, Some(&u.token), "").await.unwrap();
    let mut short = ws(&h.url, Some(&expiring(&u.token, 3)), "").await.unwrap();
    let opened = tokio::time::Instant::now();
    assert_eq!(closed_with(&mut short, Duration::from_secs(10)).await, 4401);
    assert!(
        opened.elapsed() >= Duration::from_secs(1),
        "closed before it expired"
    );
    // A ticket issued to a session that expires: its socket closes at that expiry too
    // (before, a ticket's socket kept no expiry).
    let short_client = client_with_token(&expiring(&u.token, 3));
    let (s, b) = post(
        &short_client,
        format!("{}/api/notify/ticket", h.url),
        json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let q = format!("?ticket={}", b["ticket"].as_str().unwrap());
    let mut by_ticket = ws(&h.url, None, &q).await.unwrap();
    assert_eq!(
        closed_with(&mut by_ticket, Duration::from_secs(10)).await,
        4401
    );
    // The session with time left keeps its socket.
    let more = tokio::time::timeout(Duration::from_millis(500), lasting.next()).await;
    assert!(
        !matches!(more, Ok(Some(Ok(Message::Close(_)))) | Ok(None)),
        "{more:?}"
    );
}

//! Helpers of the WebSocket hub tests: users, an app that fires actions, subscriptions,
//! and sockets opened, refused and read with time limits.

use std::time::Duration;

use futures::StreamExt;
use nr_testkit::{app_name, manifest};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{client_with_token, post, Harness};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct User {
    pub http: reqwest::Client,
    pub token: String,
}

/// Creates a user with `roles` and logs in.
pub async fn user(h: &Harness, name: &str, roles: &[&str]) -> User {
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
pub async fn bell_app(h: &Harness) -> String {
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

pub async fn subscribe(h: &Harness, u: &User, app: &str, action: &str) {
    let (s, b) = post(
        &u.http,
        format!("{}/api/notify/subscribe", h.url),
        json!({"app_name": app, "action_name": action}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

pub async fn fire(h: &Harness, app: &str, action: &str, payload: Value) {
    let (s, b) = h
        .sync(app, json!({"action": action, "payload": payload}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(b.get("_actions").is_none(), "{b}");
}

pub fn ws_url(base: &str, query: &str) -> String {
    let host = base.trim_start_matches("http://");
    format!("ws://{host}/api/ws/notify{query}")
}

/// Opens a socket with the session cookie, from the site's own origin.
pub async fn ws_cookie(base: &str, token: &str, query: &str) -> Ws {
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
pub async fn refused(
    req: tokio_tungstenite::tungstenite::handshake::client::Request,
) -> (u16, Value) {
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
pub async fn next_json(ws: &mut Ws, limit: Duration) -> Option<Value> {
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
pub async fn drain(ws: &mut Ws, limit: Duration) -> Vec<Value> {
    let mut all = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    while let Some(v) = next_json(ws, deadline - tokio::time::Instant::now()).await {
        all.push(v);
    }
    all
}

pub async fn next_action(ws: &mut Ws) -> Value {
    loop {
        let v = next_json(ws, Duration::from_secs(15))
            .await
            .expect("an action message");
        if v["type"] == "action" {
            return v;
        }
    }
}

pub async fn ticket(u: &User, base: &str) -> String {
    let (s, b) = post(&u.http, format!("{base}/api/notify/ticket"), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["ticket"].as_str().unwrap().to_owned()
}

pub const WAIT: Duration = Duration::from_secs(15);
pub const QUIET: Duration = Duration::from_millis(1500);

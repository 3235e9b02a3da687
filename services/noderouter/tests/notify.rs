//! The WebSocket hub end to end, delivery: real sockets against the whole platform, the
//! subscriber (and nobody else) gets an action, revoking stops it, a reconnect replays
//! what was missed, a second hub instance on its own port, job progress to its submitter,
//! and the admin client script. The socket protocol is in `notify_sockets.rs`, outside
//! consumers and event schemas in `notify_events.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::notify::{
    bell_app, drain, fire, next_action, next_json, refused, subscribe, ticket, user, ws_cookie,
    ws_url, QUIET, WAIT,
};
use common::{role, Harness};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_util::sync::CancellationToken;

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

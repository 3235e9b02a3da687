//! The WebSocket hub's sockets against the whole platform: a client that stops reading is
//! closed with 1013, an inbound frame over the cap closes its socket, sockets need a
//! credential (cookies the site's own origin), and a client that never answers pings is
//! closed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::notify::{
    bell_app, fire, next_action, refused, subscribe, ticket, user, ws_cookie, ws_url,
};
use common::Harness;
use futures::{SinkExt, StreamExt};
use nr_contracts::events::{ActionTriggered, ACTION_TRIGGERED};
use nr_contracts::{subjects, Envelope};
use reqwest::StatusCode;
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

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

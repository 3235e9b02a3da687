//! `call`, `serve` and `consume` against a real NATS server (the testkit's), with the
//! platform's own roles and subjects, so the permissions are the production ones.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nr_config::nats_auth::Role;
use nr_contracts::requests::{
    AppList, AppListRequest, AppVersions, AppVersionsRequest, DeleteReply, DeleteRequest, Finding,
};
use nr_contracts::{subjects, RpcError};
use tokio::sync::{mpsc, oneshot, Notify};

use super::{call, serve, CallError};
use crate::consume::{consume, Order};
use crate::drain::Drain;

/// Long enough never to be reached by a test that passes.
const PATIENCE: Duration = Duration::from_secs(30);

/// A round trip to the server on `client`'s connection: the server has processed
/// everything sent before it, its subscriptions included. (Every service user may ask
/// `$JS.API.INFO`.)
async fn synced(client: &async_nats::Client) {
    client
        .request("$JS.API.INFO", bytes::Bytes::new())
        .await
        .unwrap();
}

fn versions_of(app: &str) -> AppVersions {
    AppVersions {
        app_name: app.to_owned(),
        found: true,
        deleted: false,
        current_version: Some("1.0.0".into()),
        versions: vec![],
    }
}

#[tokio::test]
async fn a_typed_request_is_answered_with_its_typed_reply() {
    let nats = nr_testkit::TestNats::start().await.unwrap();
    let registry = nats.client(Role::Registry).await.unwrap();
    let gateway = nats.client(Role::Gateway).await.unwrap();
    let drain = Drain::new();
    serve(
        registry.clone(),
        &drain,
        |req: AppVersionsRequest| async move { Ok(versions_of(&req.app_name)) },
    )
    .await
    .unwrap();
    synced(&registry).await;
    let req = AppVersionsRequest {
        app_name: "notes".into(),
    };
    let reply = call(&gateway, &req, PATIENCE).await.unwrap();
    assert_eq!(reply, versions_of("notes"));
    // The empty body an operator sends with `nats req registry.apps.list ''` is `{}`.
    let registry = nats.client(Role::Registry).await.unwrap();
    serve(registry.clone(), &drain, |_: AppListRequest| async move {
        Ok(AppList {
            apps: vec![],
            deleted: vec![],
        })
    })
    .await
    .unwrap();
    synced(&registry).await;
    let raw = gateway
        .request(subjects::REGISTRY_APPS_LIST, bytes::Bytes::new())
        .await
        .unwrap();
    let status = raw.headers.as_ref().and_then(|h| h.get("Nr-Status"));
    assert_eq!(status.map(|v| v.as_str()), Some("200"));
    let list: AppList = nr_contracts::decode(&raw.payload).unwrap();
    assert!(list.apps.is_empty());
}

#[tokio::test]
async fn a_handler_error_reaches_the_caller_as_the_same_typed_error() {
    let nats = nr_testkit::TestNats::start().await.unwrap();
    let deploy = nats.client(Role::Deploy).await.unwrap();
    let gateway = nats.client(Role::Gateway).await.unwrap();
    let drain = Drain::new();
    let refusal = RpcError::new(409, "conflict", "another change to notes landed first")
        .with_details(vec![Finding {
            rule: "conflict.concurrent".into(),
            file: None,
            line: None,
            message: "another change to notes landed first".into(),
        }]);
    let sent = refusal.clone();
    serve(deploy.clone(), &drain, move |_: DeleteRequest| {
        let sent = sent.clone();
        async move { Err::<DeleteReply, _>(sent) }
    })
    .await
    .unwrap();
    synced(&deploy).await;
    let req = DeleteRequest {
        app_name: "notes".into(),
        actor: None,
        actor_id: None,
        deadline_ms: None,
    };
    match call(&gateway, &req, PATIENCE).await {
        Err(CallError::Refused { subject, error }) => {
            assert_eq!(subject, "deploy.delete");
            assert_eq!(error, refusal);
        }
        other => panic!("expected the handler's refusal, got {other:?}"),
    }
    // A request that does not decode is refused 400 by `serve`, naming the subject.
    let raw = gateway
        .request(
            subjects::DEPLOY_DELETE,
            b"not messagepack".as_slice().into(),
        )
        .await
        .unwrap();
    let status = raw.headers.as_ref().and_then(|h| h.get("Nr-Status"));
    assert_eq!(status.map(|v| v.as_str()), Some("400"));
    let body: serde_json::Value = rmp_serde::from_slice(&raw.payload).unwrap();
    assert_eq!(body["outcome"], "refused");
    assert_eq!(body["code"], "bad_request");
    let text = body["error"].as_str().unwrap_or_default();
    assert!(text.contains("malformed deploy.delete request"), "{text}");
}

#[tokio::test]
async fn nobody_serving_is_reported_as_unavailable_not_as_a_timeout() {
    let nats = nr_testkit::TestNats::start().await.unwrap();
    let gateway = nats.client(Role::Gateway).await.unwrap();
    match call(&gateway, &AppListRequest {}, PATIENCE).await {
        Err(CallError::Unavailable { subject }) => assert_eq!(subject, "registry.apps.list"),
        other => panic!("expected unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn stopping_ends_the_loop_and_lets_the_request_in_flight_finish() {
    let nats = nr_testkit::TestNats::start().await.unwrap();
    let registry = nats.client(Role::Registry).await.unwrap();
    let gateway = nats.client(Role::Gateway).await.unwrap();
    let drain = Drain::new();
    let started = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let (s, r) = (started.clone(), release.clone());
    serve(registry.clone(), &drain, move |req: AppVersionsRequest| {
        let (s, r) = (s.clone(), r.clone());
        async move {
            s.notify_one();
            r.notified().await;
            Ok(versions_of(&req.app_name))
        }
    })
    .await
    .unwrap();
    synced(&registry).await;
    let in_flight = tokio::spawn({
        let gateway = gateway.clone();
        async move {
            let req = AppVersionsRequest {
                app_name: "slow".into(),
            };
            call(&gateway, &req, PATIENCE).await
        }
    });
    started.notified().await;
    let finishing = tokio::spawn({
        let drain = drain.clone();
        async move { drain.finish(PATIENCE).await }
    });
    // Stopped: the loop ends and its subscription goes; the handler is still running.
    while !drain.is_stopping() {
        tokio::task::yield_now().await;
    }
    release.notify_one();
    assert_eq!(in_flight.await.unwrap().unwrap(), versions_of("slow"));
    assert!(finishing.await.unwrap(), "the drain did not finish");
    synced(&registry).await;
    let req = AppVersionsRequest {
        app_name: "late".into(),
    };
    match call(&gateway, &req, PATIENCE).await {
        Err(CallError::Unavailable { .. }) => {}
        other => panic!("a drained service still answered: {other:?}"),
    }
}

#[tokio::test]
async fn a_failing_or_panicking_handler_is_counted_and_the_loop_goes_on_in_order() {
    let nats = nr_testkit::TestNats::start().await.unwrap();
    let client = nats.client(Role::Admin).await.unwrap();
    let sub = client.subscribe("test.consume").await.unwrap();
    client.flush().await.unwrap();
    let drain = Drain::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    consume(
        "test-consumer",
        sub,
        &drain,
        Order::InOrder,
        move |msg: async_nats::Message| {
            let tx = tx.clone();
            async move {
                match msg.payload.as_ref() {
                    b"fail" => anyhow::bail!("cannot handle this one"),
                    b"panic" => panic!("handler bug"),
                    other => {
                        let _ = tx.send(other.to_vec());
                        Ok(())
                    }
                }
            }
        },
    );
    for payload in ["1", "fail", "2", "panic", "3"] {
        client
            .publish("test.consume", payload.into())
            .await
            .unwrap();
    }
    client.flush().await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(String::from_utf8(rx.recv().await.unwrap()).unwrap());
    }
    assert_eq!(seen, ["1", "2", "3"]);
    let metrics = nr_telemetry::metrics().render();
    assert!(
        metrics.contains("nr_bus_handler_errors_total{consumer=\"test-consumer\"} 2"),
        "{metrics}"
    );
    assert!(drain.finish(PATIENCE).await);
}

#[tokio::test]
async fn after_stop_no_new_message_is_handled_but_the_one_in_hand_finishes() {
    let nats = nr_testkit::TestNats::start().await.unwrap();
    let client = nats.client(Role::Admin).await.unwrap();
    let sub = client.subscribe("test.stop").await.unwrap();
    client.flush().await.unwrap();
    let drain = Drain::new();
    let handled = Arc::new(AtomicUsize::new(0));
    let (started_tx, started_rx) = oneshot::channel::<()>();
    let mut started_tx = Some(started_tx);
    let release = Arc::new(Notify::new());
    let (h, r) = (handled.clone(), release.clone());
    consume(
        "test-stop",
        sub,
        &drain,
        Order::InOrder,
        move |_msg: async_nats::Message| {
            let (h, r) = (h.clone(), r.clone());
            let started = started_tx.take();
            async move {
                if let Some(s) = started {
                    let _ = s.send(());
                }
                r.notified().await;
                h.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        },
    );
    client.publish("test.stop", "first".into()).await.unwrap();
    client.flush().await.unwrap();
    started_rx.await.unwrap();
    drain.stop();
    client.publish("test.stop", "second".into()).await.unwrap();
    client.flush().await.unwrap();
    release.notify_one();
    assert!(drain.finish(PATIENCE).await);
    assert_eq!(handled.load(Ordering::SeqCst), 1);
}

//! A change whose event log does not take it answers 503 saying so, never a bare 500:
//! with the access log's stream gone (as while NATS has lost its quorum), creating a
//! token was 500 "internal error".

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{post, Harness};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_access_change_the_log_does_not_acknowledge_is_503_not_500() {
    let h = Harness::start().await;
    let js = async_nats::jetstream::new(h.nats_client().await);
    js.delete_stream(nr_contracts::subjects::STREAM_RBAC)
        .await
        .unwrap();
    let (s, b) = post(
        &h.http,
        format!("{}/admin/api/tokens", h.url),
        json!({"name": "ci", "roles": ["admin"]}),
    )
    .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{b}");
    let text = b["error"].as_str().unwrap_or_default();
    assert!(
        text.contains("access log (NATS JetStream) did not acknowledge")
            && text.contains("may or may not have been made"),
        "{b}"
    );
}

//! The object store on a real S3-compatible server (`s3s-fs`), through `s3://` URLs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::TryStreamExt;
use nr_testkit::s3::TestS3;
use object_store::path::Path;
use object_store::PutPayload;

#[tokio::test]
async fn bundles_round_trip_through_s3_under_the_url_prefix() {
    let s3 = TestS3::start(&["nr-bundles"]).await.unwrap();
    let store = nr_infra::store::open_with_env("s3://nr-bundles/prod/", s3.env()).unwrap();
    let key = Path::from("bundles/notes/abc.zip");
    let body = Bytes::from_static(b"PK\x03\x04 a bundle");
    store
        .put(&key, PutPayload::from_bytes(body.clone()))
        .await
        .unwrap();
    let got = store.get(&key).await.unwrap().bytes().await.unwrap();
    assert_eq!(got, body);
    // The object really is on the server, under the prefix the URL named.
    let on_disk =
        std::fs::read(s3.object_path("nr-bundles", "prod/bundles/notes/abc.zip")).unwrap();
    assert_eq!(on_disk, body.to_vec());
    let listed: Vec<_> = store
        .list(Some(&Path::from("bundles")))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].location, key);
}

#[tokio::test]
async fn wrong_keys_are_refused_by_the_server() {
    let s3 = TestS3::start(&["nr-bundles"]).await.unwrap();
    let mut env = s3.env();
    for (k, v) in env.iter_mut() {
        if k == "AWS_SECRET_ACCESS_KEY" {
            *v = "not-the-secret".into();
        }
    }
    let store = nr_infra::store::open_with_env("s3://nr-bundles", env).unwrap();
    let err = store
        .put(&Path::from("x"), PutPayload::from_static(b"x"))
        .await
        .unwrap_err();
    assert!(!err.to_string().is_empty());
    assert!(!s3.object_path("nr-bundles", "x").exists());
}

#[tokio::test]
async fn an_unreachable_server_fails_within_seconds() {
    let mut s3 = TestS3::start(&["nr-bundles"]).await.unwrap();
    let store = nr_infra::store::open_with_env("s3://nr-bundles", s3.env()).unwrap();
    s3.stop();
    let started = Instant::now();
    let res = store.get(&Path::from("bundles/x.zip")).await;
    assert!(res.is_err());
    // Bounded retries: an outage is reported, not waited out for minutes.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

//! The platform with its bundles on a real S3-compatible server (`s3s-fs`): deploys
//! store there and apps load from there; with the store down, a deploy is refused with
//! 503 and the running apps keep serving.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Harness;
use nr_testkit::s3::TestS3;
use reqwest::StatusCode;
use serde_json::json;

const BUCKET: &str = "nr-bundles";

#[tokio::test]
async fn bundles_live_in_s3_and_an_outage_refuses_deploys_but_not_calls() {
    let mut s3 = TestS3::start(&[BUCKET]).await.unwrap();
    // This test binary holds this one test, so the process environment is its own.
    for (k, v) in s3.env() {
        std::env::set_var(k, v);
    }
    let nats = nr_testkit::TestNats::start().await.unwrap();
    let db = nr_testkit::TestDb::create().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config_for(&nats, &db, dir.path(), &[]);
    config.gateway.store.object_store_url = format!("s3://{BUCKET}/platform");
    let platform = noderouter::Platform::start(config).await.unwrap();
    let h = Harness {
        url: platform.url(),
        http: common::client_with_token(platform.admin_token()),
        platform: Some(platform),
        nats,
        db,
        dir,
    };
    let app = nr_testkit::app_name("s3app");
    let files = |version: &str| {
        vec![
            (
                "manifest.json".to_owned(),
                nr_testkit::manifest(&app, version, json!({})),
            ),
            (
                "main.py".to_owned(),
                format!("def execute(data, conn=None):\n    return {{'v': '{version}'}}\n"),
            ),
        ]
    };
    let v1 = files("1.0.0");
    let refs: Vec<(&str, &str)> = v1.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let report = h.deploy_ok(&app, &refs).await;
    let sha = report["sha256"].as_str().unwrap_or_default().to_owned();
    let (s, b) = h.sync(&app, json!({})).await;
    assert_eq!((s, b["v"].as_str()), (StatusCode::OK, Some("1.0.0")));

    // The bundle is an object on the S3 server, under the URL's prefix.
    let stored: Vec<_> = walk(&s3.root.join(BUCKET).join("platform"));
    assert!(
        stored
            .iter()
            .any(|p| p.contains(&app) && p.ends_with(".zip")),
        "no bundle of {app} in the bucket (sha {sha}): {stored:?}"
    );

    // Store down: a deploy is refused at once with 503, the app keeps answering.
    s3.stop();
    let v2 = files("2.0.0");
    let refs: Vec<(&str, &str)> = v2.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let (s, b) = h
        .deploy(&format!("{app}.zip"), nr_testkit::zip_files(&refs))
        .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{b}");
    assert!(b.to_string().contains("object store"), "{b}");
    for _ in 0..20 {
        let (s, b) = h.sync(&app, json!({})).await;
        assert_eq!((s, b["v"].as_str()), (StatusCode::OK, Some("1.0.0")));
    }
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p.to_string_lossy().into_owned());
            }
        }
    }
    out
}

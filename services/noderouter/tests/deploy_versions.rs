//! A deploy's version next to the version it replaces: the same number with other
//! contents, the same bundle again and a lower number are deployed with a warning that
//! says so; a higher number is not warned of.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Harness;
use nr_testkit::{app_name, manifest, zip_files};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn version_warnings(report: &Value) -> Vec<String> {
    report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["rule"] == "manifest.version")
        .map(|w| w["message"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_or_lower_versions_are_deployed_with_a_warning() {
    let h = Harness::start().await;
    let app = app_name("ver");
    let bundle = |version: &str, n: u32| {
        zip_files(&[
            ("manifest.json", &manifest(&app, version, json!({}))),
            (
                "main.py",
                &format!("def execute(data, conn=None):\n    return {{\"v\": {n}}}\n"),
            ),
        ])
    };
    let deploy = |zip: Vec<u8>| {
        let h = &h;
        let app = &app;
        async move {
            let (s, b) = h.deploy(&format!("{app}.zip"), zip).await;
            assert_eq!(s, StatusCode::OK, "{b}");
            b
        }
    };
    let first = deploy(bundle("1.2.0", 1)).await;
    assert!(version_warnings(&first).is_empty(), "{first}");

    let again = deploy(bundle("1.2.0", 1)).await;
    let w = version_warnings(&again);
    assert_eq!(w.len(), 1, "{again}");
    assert!(w[0].contains("the one deployed already"), "{again}");

    let changed = deploy(bundle("1.2.0", 2)).await;
    let w = version_warnings(&changed);
    assert_eq!(w.len(), 1, "{changed}");
    assert!(
        w[0].contains("version 1.2.0 is deployed already with other contents"),
        "{changed}"
    );
    let (s, b) = h.sync(&app, json!({})).await;
    assert_eq!((s, b["v"].as_u64()), (StatusCode::OK, Some(2)), "{b}");

    let lower = deploy(bundle("1.1.9", 3)).await;
    let w = version_warnings(&lower);
    assert_eq!(w.len(), 1, "{lower}");
    assert!(
        w[0].contains("version 1.1.9 is lower than the deployed 1.2.0"),
        "{lower}"
    );

    let higher = deploy(bundle("1.3.0", 4)).await;
    assert!(version_warnings(&higher).is_empty(), "{higher}");
    assert_eq!(higher["previous_version"], "1.1.9", "{higher}");
}

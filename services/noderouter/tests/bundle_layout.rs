//! The files deploy checks are the files that run and are served: one rule for a
//! bundle's root and its ignored entries, and page files bounded by what the gateway
//! keeps in memory.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Harness;
use nr_testkit::{app_name, manifest};
use reqwest::StatusCode;
use serde_json::json;

async fn page(h: &Harness, app: &str, file: &str) -> (StatusCode, String) {
    let token = h.platform.as_ref().unwrap().admin_token().to_owned();
    let r = reqwest::Client::new()
        .get(format!("{}/apps/{app}/{file}", h.url))
        .header("cookie", format!("nr_session={token}"))
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn macos_metadata_ahead_of_the_app_folder_is_neither_run_nor_served() {
    let h = Harness::start().await;
    let app = app_name("mac");
    let m = manifest(&app, "1.0.0", json!({}));
    let unchecked = "def execute(data, conn=None):\n    return {'v': 'unchecked'}\n";
    let checked = "def execute(data, conn=None):\n    return {'v': 'checked'}\n";
    // Finder's metadata folder first, holding what looks like a whole app, then the
    // app's own folder: deploy checks the latter, so the latter must run and be served.
    let files = [
        ("__MACOSX/manifest.json".to_owned(), m.clone()),
        ("__MACOSX/main.py".to_owned(), unchecked.to_owned()),
        (
            "__MACOSX/index.html".to_owned(),
            "<h1>unchecked page</h1>".to_owned(),
        ),
        (format!("{app}/manifest.json"), m.clone()),
        (format!("{app}/main.py"), checked.to_owned()),
        (
            format!("{app}/index.html"),
            "<h1>checked page</h1>".to_owned(),
        ),
    ];
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let (s, b) = h
        .deploy(&format!("{app}.zip"), nr_testkit::zip_files(&refs))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = h.sync(&app, json!({})).await;
    assert_eq!((s, &b["v"]), (StatusCode::OK, &json!("checked")), "{b}");
    let (s, body) = page(&h, &app, "index.html").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(
        body.contains("checked page") && !body.contains("unchecked"),
        "{body}"
    );
}

/// Text that deflates a few times over: under every ratio rule.
fn page_data(mib: usize, seed: u64) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(mib << 20);
    while out.len() < mib << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&[HEX[(x & 15) as usize], HEX[((x >> 4) & 15) as usize], b' ']);
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_files_over_the_gateways_budget_are_refused_and_the_old_version_serves() {
    let h = Harness::start().await;
    let app = app_name("big");
    let main = "def execute(data, conn=None):\n    return {'v': 1}\n";
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
            ("main.py", main),
            ("index.html", "<h1>v1</h1>"),
        ],
    )
    .await;
    // Three files of 24 MiB: each under the per-file limit, 72 MiB together, over the
    // 64 MiB the gateway may keep for one app's pages (before: deployed, and the first
    // page view made the gateway inflate all of it).
    let data: Vec<String> = (0..3).map(|i| page_data(24, 7 + i)).collect();
    let m2 = manifest(&app, "2.0.0", json!({}));
    let mut files = vec![("manifest.json", m2.as_str()), ("main.py", main)];
    let names: Vec<String> = (0..3).map(|i| format!("img/{i}.svg")).collect();
    for (n, d) in names.iter().zip(&data) {
        files.push((n.as_str(), d.as_str()));
    }
    let (s, b) = h
        .deploy(&format!("{app}.zip"), nr_testkit::zip_files(&files))
        .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{b}");
    assert_eq!(b["details"][0]["rule"], "bundle.public_size", "{b}");
    assert!(b["error"].as_str().unwrap().contains("img/2.svg"), "{b}");
    let (s, body) = page(&h, &app, "index.html").await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "<h1>v1</h1>"));
}

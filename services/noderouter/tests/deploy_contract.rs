//! The deploy contract end to end, through the gateway as an author uses it: upload
//! limits, warnings in the report, a wrapping folder, conflicts between apps, concurrent
//! deploys and redeploys. Bad bundles are in `deploy_refusals.rs`; versions, rollback,
//! delete and the author CLI in `deploy_lifecycle.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::deploy::{delete, main_v, rules_of};
use common::Harness;
use nr_testkit::{manifest, zip_files};
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_and_bundles_over_the_limits_are_413() {
    let h =
        Harness::start_with(&["--max-bundle-bytes", "20000", "--max-bundle-entries", "8"]).await;
    // Random letters compress to ~60%: about 36 kB of zip, over 20000 bytes.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let noise: String = (0..60_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect();
    // Over the limit but inside the multipart allowance: the gateway counts it.
    let (status, body) = h
        .deploy(
            "big.zip",
            zip_files(&[("manifest.json", "{}"), ("noise.txt", &noise)]),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    // The limit and the setting that raises it are named.
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("20000 bytes (NR_MAX_BUNDLE_BYTES"),
        "{body}"
    );
    // Far over: the multipart reader stops it.
    let (status, body) = h.deploy("big.zip", vec![b'x'; 300 * 1024]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["code"], "payload_too_large");
    // The zip sent as the body itself, not as a form: the answer says how to send it.
    let r = h
        .http
        .post(format!("{}/admin/api/apps/deploy", h.url))
        .header("content-type", "application/zip")
        .body(zip_files(&[("manifest.json", "{}")]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("multipart/form-data with the zip in the field `file`"),
        "{body}"
    );
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .ends_with("this request's Content-Type is application/zip"),
        "what was sent, not a multipart parser's complaint: {body}"
    );
    // The zip in a form field without a file name (curl -F 'file=<x.zip'): the deploy
    // cannot tell which app it is for, and says so instead of naming a bundle "bundle".
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(zip_files(&[("manifest.json", "{}")])),
    );
    let r = h
        .http
        .post(format!("{}/admin/api/apps/deploy", h.url))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("carries no file name"),
        "{body}"
    );
    // Too many entries.
    let names: Vec<String> = (0..10).map(|i| format!("f{i}.txt")).collect();
    let mut files = vec![
        (
            "manifest.json",
            "{\"app_name\":\"many\",\"version\":\"1.0.0\"}",
        ),
        ("main.py", "def execute(d):\n    return {}\n"),
    ];
    files.extend(names.iter().map(|n| (n.as_str(), "")));
    let (status, body) = h.deploy("many.zip", zip_files(&files)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(rules_of(&body), ["bundle.entries"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warnings_come_back_in_the_report_and_unknown_fields_are_kept() {
    let h = Harness::start().await;
    let app = "warned";
    let report = h
        .deploy_ok(
            app,
            &[
                ("manifest.json", &manifest(app, "1.0.0", json!({"x_owner": "team-a", "display_name": "Warned"}))),
                ("main.py", &main_v(1)),
                ("index.html", "<div class=\"wa-root\">\n  <button onclick=\"go()\">Go</button>\n</div>\n<script src=\"https://cdn.example.com/chart.js\"></script>\n"),
                ("index.js", "function go() {}\nAdminWS.subscribe('x');\n"),
                ("style.css", ".wa-root { color: #ffffff; }\n.card { padding: 1px; }\nbody { margin: 0; }\n"),
            ],
        )
        .await;
    let warnings = report["warnings"].as_array().unwrap();
    let find = |rule: &str| {
        warnings
            .iter()
            .find(|w| w["rule"] == rule)
            .unwrap_or_else(|| panic!("no {rule} warning in {report:#}"))
    };
    assert_eq!(find("manifest.api_version")["file"], "manifest.json");
    assert!(find("manifest.unknown_field")["message"]
        .as_str()
        .unwrap()
        .contains("x_owner"));
    assert_eq!(
        (
            find("frontend.inline_handler")["file"].as_str(),
            find("frontend.inline_handler")["line"].as_u64()
        ),
        (Some("index.html"), Some(2))
    );
    assert_eq!(find("frontend.external_url")["line"], 4);
    assert_eq!(find("frontend.iife")["file"], "index.js");
    assert_eq!(find("frontend.hex_color")["line"], 1);
    assert_eq!(find("frontend.css_prefix")["line"], 2);
    assert_eq!(find("frontend.global_selector")["line"], 3);
    assert_eq!(find("frontend.adminws_module_scope")["line"], 2);

    // The stored manifest keeps the unknown field.
    let js = async_nats::jetstream::new(h.nats_client().await);
    let stream = js.get_stream("NR_APPS").await.unwrap();
    let msg = stream
        .get_last_raw_message_by_subject(&format!("app.updated.{app}"))
        .await
        .unwrap();
    let event: Value = rmp_serde_generic(&msg.payload);
    assert_eq!(event["data"]["manifest"]["x_owner"], "team-a");
    // And the app serves.
    assert_eq!(h.sync(app, json!({})).await.1["v"], 1);
}

fn rmp_serde_generic(bytes: &[u8]) -> Value {
    nr_contracts::decode(bytes).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrapping_folder_named_like_the_app_deploys_with_a_warning_and_serves() {
    let h = Harness::start().await;
    let (status, body) = h
        .deploy(
            "wrapped.zip",
            zip_files(&[
                (
                    "wrapped/manifest.json",
                    &manifest("wrapped", "1.0.0", json!({"api_version": "1.0.0"})),
                ),
                ("wrapped/main.py", &main_v(7)),
                ("__MACOSX/wrapped/._main.py", "junk"),
                ("wrapped/.DS_Store", "junk"),
            ]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(rules_of(&body), ["bundle.layout"]);
    assert_eq!(h.sync("wrapped", json!({})).await.1["v"], 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_between_apps_are_refused_naming_both_apps() {
    let h = Harness::start().await;
    let nav =
        |id: &str| json!([{"id": id, "label": "Menu", "icon": "calendar", "href": "/apps/x/"}]);
    h.deploy_ok(
        "crm",
        &[
            ("manifest.json", &manifest("crm", "1.0.0", json!({"nav": nav("shared:menu"), "permissions": [{"name": "reports:read", "description": "Read reports"}]}))),
            ("main.py", &main_v(1)),
        ],
    )
    .await;
    // Right after: the catalogue deploy checks against has seen crm.
    let (status, body) = h
        .deploy(
            "sales.zip",
            zip_files(&[
                (
                    "manifest.json",
                    &manifest("sales", "1.0.0", json!({"nav": nav("shared:menu")})),
                ),
                ("main.py", &main_v(1)),
            ]),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(rules_of(&body), ["conflict.nav_id"]);
    let msg = body["error"].as_str().unwrap();
    assert!(
        msg.contains("\"sales\"") && msg.contains("\"crm\"") && msg.contains("shared:menu"),
        "{msg}"
    );

    let report = h
        .deploy_ok("sales", &[("manifest.json", &manifest("sales", "1.0.0", json!({"nav": nav("sales:menu"), "permissions": [{"name": "reports:read"}]}))), ("main.py", &main_v(1))])
        .await;
    assert!(
        rules_of(&report).contains(&"conflict.permission".to_owned()),
        "{report:#}"
    );

    let (status, body) = h
        .deploy(
            "CRM.zip",
            zip_files(&[
                ("manifest.json", &manifest("CRM", "1.0.0", json!({}))),
                ("main.py", &main_v(1)),
            ]),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(rules_of(&body), ["conflict.app_name"]);

    // Once crm is deleted its nav id and its name (in any case) are free.
    assert_eq!(delete(&h, "/admin/api/apps/crm").await.0, StatusCode::OK);
    let (status, body) = h
        .deploy(
            "CRM.zip",
            zip_files(&[
                (
                    "manifest.json",
                    &manifest("CRM", "1.0.0", json!({"nav": nav("shared:menu")})),
                ),
                ("main.py", &main_v(9)),
            ]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(h.sync("CRM", json!({})).await.1["v"], 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_deploys_of_one_app_one_wins_and_the_other_gets_409() {
    let h = Harness::start().await;
    let app = "race";
    // The import check sleeps, so both deploys are being checked at the same time.
    let bundle = |n: u32| {
        zip_files(&[
            ("manifest.json", &manifest(app, &format!("1.0.{n}"), json!({}))),
            ("main.py", &format!("import time\ntime.sleep(1.5)\n\ndef execute(data):\n    return {{\"v\": {n}}}\n")),
        ])
    };
    let (a, b) = tokio::join!(
        h.deploy("race.zip", bundle(1)),
        h.deploy("race.zip", bundle(2))
    );
    let mut statuses = [a.0.as_u16(), b.0.as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{a:?} {b:?}");
    let (winner, loser) = if a.0 == StatusCode::OK {
        (a.1, b.1)
    } else {
        (b.1, a.1)
    };
    assert_eq!(rules_of(&loser), ["conflict.concurrent"], "{loser}");
    assert!(
        loser["error"].as_str().unwrap().contains("another change"),
        "{loser}"
    );
    let v = if winner["version"] == "1.0.1" { 1 } else { 2 };
    assert_eq!(h.sync(app, json!({})).await.1["v"], v);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redeploying_the_same_zip_reloads_it() {
    let h = Harness::start().await;
    let zip = zip_files(&[("manifest.json", &manifest("again", "1.0.0", json!({}))), ("main.py", "import time\nLOADED = time.time()\n\ndef execute(data):\n    return {'loaded': LOADED}\n")]);
    let (s1, first) = h.deploy("again.zip", zip.clone()).await;
    let t1 = h.sync("again", json!({})).await.1["loaded"]
        .as_f64()
        .unwrap();
    let (s2, second) = h.deploy("again.zip", zip).await;
    assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK));
    assert_eq!(first["sha256"], second["sha256"]);
    assert!(second["rev"].as_u64() > first["rev"].as_u64());
    assert_eq!(second["previous_version"], "1.0.0");
    let t2 = h.sync("again", json!({})).await.1["loaded"]
        .as_f64()
        .unwrap();
    assert!(
        t2 > t1,
        "the module was not imported again ({t1} then {t2})"
    );
}

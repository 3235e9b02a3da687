//! An app's life after its deploy, through the gateway and the author CLI: versions,
//! rollback and delete end to end, and the CLI scaffolding, linting, packing, deploying,
//! rolling back and deleting an app.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::deploy::{delete, get, main_v, post_json};
use common::Harness;
use nr_testkit::manifest;
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_rollback_and_delete_work_end_to_end() {
    let h = Harness::start().await;
    let app = "ledger";
    let one = h
        .deploy_ok(
            app,
            &[
                ("manifest.json", &manifest(app, "1.0.0", json!({}))),
                ("main.py", &main_v(1)),
            ],
        )
        .await;
    assert_eq!(one["previous_version"], Value::Null);
    let two = h
        .deploy_ok(
            app,
            &[
                ("manifest.json", &manifest(app, "1.1.0", json!({}))),
                ("main.py", &main_v(2)),
            ],
        )
        .await;
    assert_eq!(two["previous_version"], "1.0.0");

    let (status, v) = get(&h, &format!("/admin/api/apps/{app}/versions")).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["current_version"], "1.1.0");
    let versions = v["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(
        (
            versions[0]["version"].as_str(),
            versions[0]["current"].as_bool()
        ),
        (Some("1.1.0"), Some(true))
    );
    assert_eq!(
        (
            versions[1]["version"].as_str(),
            versions[1]["current"].as_bool()
        ),
        (Some("1.0.0"), Some(false))
    );
    assert_eq!(versions[1]["sha256"], one["sha256"]);

    // Roll back: served at once, and listed as current.
    let (status, r) = post_json(
        &h,
        &format!("/admin/api/apps/{app}/rollback"),
        json!({"version": "1.0.0"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(
        (r["version"].as_str(), r["previous_version"].as_str()),
        (Some("1.0.0"), Some("1.1.0"))
    );
    assert_eq!(r["sha256"], one["sha256"]);
    assert_eq!(h.sync(app, json!({})).await.1["v"], 1);
    let (_, v) = get(&h, &format!("/admin/api/apps/{app}/versions")).await;
    assert_eq!(v["current_version"], "1.0.0");
    assert_eq!(v["versions"][1]["current"], true);

    // Unknown version, bad body, unknown app.
    let (status, r) = post_json(
        &h,
        &format!("/admin/api/apps/{app}/rollback"),
        json!({"version": "9.9.9"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{r}");
    // Each version named once, though 1.0.0 became current twice (before: "1.0.0,
    // 1.1.0, 1.0.0").
    let (_, listed) = r["error"]
        .as_str()
        .unwrap()
        .split_once("its versions are: ")
        .unwrap();
    let mut listed: Vec<&str> = listed.split(", ").collect();
    listed.sort();
    assert_eq!(listed, ["1.0.0", "1.1.0"], "{r}");
    let (status, r) = post_json(
        &h,
        &format!("/admin/api/apps/{app}/rollback"),
        json!({"ver": "1.0.0"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{r}");
    assert!(r["error"].as_str().unwrap().contains("\"version\""), "{r}");
    assert_eq!(
        post_json(
            &h,
            "/admin/api/apps/nope/rollback",
            json!({"version": "1.0.0"})
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&h, "/admin/api/apps/nope/versions").await.0,
        StatusCode::NOT_FOUND
    );

    // Delete: no longer served or listed; versions kept.
    let (status, d) = delete(&h, &format!("/admin/api/apps/{app}")).await;
    assert_eq!(status, StatusCode::OK, "{d}");
    assert_eq!(d["version"], "1.0.0");
    assert_eq!(h.sync(app, json!({})).await.0, StatusCode::NOT_FOUND);
    let (_, v) = get(&h, &format!("/admin/api/apps/{app}/versions")).await;
    assert_eq!(
        (v["deleted"].as_bool(), v["current_version"].as_str()),
        (Some(true), None),
        "{v}"
    );
    assert_eq!(v["versions"].as_array().unwrap().len(), 2);
    let (_, list) = get(&h, "/admin/api/apps").await;
    assert!(
        list["apps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["app_name"] != app),
        "{list}"
    );
    assert_eq!(
        delete(&h, &format!("/admin/api/apps/{app}")).await.0,
        StatusCode::NOT_FOUND
    );

    // A rollback restores a deleted app.
    let (status, r) = post_json(
        &h,
        &format!("/admin/api/apps/{app}/rollback"),
        json!({"version": "1.1.0"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["previous_version"], Value::Null);
    assert_eq!(h.sync(app, json!({})).await.1["v"], 2);

    // An app may be named like the deploy endpoint.
    h.deploy_ok(
        "deploy",
        &[
            ("manifest.json", &manifest("deploy", "1.0.0", json!({}))),
            ("main.py", &main_v(3)),
        ],
    )
    .await;
    assert_eq!(
        get(&h, "/admin/api/apps/deploy/versions").await.0,
        StatusCode::OK
    );
    assert_eq!(delete(&h, "/admin/api/apps/deploy").await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(h.sync("deploy", json!({})).await.0, StatusCode::NOT_FOUND);
}

/// The admin token the CLI authenticates with (`NR_TOKEN`).
static CLI_TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_noderouter"))
        .args(args)
        .env(
            "NR_TOKEN",
            CLI_TOKEN.get().map(String::as_str).unwrap_or(""),
        )
        .env("NR_PYTHON", nr_testkit::python())
        .env_remove("DATABASE_URL")
        .output()
        .unwrap()
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_author_cli_scaffolds_lints_packs_deploys_and_rolls_back() {
    let h = Harness::start().await;
    let _ = CLI_TOKEN.set(h.platform.as_ref().unwrap().admin_token().to_owned());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let app_dir = format!("{d}/app_hello_cli");

    let o = cli(&["app", "new", "app_hello_cli", "--dir", d]);
    assert!(o.status.success(), "{}", text(&o));
    let o = cli(&["app", "lint", &app_dir]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("app_hello_cli 1.0.0: passes every check (0 warnings)"),
        "{}",
        text(&o)
    );

    let o = cli(&["app", "pack", &app_dir]);
    assert!(o.status.success(), "{}", text(&o));
    let zip = format!("{d}/app_hello_cli.zip");
    let o = cli(&["app", "lint", &zip, "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let linted: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(linted["app_name"], "app_hello_cli");

    let o = cli(&["app", "deploy", &app_dir, "--url", &h.url]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("deployed app_hello_cli 1.0.0 (new app)"),
        "{}",
        text(&o)
    );
    let (status, body) = h.sync("app_hello_cli", json!({})).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (StatusCode::OK, Some("ok")),
        "{body}"
    );

    // A second version with a frontend warning, then a broken one.
    let manifest_path = format!("{app_dir}/manifest.json");
    let m = std::fs::read_to_string(&manifest_path)
        .unwrap()
        .replace("\"1.0.0\",\n  \"api", "\"1.1.0\",\n  \"api");
    std::fs::write(&manifest_path, m).unwrap();
    std::fs::write(format!("{app_dir}/style.css"), "body { color: #000; }\n").unwrap();
    let o = cli(&["app", "lint", &app_dir]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("warning[frontend.global_selector] style.css:1:"),
        "{}",
        text(&o)
    );
    let o = cli(&["app", "deploy", &app_dir, "--url", &h.url, "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (
            report["version"].as_str(),
            report["previous_version"].as_str()
        ),
        (Some("1.1.0"), Some("1.0.0"))
    );

    std::fs::write(
        format!("{app_dir}/main.py"),
        "import not_installed_anywhere\n",
    )
    .unwrap();
    let o = cli(&["app", "lint", &app_dir]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o)
            .contains("error[main.import] main.py:1: main.py fails on import: ModuleNotFoundError"),
        "{}",
        text(&o)
    );
    let o = cli(&["app", "deploy", &app_dir, "--url", &h.url]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("deploy refused (422 Unprocessable Entity)"),
        "{}",
        text(&o)
    );

    let o = cli(&["app", "versions", "app_hello_cli", "--url", &h.url]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("* 1.1.0"), "{}", text(&o));
    let o = cli(&["app", "rollback", "app_hello_cli", "1.0.0", "--url", &h.url]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("at 1.0.0 again (was 1.1.0)"),
        "{}",
        text(&o)
    );
    let o = cli(&["app", "delete", "app_hello_cli", "--url", &h.url]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        h.sync("app_hello_cli", json!({})).await.0,
        StatusCode::NOT_FOUND
    );
}

//! One manifest type, end to end: deploy and `app lint` refuse a mistyped or
//! out-of-range field naming it, and a stored `app.updated` event whose manifest does
//! not parse (an old or hostile event published straight to the stream) is skipped by
//! every service that applies it, while later events still apply and a gated app stays
//! gated.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{client_with_token, post, role, Harness};
use nr_contracts::events::{AppChange, AppUpdated, APP_UPDATED};
use nr_contracts::{encode, subjects, Envelope};
use nr_testkit::{app_name, manifest, zip_files};
use reqwest::StatusCode;
use serde_json::{json, Value};

const PERMISSION: &str = "vault:open";

fn main_py(answer: &str) -> String {
    format!("def execute(data, conn=None):\n    return {{'answer': '{answer}'}}\n")
}

/// The manifest fields every refusal below is about, over a gated app.
fn gated(app: &str, version: &str, extra: Value) -> String {
    let mut fields = json!({"required_permission": PERMISSION});
    for (k, v) in extra.as_object().unwrap() {
        fields[k] = v.clone();
    }
    manifest(app, version, fields)
}

/// Creates a user with `roles` and returns a client logged in as them.
async fn user(h: &Harness, name: &str, roles: &[&str]) -> reqwest::Client {
    let (s, b) = post(
        &h.http,
        format!("{}/admin/api/users", h.url),
        json!({"username": name, "password": "password-123", "roles": roles}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = post(
        &reqwest::Client::new(),
        format!("{}/api/auth/login", h.url),
        json!({"username": name, "password": "password-123"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    client_with_token(b["token"].as_str().unwrap())
}

async fn call(c: &reqwest::Client, h: &Harness, app: &str) -> (StatusCode, Value) {
    post(c, format!("{}/api/sync/{app}", h.url), json!({})).await
}

/// `nr_app_events_skipped_total{service, reason="manifest"}` (0 when absent). The
/// metrics are the process's, shared by the tests of this file: compare deltas.
async fn skipped(h: &Harness, service: &str) -> u64 {
    // /metrics needs a credential holding metrics:read (the admin's).
    let text = h
        .http
        .get(format!("{}/metrics", h.url))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix =
        format!("nr_app_events_skipped_total{{service=\"{service}\",reason=\"manifest\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |n| n.trim().parse().unwrap())
}

async fn wait_until<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Publishes an `app.updated` event straight to the `NR_APPS` stream, as an old
/// platform or a hostile client with bus access would; returns its sequence.
async fn publish_event(h: &Harness, data: AppUpdated) -> u64 {
    let js = async_nats::jetstream::new(h.nats_client().await);
    let payload = encode(&Envelope::new(APP_UPDATED, "not-deploy", data)).unwrap();
    js.publish(subjects::app_updated(&data_app(&payload)), payload.into())
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence
}

fn data_app(payload: &[u8]) -> String {
    nr_contracts::decode::<Envelope<AppUpdated>>(payload)
        .unwrap()
        .data
        .app_name
}

/// The registry's row of `app`: its current version and the stream sequence the
/// projection has applied.
async fn registry_view(h: &Harness, app: &str) -> (Option<String>, i64) {
    let db = sqlx::PgPool::connect(&h.db.url).await.unwrap();
    let version: Option<(String,)> = sqlx::query_as(
        "SELECT current_version FROM noderouter_core.apps WHERE app_name = $1 AND NOT deleted",
    )
    .bind(app)
    .fetch_optional(&db)
    .await
    .unwrap();
    let (seq,): (i64,) = sqlx::query_as(
        "SELECT stream_seq FROM noderouter_core.projection_offsets WHERE projection = 'apps'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    db.close().await;
    (version.map(|v| v.0), seq)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_refuses_a_mistyped_or_out_of_range_time_limit_naming_the_field() {
    let h = Harness::start().await;
    let app = app_name("vault");

    // The typo that used to open a gated app: refused, not warned about.
    let bundle = zip_files(&[
        (
            "manifest.json",
            &gated(&app, "1.0.0", json!({"job_timeout_s": "600"})),
        ),
        ("main.py", &main_py("v1")),
    ]);
    let (s, b) = h.deploy(&format!("{app}.zip"), bundle).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let details = b["details"].as_array().unwrap();
    assert_eq!(details.len(), 1, "{b}");
    assert_eq!(details[0]["rule"], "manifest.job_timeout_s", "{b}");
    assert_eq!(details[0]["file"], "manifest.json", "{b}");
    let message = details[0]["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "job_timeout_s must be a number of seconds from 1 to 86400 (24 h), not a string"
        ),
        "{message}"
    );

    // A number the runner used to panic on: refused with the range.
    let bundle = zip_files(&[
        (
            "manifest.json",
            &gated(&app, "1.0.0", json!({"timeout_s": 1e20})),
        ),
        ("main.py", &main_py("v1")),
    ]);
    let (s, b) = h.deploy(&format!("{app}.zip"), bundle).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["details"][0]["rule"], "manifest.timeout_s", "{b}");
    assert_eq!(
        b["details"][0]["message"],
        "timeout_s must be a number of seconds from 1 to 86400 (24 h), not 1e+20"
    );

    // Nothing was deployed; the same app with both limits in range deploys.
    assert_eq!(h.sync(&app, json!({})).await.0, StatusCode::NOT_FOUND);
    h.deploy_ok(
        &app,
        &[
            (
                "manifest.json",
                &gated(&app, "1.0.0", json!({"timeout_s": 5, "job_timeout_s": 600})),
            ),
            ("main.py", &main_py("v1")),
        ],
    )
    .await;
    assert_eq!(h.sync(&app, json!({})).await.1["answer"], "v1");
}

#[test]
fn app_lint_reports_the_same_refusals() {
    let dir = tempfile::tempdir().unwrap();
    for (extra, rule, says) in [
        (json!({"job_timeout_s": "600"}), "manifest.job_timeout_s", "job_timeout_s must be a number of seconds from 1 to 86400 (24 h), not a string (\"600\")"),
        (json!({"timeout_s": 1e20}), "manifest.timeout_s", "timeout_s must be a number of seconds from 1 to 86400 (24 h), not 1e+20"),
    ] {
        let app_dir = dir.path().join("vault");
        std::fs::create_dir_all(&app_dir).unwrap();
        std::fs::write(app_dir.join("manifest.json"), gated("vault", "1.0.0", extra)).unwrap();
        std::fs::write(app_dir.join("main.py"), main_py("v1")).unwrap();
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_noderouter"))
            .args(["app", "lint", "--no-import"])
            .arg(&app_dir)
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(o.status.code(), Some(1), "{out}");
        assert!(out.contains(&format!("error[{rule}] manifest.json:")), "{out}");
        assert!(out.contains(says), "{out}");
        assert!(out.contains("refused (422)"), "{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_event_with_a_bad_manifest_is_skipped_and_later_events_apply() {
    let h = Harness::start().await;
    role(&h, "vault_users", &[PERMISSION]).await;
    let viewer = user(&h, "viewer", &[]).await;
    let member = user(&h, "member", &["vault_users"]).await;

    let app = app_name("vault");
    let report = h
        .deploy_ok(
            &app,
            &[
                ("manifest.json", &gated(&app, "1.0.0", json!({}))),
                ("main.py", &main_py("v1")),
            ],
        )
        .await;
    let sha = report["sha256"].as_str().unwrap().to_owned();
    assert_eq!(call(&viewer, &h, &app).await.0, StatusCode::FORBIDDEN);
    assert_eq!(call(&member, &h, &app).await.1["answer"], "v1");

    let before: Vec<u64> = {
        let mut v = Vec::new();
        for service in ["gateway", "registry", "runner", "notify"] {
            v.push(skipped(&h, service).await);
        }
        v
    };
    let event = |version: &str, manifest: Value| AppUpdated {
        app_name: app.clone(),
        change: AppChange::Deployed,
        version: version.into(),
        sha256: sha.clone(),
        bundle_key: format!("bundles/{app}/{sha}.zip"),
        manifest,
        previous_version: Some("1.0.0".into()),
        actor: None,
        actor_id: None,
        undoes: None,
    };
    // Read leniently, the first dropped required_permission (the app opened to the
    // viewer); the second reached Duration::from_secs_f64 in the runner and panicked.
    publish_event(
        &h,
        event(
            "1.0.1",
            json!({"app_name": app, "version": "1.0.1", "required_permission": PERMISSION, "job_timeout_s": "600"}),
        ),
    )
    .await;
    let last_bad = publish_event(
        &h,
        event(
            "1.0.2",
            json!({"app_name": app, "version": "1.0.2", "required_permission": PERMISSION, "timeout_s": 1e20}),
        ),
    )
    .await;
    // An app that only ever had a bad event never appears.
    let ghost = app_name("ghost");
    let ghost_seq = publish_event(
        &h,
        AppUpdated {
            app_name: ghost.clone(),
            manifest: json!({"app_name": ghost, "version": 1}),
            ..event("1.0.0", Value::Null)
        },
    )
    .await;
    assert!(ghost_seq > last_bad);

    // Another app deployed after them: once the gateway has applied it (the deploy
    // answers then), it has been through the bad events, in stream order.
    let marker = app_name("marker");
    h.deploy_ok(
        &marker,
        &[
            ("manifest.json", &manifest(&marker, "1.0.0", json!({}))),
            ("main.py", &main_py("marker")),
        ],
    )
    .await;

    // Still gated, still serving the version deployed.
    assert_eq!(call(&viewer, &h, &app).await.0, StatusCode::FORBIDDEN);
    let (s, b) = post(&viewer, format!("{}/api/async/{app}", h.url), json!({})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    let (s, b) = call(&member, &h, &app).await;
    assert_eq!((s, &b["answer"]), (StatusCode::OK, &json!("v1")), "{b}");
    let listed = h
        .http
        .get(format!("{}/api/apps", h.url))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let mut versions: Vec<(&str, &str)> = listed["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["app_name"].as_str().unwrap(),
                a["version"].as_str().unwrap(),
            )
        })
        .collect();
    versions.sort_unstable();
    let mut expected = vec![(app.as_str(), "1.0.0"), (marker.as_str(), "1.0.0")];
    expected.sort_unstable();
    assert_eq!(versions, expected, "{listed}");
    assert_eq!(h.sync(&ghost, json!({})).await.0, StatusCode::NOT_FOUND);
    assert_eq!(h.sync(&marker, json!({})).await.1["answer"], "marker");

    // The registry's projection went past them without applying them.
    wait_until("the registry to pass the bad events", || async {
        registry_view(&h, &app).await.1 > ghost_seq as i64
    })
    .await;
    assert_eq!(registry_view(&h, &app).await.0.as_deref(), Some("1.0.0"));
    assert_eq!(registry_view(&h, &ghost).await.0, None);

    // Each skip was logged and counted by the service that skipped it.
    for (i, service) in ["gateway", "registry", "runner", "notify"]
        .into_iter()
        .enumerate()
    {
        // The runner loads only its apps' events (the two of `app`); the others see
        // all three.
        let expected = before[i] + if service == "runner" { 2 } else { 3 };
        wait_until(
            &format!("{service} to count the skipped events"),
            || async { skipped(&h, service).await >= expected },
        )
        .await;
    }

    // Deploy will not put such a manifest back either.
    let (s, b) = post(
        &h.http,
        format!("{}/admin/api/apps/{app}/rollback", h.url),
        json!({"version": "1.0.1"}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["details"][0]["rule"], "rollback.manifest", "{b}");
    assert!(
        b["error"]
            .as_str()
            .unwrap()
            .contains("manifest field job_timeout_s"),
        "{b}"
    );

    // A later deploy applies everywhere, after the skipped events.
    h.deploy_ok(
        &app,
        &[
            (
                "manifest.json",
                &gated(&app, "1.1.0", json!({"timeout_s": 10})),
            ),
            ("main.py", &main_py("v2")),
        ],
    )
    .await;
    let (s, b) = call(&member, &h, &app).await;
    assert_eq!((s, &b["answer"]), (StatusCode::OK, &json!("v2")), "{b}");
    assert_eq!(call(&viewer, &h, &app).await.0, StatusCode::FORBIDDEN);
    wait_until("the registry to apply 1.1.0", || async {
        registry_view(&h, &app).await.0.as_deref() == Some("1.1.0")
    })
    .await;
}

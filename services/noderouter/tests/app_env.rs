//! Per-app variables and secrets, end to end: set through the admin API and the CLI,
//! seen by the app's own processes (sync workers and job workers) in `os.environ`, by no
//! other app, sealed at rest, never listed or published, and a change reloads the app
//! under load with no failed call.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::type_complexity
)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{client_with_token, Harness};
use futures::StreamExt;
use nr_infra::appenv::{self, SecretsKey, SetEnv};
use nr_testkit::{app_name, manifest};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Returns the variables named in `data.names` as the worker sees them.
const MAIN: &str = r#"import os

def execute(data, conn=None):
    return {"env": {k: os.environ.get(k) for k in data.get("names", [])}}
"#;

const SECRET: &str = "sk-live-4f9a2c7e1b-do-not-leak";

async fn deploy_env_app(h: &Harness, prefix: &str) -> String {
    let app = app_name(prefix);
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
            ("main.py", MAIN),
        ],
    )
    .await;
    app
}

async fn env_of(h: &Harness, app: &str, names: &[&str]) -> Value {
    let (s, b) = h.sync(app, json!({ "names": names })).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["env"].clone()
}

/// Polls until `check` holds for what the app sees (bounded: the reload is an import).
async fn wait_env(h: &Harness, app: &str, names: &[&str], check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let env = env_of(h, app, names).await;
        if check(&env) {
            return env;
        }
        assert!(Instant::now() < deadline, "the app still sees {env}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn send(req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let res = req.send().await.unwrap();
    let s = res.status();
    (s, res.json().await.unwrap_or(Value::Null))
}

async fn set(h: &Harness, app: &str, body: Value) -> (StatusCode, Value) {
    send(
        h.http
            .put(format!("{}/admin/api/apps/{app}/env", h.url))
            .json(&body),
    )
    .await
}

async fn list(h: &Harness, app: &str) -> Value {
    let (s, b) = send(h.http.get(format!("{}/admin/api/apps/{app}/env", h.url))).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variables_and_secrets_reach_only_their_app_sealed_unlisted_and_unpublished() {
    let h = Harness::start().await;
    let app = deploy_env_app(&h, "envapp").await;
    let other = deploy_env_app(&h, "envother").await;
    let names = ["SHOP_CURRENCY", "PAYMENT_API_KEY"];
    assert_eq!(
        env_of(&h, &app, &names).await,
        json!({"SHOP_CURRENCY": null, "PAYMENT_API_KEY": null})
    );

    // The change is published on app.env.<app>: actor and name, never the value.
    let nats = h.nats_client().await;
    let mut events = nats
        .subscribe(nr_contracts::subjects::app_env(&app))
        .await
        .unwrap();
    nats.flush().await.unwrap();

    let (s, b) = set(&h, &app, json!({"name": "SHOP_CURRENCY", "value": "EUR"})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // POST sets too.
    let (s, b) = send(
        h.http
            .post(format!("{}/admin/api/apps/{app}/env", h.url))
            .json(&json!({"name": "PAYMENT_API_KEY", "value": SECRET, "secret": true})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(
        !b.to_string().contains(SECRET),
        "the answer echoes the secret: {b}"
    );

    for expected in [("SHOP_CURRENCY", false), ("PAYMENT_API_KEY", true)] {
        let msg = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .expect("an app.env event")
            .expect("subscription open");
        assert!(
            !msg.payload
                .windows(SECRET.len())
                .any(|w| w == SECRET.as_bytes()),
            "the event carries the secret"
        );
        let ev: Value = nr_contracts::decode(&msg.payload).unwrap();
        assert_eq!(ev["type"], "app.env", "{ev}");
        assert_eq!(ev["data"]["app_name"], app.as_str(), "{ev}");
        assert_eq!(ev["data"]["name"], expected.0, "{ev}");
        assert_eq!(ev["data"]["secret"], expected.1, "{ev}");
        assert_eq!(ev["data"]["change"], "set", "{ev}");
        assert_eq!(ev["data"]["actor"], "admin", "{ev}");
        assert!(ev["data"].get("value").is_none(), "{ev}");
    }

    // The app's sync workers see both.
    let env = wait_env(&h, &app, &names, |e| e["PAYMENT_API_KEY"] == SECRET).await;
    assert_eq!(env["SHOP_CURRENCY"], "EUR", "{env}");
    // So do its job workers.
    let (s, b) = h.submit(&app, json!({ "names": names })).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let job = h
        .wait_job(b["job_id"].as_str().unwrap(), |j| {
            j["status"] == "completed"
        })
        .await;
    assert_eq!(
        job["result"]["env"],
        json!({"SHOP_CURRENCY": "EUR", "PAYMENT_API_KEY": SECRET}),
        "{job}"
    );
    // Another app sees neither.
    assert_eq!(
        env_of(&h, &other, &names).await,
        json!({"SHOP_CURRENCY": null, "PAYMENT_API_KEY": null})
    );

    // The list shows the variable's value and only the secret's name.
    let listed = list(&h, &app).await;
    assert!(!listed.to_string().contains(SECRET), "{listed}");
    let env = listed["env"].as_array().unwrap();
    assert_eq!(env.len(), 2, "{listed}");
    assert_eq!(env[0]["name"], "PAYMENT_API_KEY");
    assert_eq!(env[0]["secret"], true);
    assert_eq!(env[0]["value"], Value::Null);
    assert_eq!(env[0]["updated_by"], "admin");
    assert_eq!(env[1]["name"], "SHOP_CURRENCY");
    assert_eq!(env[1]["value"], "EUR");
    assert_eq!(list(&h, &other).await["env"], json!([]));

    // At rest: the secret's bytes are ciphertext, the variable's are its value.
    let db = sqlx::PgPool::connect(&h.db.url).await.unwrap();
    let rows: Vec<(String, bool, Vec<u8>, Option<Vec<u8>>)> = sqlx::query_as(
        "SELECT name, secret, value, nonce FROM noderouter_core.app_env WHERE app_name = $1 ORDER BY name",
    )
    .bind(&app)
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(rows.len(), 2);
    let (_, secret, value, nonce) = &rows[0];
    assert!(*secret);
    assert!(!value.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()));
    assert!(!value.windows(8).any(|w| w == b"sk-live-"));
    assert_eq!(value.len(), SECRET.len() + 16, "ciphertext and tag");
    assert_eq!(nonce.as_ref().map(Vec::len), Some(12));
    assert_eq!(rows[1].2, b"EUR");

    // Unset removes it from the app, and publishes the name.
    let (s, b) = send(h.http.delete(format!(
        "{}/admin/api/apps/{app}/env/PAYMENT_API_KEY",
        h.url
    )))
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let msg = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .unwrap()
        .unwrap();
    let ev: Value = nr_contracts::decode(&msg.payload).unwrap();
    assert_eq!(ev["data"]["change"], "unset", "{ev}");
    assert_eq!(ev["data"]["secret"], true, "{ev}");
    let env = wait_env(&h, &app, &names, |e| e["PAYMENT_API_KEY"].is_null()).await;
    assert_eq!(env["SHOP_CURRENCY"], "EUR");
    let (s, b) = send(h.http.delete(format!(
        "{}/admin/api/apps/{app}/env/PAYMENT_API_KEY",
        h.url
    )))
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");

    // The embedded default keeps its key beside the runner directory, owner-only.
    let key_file = h.dir.path().join("secrets.key");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "{}", key_file.display());
    assert!(SecretsKey::parse(std::fs::read_to_string(&key_file).unwrap().trim()).is_ok());

    // A redeploy keeps the variables.
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.1", json!({}))),
            ("main.py", MAIN),
        ],
    )
    .await;
    assert_eq!(env_of(&h, &app, &names).await["SHOP_CURRENCY"], "EUR");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_change_under_a_steady_stream_of_calls_reloads_the_app_with_no_failed_call() {
    let h = Arc::new(Harness::start().await);
    let app = deploy_env_app(&h, "envload").await;
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (h, app, stop, calls, failures) = (
            h.clone(),
            app.clone(),
            stop.clone(),
            calls.clone(),
            failures.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let (s, b) = h.sync(&app, json!({"names": ["COLOR"]})).await;
                calls.fetch_add(1, Ordering::Relaxed);
                if s != StatusCode::OK {
                    failures.lock().unwrap().push(format!("{s}: {b}"));
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut reload_times = Vec::new();
    for color in ["blue", "green", "red"] {
        let (s, b) = set(&h, &app, json!({"name": "COLOR", "value": color})).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let started = Instant::now();
        wait_env(&h, &app, &["COLOR"], |e| e["COLOR"] == color).await;
        reload_times.push(started.elapsed());
        // Once seen, every later call sees it: the old host is gone.
        for _ in 0..10 {
            assert_eq!(env_of(&h, &app, &["COLOR"]).await["COLOR"], color);
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} of {} calls failed during the reloads: {:?}",
        failures.len(),
        calls.load(Ordering::Relaxed),
        &failures[..failures.len().min(5)]
    );
    assert!(calls.load(Ordering::Relaxed) > 50, "too few calls to tell");
    eprintln!(
        "{} calls, reloads visible after {reload_times:?}",
        calls.load(Ordering::Relaxed)
    );
    // Documented bound (docs/api.md): visible within seconds, an import of the app.
    for t in &reload_times {
        assert!(*t < Duration::from_secs(10), "reload took {t:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_names_reserved_names_and_oversized_values_are_refused_and_the_permission_is_required()
{
    let h = Harness::start().await;
    let app = app_name("envcheck");
    let refused = |field: &'static str| {
        move |(s, b): (StatusCode, Value)| {
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
            assert_eq!(b["details"]["field"], field, "{b}");
            assert!(
                b["error"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("{field}: ")),
                "{b}"
            );
        }
    };
    for name in [
        "lower",
        "1ABC",
        "A-B",
        "",
        "DATABASE_URL",
        "PATH",
        "HOME",
        "TMPDIR",
        "LANG",
        "PYTHONPATH",
        "PYTHONSTARTUP",
        "NR_APP_NAME",
        "NR_JWT_SECRET",
        "LD_PRELOAD",
    ] {
        refused("name")(set(&h, &app, json!({"name": name, "value": "x"})).await);
    }
    refused("name")(set(&h, &app, json!({"name": "A".repeat(129), "value": "x"})).await);
    refused("name")(set(&h, &app, json!({"value": "x"})).await);
    refused("name")(set(&h, &app, json!({"name": 5, "value": "x"})).await);
    refused("value")(
        set(
            &h,
            &app,
            json!({"name": "BIG", "value": "x".repeat(32 * 1024 + 1)}),
        )
        .await,
    );
    refused("value")(set(&h, &app, json!({"name": "NUL", "value": "a\u{0}b"})).await);
    refused("value")(set(&h, &app, json!({"name": "NONE"})).await);
    refused("secret")(
        set(
            &h,
            &app,
            json!({"name": "S", "value": "x", "secret": "yes"}),
        )
        .await,
    );
    refused("name")(
        send(
            h.http
                .delete(format!("{}/admin/api/apps/{app}/env/PYTHONPATH", h.url)),
        )
        .await,
    );
    let (s, b) = set(
        &h,
        &app,
        json!({"name": "OK_MAX", "value": "x".repeat(32 * 1024)}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(list(&h, &app).await["env"][0]["name"], "OK_MAX");

    // A deployer and a reader without apps:env get 403, and change nothing.
    common::role(&h, "deployers", &["apps:deploy", "apps:read"]).await;
    let (s, b) = common::post(
        &h.http,
        format!("{}/admin/api/users", h.url),
        json!({"username": "dep", "password": "password-123", "roles": ["deployers"]}),
    )
    .await;
    assert!(s.is_success(), "{b}");
    let (s, b) = common::post(
        &reqwest::Client::new(),
        format!("{}/api/auth/login", h.url),
        json!({"username": "dep", "password": "password-123"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let dep = client_with_token(b["token"].as_str().unwrap());
    let url = format!("{}/admin/api/apps/{app}/env", h.url);
    for req in [
        dep.get(&url),
        dep.put(&url).json(&json!({"name": "X", "value": "y"})),
        dep.post(&url).json(&json!({"name": "X", "value": "y"})),
        dep.delete(format!("{url}/OK_MAX")),
    ] {
        let (s, b) = send(req).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        assert!(b["error"].as_str().unwrap().contains("apps:env"), "{b}");
    }
    let (s, _) = send(reqwest::Client::new().get(&url)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let env = list(&h, &app).await;
    assert_eq!(env["env"].as_array().unwrap().len(), 1, "{env}");
    // The catalogue offers the permission for a role.
    let (_, perms) = send(h.http.get(format!("{}/admin/api/permissions", h.url))).await;
    assert!(perms.to_string().contains("apps:env"), "{perms}");
}

async fn cli(h: &Harness, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    use tokio::io::AsyncWriteExt as _;
    let token = h.platform.as_ref().unwrap().admin_token().to_owned();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_noderouter"))
        .args(["app", "env"])
        .args(args)
        .args(["--url", &h.url, "--token", &token])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).await.unwrap();
    }
    drop(input);
    let out = child.wait_with_output().await.unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_sets_lists_and_unsets_against_the_running_platform() {
    let h = Harness::start().await;
    let app = deploy_env_app(&h, "envcli").await;
    let (ok, out, err) = cli(&h, &["set", &app, "GREETING", "hello"], None).await;
    assert!(ok, "{out}{err}");
    // A secret from standard input, so it is in no process's arguments.
    let (ok, out, err) = cli(
        &h,
        &["set", &app, "TOKEN", "--secret"],
        Some(&format!("{SECRET}\n")),
    )
    .await;
    assert!(ok, "{out}{err}");
    assert!(!out.contains(SECRET) && !err.contains(SECRET));

    let (ok, out, err) = cli(&h, &["list", &app], None).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("GREETING=hello"), "{out}");
    assert!(out.contains("TOKEN  (secret)"), "{out}");
    assert!(!out.contains(SECRET), "{out}");
    let env = wait_env(&h, &app, &["GREETING", "TOKEN"], |e| e["TOKEN"] == SECRET).await;
    assert_eq!(env["GREETING"], "hello");

    let (ok, out, err) = cli(&h, &["unset", &app, "GREETING"], None).await;
    assert!(ok, "{out}{err}");
    let (ok, out, _) = cli(&h, &["list", &app, "--json"], None).await;
    assert!(ok);
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed["env"].as_array().unwrap().len(), 1, "{listed}");
    wait_env(&h, &app, &["GREETING"], |e| e["GREETING"].is_null()).await;

    // A refusal exits non-zero and says which field is wrong.
    let (ok, out, err) = cli(&h, &["set", &app, "NR_ADMIN_PASSWORD", "x"], None).await;
    assert!(!ok, "{out}");
    assert!(err.contains("422") && err.contains("name: "), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_secrets_key_secrets_are_refused_and_variables_still_work() {
    // An empty setting stands for a split gateway and runner started without one.
    let h = Harness::start_with(&["--secrets-key", ""]).await;
    let app = deploy_env_app(&h, "envnokey").await;
    let (s, b) = set(
        &h,
        &app,
        json!({"name": "API_KEY", "value": SECRET, "secret": true}),
    )
    .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{b}");
    assert!(
        b["error"].as_str().unwrap().contains("NR_SECRETS_KEY"),
        "{b}"
    );
    assert!(!b.to_string().contains(SECRET));
    assert_eq!(list(&h, &app).await["env"], json!([]));
    let (s, b) = set(&h, &app, json!({"name": "PLAIN", "value": "yes"})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    wait_env(&h, &app, &["PLAIN"], |e| e["PLAIN"] == "yes").await;

    // A secret sealed by a service that has a key (written straight to the table) does
    // not open on this runner: the reload fails and the previous host keeps serving.
    let db = sqlx::PgPool::connect(&h.db.url).await.unwrap();
    let key = SecretsKey::parse(&SecretsKey::generate_text().unwrap()).unwrap();
    appenv::set(
        &db,
        Some(&key),
        SetEnv {
            app: &app,
            name: "API_KEY",
            value: SECRET,
            secret: true,
            actor: "test",
        },
    )
    .await
    .unwrap();
    let (s, b) = set(&h, &app, json!({"name": "PLAIN", "value": "again"})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let env = env_of(&h, &app, &["PLAIN", "API_KEY"]).await;
    assert_eq!(env, json!({"PLAIN": "yes", "API_KEY": null}), "{env}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_key_rotation_old_secrets_still_open_and_are_sealed_again_with_the_new_key() {
    let old = SecretsKey::generate_text().unwrap();
    let new = SecretsKey::generate_text().unwrap();
    let h = Harness::start_with(&["--secrets-key", &format!("{new},{old}")]).await;
    let app = deploy_env_app(&h, "envrotate").await;
    let db = sqlx::PgPool::connect(&h.db.url).await.unwrap();
    let old_key = SecretsKey::parse(&old).unwrap();
    appenv::set(
        &db,
        Some(&old_key),
        SetEnv {
            app: &app,
            name: "OLD_SECRET",
            value: SECRET,
            secret: true,
            actor: "test",
        },
    )
    .await
    .unwrap();
    // Any change reloads the app, which reads every variable again.
    let (s, b) = set(
        &h,
        &app,
        json!({"name": "NEW_SECRET", "value": "fresh", "secret": true}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let env = wait_env(&h, &app, &["OLD_SECRET", "NEW_SECRET"], |e| {
        e["NEW_SECRET"] == "fresh"
    })
    .await;
    assert_eq!(env["OLD_SECRET"], SECRET, "{env}");

    let both = SecretsKey::parse(&format!("{new},{old}")).unwrap();
    assert_eq!(appenv::reseal(&db, &both).await.unwrap(), 1);
    let new_only = SecretsKey::parse(&new).unwrap();
    let opened = appenv::load_for_app(&db, Some(&new_only), &app)
        .await
        .unwrap();
    assert_eq!(
        opened,
        vec![
            ("NEW_SECRET".to_owned(), "fresh".to_owned()),
            ("OLD_SECRET".to_owned(), SECRET.to_owned())
        ]
    );
    let err = appenv::load_for_app(&db, Some(&old_key), &app)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("does not open") && !err.contains(SECRET),
        "{err}"
    );
    assert_eq!(appenv::reseal(&db, &both).await.unwrap(), 0);
}

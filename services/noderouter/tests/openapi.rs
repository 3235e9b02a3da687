//! The OpenAPI document at `/api/openapi.json`: it lists every route the gateway
//! serves under `/api` and `/admin/api`, and schemathesis, fuzzing the API from it
//! with an admin credential, finds no 5xx.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::Harness;
use nr_testkit::{app_name, manifest};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Every (method, path) the gateway's router serves under `/api` and `/admin/api`.
/// A route added to the router belongs here and in the document.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/openapi.json"),
    ("post", "/api/sync/{app}"),
    ("post", "/api/async/{app}"),
    ("get", "/api/async/jobs"),
    ("get", "/api/async/jobs/{id}"),
    ("get", "/api/async/jobs/{id}/logs"),
    ("post", "/api/async/jobs/{id}/requeue"),
    ("post", "/api/async/requeue"),
    ("delete", "/api/async/jobs/{id}"),
    ("post", "/api/auth/login"),
    ("post", "/api/auth/logout"),
    ("get", "/api/auth/me"),
    ("post", "/api/auth/password"),
    ("get", "/api/apps"),
    ("post", "/api/notify/subscribe"),
    ("post", "/api/notify/unsubscribe"),
    ("get", "/api/notify/subscriptions"),
    ("post", "/api/notify/ticket"),
    ("get", "/api/ws/notify"),
    ("get", "/admin/api/users"),
    ("post", "/admin/api/users"),
    ("patch", "/admin/api/users/{id}"),
    ("put", "/admin/api/users/{id}/roles"),
    ("get", "/admin/api/roles"),
    ("post", "/admin/api/roles"),
    ("delete", "/admin/api/roles/{name}"),
    ("post", "/admin/api/roles/{name}/permissions"),
    ("delete", "/admin/api/roles/{name}/permissions/{permission}"),
    ("get", "/admin/api/permissions"),
    ("get", "/admin/api/tokens"),
    ("post", "/admin/api/tokens"),
    ("delete", "/admin/api/tokens/{id}"),
    ("post", "/admin/api/apps/deploy"),
    ("delete", "/admin/api/apps/deploy"),
    ("get", "/admin/api/apps"),
    ("delete", "/admin/api/apps/{app}"),
    ("get", "/admin/api/apps/{app}/versions"),
    ("post", "/admin/api/apps/{app}/rollback"),
    ("get", "/admin/api/apps/{app}/env"),
    ("put", "/admin/api/apps/{app}/env"),
    ("post", "/admin/api/apps/{app}/env"),
    ("delete", "/admin/api/apps/{app}/env/{name}"),
    ("get", "/admin/api/audit"),
    ("get", "/admin/api/schedules"),
    ("post", "/admin/api/schedules/{app}/{name}/pause"),
    ("post", "/admin/api/schedules/{app}/{name}/resume"),
    ("get", "/admin/api/schedules/{app}/{name}/ticks"),
    ("get", "/files/{token}"),
    ("get", "/admin/api/console/metrics"),
    ("get", "/admin/api/console/jobs/{id}/payload"),
];

const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options"];

async fn document(h: &Harness) -> Value {
    // Public: no credential.
    let res = reqwest::get(format!("{}/api/openapi.json", h.url))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json")));
    let text = res.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_lists_every_route_with_the_error_shape() {
    let h = Harness::start().await;
    let doc = document(&h).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    let paths = doc["paths"].as_object().expect("paths");

    let missing: Vec<String> = ROUTES
        .iter()
        .filter(|(m, p)| !paths.get(*p).is_some_and(|item| item[*m].is_object()))
        .map(|(m, p)| format!("{} {p}", m.to_uppercase()))
        .collect();
    assert!(
        missing.is_empty(),
        "routes missing from the document: {missing:?}"
    );
    let mut unknown = Vec::new();
    for (path, item) in paths {
        for m in METHODS {
            if item[*m].is_object() && !ROUTES.contains(&(*m, path.as_str())) {
                unknown.push(format!("{} {path}", m.to_uppercase()));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "documented operations the test does not know (add them to ROUTES): {unknown:?}"
    );

    // The error shape is a schema, and operations refer to it.
    let error = &doc["components"]["schemas"]["ErrorBody"];
    assert_eq!(error["required"], json!(["error", "code"]), "{error}");
    let sync_404 = &doc["paths"]["/api/sync/{app}"]["post"]["responses"]["404"];
    assert_eq!(
        sync_404["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/ErrorBody",
        "{sync_404}"
    );
    // Bearer and cookie, required by default; login and this document are public.
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer", "{schemes}");
    assert_eq!(schemes["cookie"]["in"], "cookie", "{schemes}");
    assert_eq!(schemes["cookie"]["name"], "nr_session", "{schemes}");
    assert_eq!(
        doc["paths"]["/api/auth/login"]["post"]["security"],
        json!([{}])
    );
    assert_eq!(
        doc["paths"]["/api/sync/{app}"]["post"]["security"],
        json!([{"bearer": []}, {"cookie": []}])
    );
    // The deploy upload is multipart with a binary `file`.
    let upload = &doc["paths"]["/admin/api/apps/deploy"]["post"]["requestBody"]["content"]
        ["multipart/form-data"]["schema"];
    assert!(upload.is_object(), "{upload}");
    let served = reqwest::get(format!("{}/api/openapi.json", h.url))
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(served, doc, "the document is stable between requests");
}

/// Path of the `st` entry point next to the project's Python interpreter.
fn schemathesis() -> std::path::PathBuf {
    let python = std::path::PathBuf::from(nr_testkit::python());
    python.with_file_name("st")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error() {
    let h = Harness::start().await;
    let app = app_name("fuzz");
    h.deploy_ok(
        &app,
        &[
            (
                "manifest.json",
                &manifest(
                    &app,
                    "1.0.0",
                    json!({"actions": [{"name": "ping", "display_name": "Ping"}]}),
                ),
            ),
            (
                "main.py",
                "def execute(data, conn=None):\n    return {'echo': data}\n",
            ),
        ],
    )
    .await;
    // An API token, so that the fuzzer's `POST /api/auth/logout` does not end the
    // session it fuzzes with.
    let res = h
        .http
        .post(format!("{}/admin/api/tokens", h.url))
        .json(&json!({"name": "fuzz", "roles": ["admin"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let token = res.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();

    // Half of the generated `{app}` values name the deployed app, so the fuzzer also
    // reaches the runner, the job queue and the deploy service.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("schemathesis.toml");
    std::fs::write(
        &config,
        format!(
            "[dictionaries.apps]\nvalues = [\"{app}\"]\n\n[parameters]\n\"path.app\" = {{ dictionary = \"apps\", probability = 0.5 }}\n"
        ),
    )
    .unwrap();

    // A fixed seed keeps the run repeatable; NR_FUZZ_SEED explores other inputs.
    let seed = std::env::var("NR_FUZZ_SEED").unwrap_or_else(|_| "1".into());
    let st = schemathesis();
    let output = tokio::time::timeout(
        Duration::from_secs(150),
        tokio::process::Command::new(&st)
            .current_dir(dir.path())
            .arg("--config-file")
            .arg(&config)
            .arg("--no-color")
            .arg("run")
            .arg(format!("{}/api/openapi.json", h.url))
            .args(["--checks", "not_a_server_error"])
            .args(["--header", &format!("Authorization: Bearer {token}")])
            .args(["--max-examples", "25"])
            .args(["--max-time", "60"])
            // One worker: with two threads, hypothesis's use of `ast` trips CPython 3.11's
            // "AST constructor recursion depth mismatch" (gh-106905) now and then.
            .args(["--workers", "1"])
            .args(["--request-timeout", "20"])
            .args(["--seed", &seed])
            .args(["--suppress-health-check", "all"])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("schemathesis finishes within 150 s")
    .unwrap_or_else(|e| {
        panic!(
            "cannot run {} ({e}); install it: .venv/bin/pip install -r requirements-dev.txt",
            st.display()
        )
    });
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{report}");
    assert!(
        output.status.success(),
        "schemathesis reports failures ({}):\n{report}",
        output.status
    );
    assert!(
        !report.contains("Server error"),
        "schemathesis saw a server error:\n{report}"
    );
}

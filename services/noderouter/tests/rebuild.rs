//! The projections in Postgres are rebuilt from the event log: a platform started on an
//! empty database, or on one restored from an older copy, catches up from NATS at start
//! and ends with the same rows as the database that saw every event live.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{config_for, post, role, Harness};
use noderouter::Platform;
use nr_testkit::{app_name, manifest, TestDb};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::Connection as _;

/// Every table the registry projects from `NR_APPS` and `NR_RBAC`, as sorted JSON rows.
/// Left out: wall-clock bookkeeping (`projection_offsets.updated_at`) and the creation
/// time of the built-in roles, which the migration inserts rather than an event.
const PROJECTIONS: &[(&str, &str)] = &[
    ("apps", "to_jsonb(t)"),
    ("app_versions", "to_jsonb(t)"),
    ("permissions", "to_jsonb(t)"),
    ("users", "to_jsonb(t)"),
    (
        "roles",
        "CASE WHEN t.builtin THEN to_jsonb(t) - 'created_at' ELSE to_jsonb(t) END",
    ),
    ("role_permissions", "to_jsonb(t)"),
    ("user_roles", "to_jsonb(t)"),
    ("api_tokens", "to_jsonb(t)"),
    ("revoked_tokens", "to_jsonb(t)"),
    ("subscriptions", "to_jsonb(t)"),
    ("projection_offsets", "to_jsonb(t) - 'updated_at'"),
];

async fn snapshot(url: &str) -> Vec<(String, Value)> {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let mut out = Vec::new();
    for (table, row) in PROJECTIONS {
        let sql = format!(
            "SELECT COALESCE(jsonb_agg(r ORDER BY r::text), '[]'::jsonb) \
             FROM (SELECT {row} AS r FROM noderouter_core.{table} t) s"
        );
        let (rows,): (Value,) = sqlx::query_as(&sql).fetch_one(&mut conn).await.unwrap();
        out.push((table.to_string(), rows));
    }
    conn.close().await.unwrap();
    out
}

fn assert_same(expected: &[(String, Value)], actual: &[(String, Value)]) {
    for ((table, want), (_, got)) in expected.iter().zip(actual) {
        assert_eq!(
            got, want,
            "table noderouter_core.{table} differs after the rebuild"
        );
    }
}

/// Deploys an app, creates a role with a grant, a user holding it, an API token and a
/// subscription: one event of each kind the projections apply.
async fn activity(h: &Harness, url: &str, tag: &str) -> String {
    let app = app_name(tag);
    h.deploy_ok(
        &app,
        &[
            (
                "manifest.json",
                &manifest(
                    &app,
                    "1.0.0",
                    json!({"required_permission": format!("{tag}:use"),
                           "actions": [{"name": "done", "display_name": "Done"}]}),
                ),
            ),
            (
                "main.py",
                "def execute(data, conn=None):\n    return {'ok': 1}\n",
            ),
        ],
    )
    .await;
    let role_name = format!("{tag}_role");
    role(h, &role_name, &[&format!("{tag}:use")]).await;
    let (s, b) = post(
        &h.http,
        format!("{url}/admin/api/users"),
        json!({"username": format!("{tag}_user"), "password": "a-long-password-123", "roles": [role_name]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = post(
        &h.http,
        format!("{url}/admin/api/tokens"),
        json!({"name": format!("{tag}_token"), "roles": [format!("{tag}_role")]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = post(
        &h.http,
        format!("{url}/api/notify/subscribe"),
        json!({"app_name": app, "action_name": "done"}),
    )
    .await;
    assert!(s.is_success(), "{b}");
    app
}

async fn stop(h: &mut Harness) {
    if let Some(p) = h.platform.take() {
        p.shutdown().await.unwrap();
    }
}

/// Starts the platform again on `db` (default: the harness's own), with the harness's
/// NATS and object store.
async fn restart_on(h: &mut Harness, db: Option<&TestDb>) {
    let db = db.unwrap_or(&h.db);
    let platform = Platform::start(config_for(&h.nats, db, h.dir.path(), &[]))
        .await
        .expect("the platform starts on a database behind the event log");
    h.url = platform.url();
    h.http = common::client_with_token(platform.admin_token());
    h.platform = Some(platform);
}

/// A copy of `db` as it is now, as an operator's backup would be.
async fn copy_of(db: &TestDb) -> TestDb {
    let name = format!("{}_copy", db.name);
    let admin = nr_testkit::pg_admin_url();
    let mut conn = sqlx::PgConnection::connect(&format!("{admin}/postgres"))
        .await
        .unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&db.name)
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(&format!(
        "CREATE DATABASE \"{name}\" TEMPLATE \"{}\"",
        db.name
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    TestDb {
        url: format!("{admin}/{name}"),
        name,
    }
}

#[tokio::test]
async fn an_empty_database_is_rebuilt_from_the_log_row_for_row() {
    let mut h = Harness::start().await;
    let url = h.url.clone();
    let app = activity(&h, &url, "first").await;
    stop(&mut h).await;
    let live = snapshot(&h.db.url).await;
    assert!(
        live[0].1.as_array().is_some_and(|a| !a.is_empty()),
        "the live database has apps"
    );

    let fresh = TestDb::create().await.unwrap();
    restart_on(&mut h, Some(&fresh)).await;
    // Serving works on the rebuilt database: the app is listed and answers.
    let (s, b) = post(&h.http, format!("{}/api/sync/{app}", h.url), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = post(
        &reqwest::Client::new(),
        format!("{}/api/auth/login", h.url),
        json!({"username": "first_user", "password": "a-long-password-123"}),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::OK,
        "a user created before the rebuild signs in: {b}"
    );
    stop(&mut h).await;
    assert_same(&live, &snapshot(&fresh.url).await);
}

#[tokio::test]
async fn a_database_restored_from_an_older_copy_catches_up() {
    let mut h = Harness::start().await;
    let url = h.url.clone();
    activity(&h, &url, "before").await;
    stop(&mut h).await;
    let backup = copy_of(&h.db).await;

    // Life goes on after the backup was taken.
    restart_on(&mut h, None).await;
    let url = h.url.clone();
    let later = activity(&h, &url, "after").await;
    stop(&mut h).await;
    let live = snapshot(&h.db.url).await;

    // The restored copy misses what happened after it and catches up at start.
    assert_ne!(snapshot(&backup.url).await, live);
    restart_on(&mut h, Some(&backup)).await;
    let (s, b) = post(&h.http, format!("{}/api/sync/{later}", h.url), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    stop(&mut h).await;
    assert_same(&live, &snapshot(&backup.url).await);
}

/// A database that has applied more of a stream than the stream holds (NATS's store
/// lost, or restored from a backup older than the database's): events written from then
/// on would be taken as applied and never projected, so `/readyz` says so, naming the
/// stream (before: 200, and only a log line at start).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_while_the_database_is_ahead_of_a_stream() {
    let h = Harness::start_with(&["--runners", "0"]).await;
    let db = sqlx::PgPool::connect(&h.db.url).await.unwrap();
    let ready = || async {
        let r = reqwest::get(format!("{}/readyz", h.url)).await.unwrap();
        (r.status(), r.text().await.unwrap())
    };
    assert_eq!(ready().await.0, StatusCode::OK);
    sqlx::query(
        "UPDATE noderouter_core.projection_offsets SET stream_seq = stream_seq + 1000000 \
         WHERE projection = 'rbac'",
    )
    .execute(&db)
    .await
    .unwrap();
    let (s, text) = ready().await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{text}");
    assert!(text.contains("stream NR_RBAC ends at"), "{text}");
    sqlx::query(
        "UPDATE noderouter_core.projection_offsets SET stream_seq = stream_seq - 1000000 \
         WHERE projection = 'rbac'",
    )
    .execute(&db)
    .await
    .unwrap();
    assert_eq!(ready().await.0, StatusCode::OK);
}

/// An object store emptied, replaced or unmounted under the running platform (the
/// directory swapped for an empty one): calls of its apps fail once a runner loads them
/// again, so `/readyz` says so, naming the missing bundle (before: 200 everywhere).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_while_the_object_store_lacks_the_last_deployed_bundle() {
    let h = Harness::start_with(&["--runners", "0"]).await;
    let app = nr_testkit::app_name("kept");
    h.deploy_ok(
        &app,
        &[
            (
                "manifest.json",
                &nr_testkit::manifest(&app, "1.0.0", serde_json::json!({})),
            ),
            ("main.py", "def execute(data, conn=None):\n    return {}\n"),
        ],
    )
    .await;
    let ready = || async {
        let r = reqwest::get(format!("{}/readyz", h.url)).await.unwrap();
        (r.status(), r.text().await.unwrap())
    };
    assert_eq!(ready().await.0, StatusCode::OK);
    let objects = h.dir.path().join("objects");
    let aside = h.dir.path().join("objects.aside");
    std::fs::rename(&objects, &aside).unwrap();
    std::fs::create_dir(&objects).unwrap();
    let (s, text) = ready().await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{text}");
    assert!(
        text.contains("the object store lacks bundles/") && text.contains(&app),
        "{text}"
    );
    std::fs::remove_dir(&objects).unwrap();
    std::fs::rename(&aside, &objects).unwrap();
    assert_eq!(ready().await.0, StatusCode::OK);
}

/// A dump restored under the running platform: the projection, whose database went
/// back below what it applied, reads the log again from the restored offset, so what
/// the dump lacks comes back and the next change lands too (before: the next change
/// moved the offset past the missing events, which were lost for good; then, refused,
/// it left the registry stuck until a restart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_restored_under_the_running_platform_is_caught_up_from_the_log() {
    let h = Harness::start_with(&["--runners", "0"]).await;
    let db = sqlx::PgPool::connect(&h.db.url).await.unwrap();
    let offset = || async {
        let (seq,): (i64,) = sqlx::query_as(
            "SELECT stream_seq FROM noderouter_core.projection_offsets WHERE projection = 'rbac'",
        )
        .fetch_one(&db)
        .await
        .unwrap();
        seq
    };
    let users = format!("{}/admin/api/users", h.url);
    let before = offset().await;
    let (s, b) = post(
        &h.http,
        users.clone(),
        json!({"username": "dave", "password": "a-long-password-42"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    // The dump was taken before dave was created.
    sqlx::query("DELETE FROM noderouter_core.users WHERE username = 'dave'")
        .execute(&db)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE noderouter_core.projection_offsets SET stream_seq = $1 WHERE projection = 'rbac'",
    )
    .bind(before)
    .execute(&db)
    .await
    .unwrap();
    let (s, b) = post(
        &h.http,
        users.clone(),
        json!({"username": "erin", "password": "a-long-password-42"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    for name in ["dave", "erin"] {
        let mut status = StatusCode::UNAUTHORIZED;
        for _ in 0..50 {
            let (s, _) = post(
                &reqwest::Client::new(),
                format!("{}/api/auth/login", h.url),
                json!({"username": name, "password": "a-long-password-42"}),
            )
            .await;
            status = s;
            if s == StatusCode::OK {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(status, StatusCode::OK, "{name} cannot log in");
    }
    assert!(offset().await > before);
}

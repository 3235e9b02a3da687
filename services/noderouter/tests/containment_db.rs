//! Hostile apps against the Postgres boundary: each app connects as its own role (its
//! `DATABASE_URL` and the injected `conn`), keeps its tables in its own schema, and has
//! one door into `noderouter_core`: the author guide's progress `UPDATE` on its own jobs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{guide_starter_main, Harness};
use futures::StreamExt;
use nr_contracts::events::JobProgress;
use nr_contracts::{decode, Envelope};
use reqwest::StatusCode;
use serde_json::json;

fn manifest(app: &str) -> String {
    format!(r#"{{"app_name":"{app}","version":"1.0.0","api_version":"1.0.0"}}"#)
}

/// Runs each statement of `data["sql"]` on the injected connection and on a connection
/// of its own `DATABASE_URL`, reporting the error class or the row count of each.
const PROBE: &str = r#"
import os, psycopg2

def _run(conn, sql, args):
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            n = cur.rowcount
        conn.commit()
        return {"ok": n}
    except Exception as exc:
        conn.rollback()
        return {"error": type(exc).__name__, "message": str(exc).strip()}

def execute(data, conn=None):
    own = psycopg2.connect(os.environ["DATABASE_URL"])
    try:
        out = {}
        for name, sql in data["sql"].items():
            args = data.get("args", {}).get(name, [])
            out[name] = {"injected": _run(conn, sql, args), "own": _run(own, sql, args)}
        with own.cursor() as cur:
            cur.execute("SELECT current_user, current_schema()")
            out["whoami"] = list(cur.fetchone())
        return out
    finally:
        own.close()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_can_neither_read_nor_write_the_platforms_tables() {
    let h = Harness::start().await;
    h.deploy_ok(
        "probe",
        &[("manifest.json", &manifest("probe")), ("main.py", PROBE)],
    )
    .await;
    let sql = json!({
        "hashes": "SELECT username, password_hash FROM noderouter_core.users",
        "insert_admin": "INSERT INTO noderouter_core.users (id, username, password_hash) VALUES ('evil', 'evil', 'x')",
        "apps": "SELECT app_name FROM noderouter_core.apps",
        "identities": "SELECT db_password FROM noderouter_core.app_identities",
        "roles": "INSERT INTO noderouter_core.user_roles SELECT 'evil', 'admin'",
        "jobs_payload": "SELECT payload, result FROM noderouter_core.job_queue",
        "drop_jobs": "DROP TABLE noderouter_core.job_queue",
    });
    let (s, b) = h.sync("probe", json!({"sql": sql})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    for name in sql.as_object().unwrap().keys() {
        for via in ["injected", "own"] {
            let r = &b[name][via];
            assert!(
                r.get("error").is_some(),
                "{name} via the {via} connection succeeded: {r}"
            );
        }
    }
    assert!(
        b["hashes"]["own"]["message"]
            .as_str()
            .unwrap()
            .contains("permission denied"),
        "{b}"
    );
    let role = b["whoami"][0].as_str().unwrap();
    assert!(role.starts_with("nr_app_"), "the app connected as {role}");
    // Nothing was written.
    let pool = sqlx::PgPool::connect(&h.db.url).await.unwrap();
    let (evil,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM noderouter_core.users WHERE username = 'evil'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(evil, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_level_tables_land_in_the_apps_schema_out_of_other_apps_reach() {
    let h = Harness::start().await;
    h.deploy_ok(
        "notes",
        &[
            ("manifest.json", &manifest("notes")),
            ("main.py", &guide_starter_main("notes")),
        ],
    )
    .await;
    let (s, b) = h
        .sync("notes", json!({"action": "create", "name": "secret note"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = h.sync("notes", json!({"action": "list"})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["rows"][0]["name"], "secret note");

    // The guide's unqualified CREATE TABLE landed in the app's own schema, not public.
    let schema = common::app_schema(&h, "notes").await;
    let pool = sqlx::PgPool::connect(&h.db.url).await.unwrap();
    let found: Vec<(String, String)> = sqlx::query_as(
        "SELECT t.table_schema::text, n.nspname::text
           FROM information_schema.tables t
           JOIN pg_namespace n ON n.nspname = t.table_schema
          WHERE t.table_name = 'notes_items'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, schema);
    let (owner,): (String,) = sqlx::query_as(
        "SELECT r.rolname::text FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner WHERE n.nspname = $1",
    )
    .bind(&schema)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(owner.starts_with("nr_app_"), "schema owned by {owner}");

    // Another app reaches none of it.
    h.deploy_ok(
        "thief",
        &[("manifest.json", &manifest("thief")), ("main.py", PROBE)],
    )
    .await;
    let q = |t: &str| t.replace("S", &format!("\"{schema}\""));
    let sql = json!({
        "read": q("SELECT name FROM S.notes_items"),
        "write": q("INSERT INTO S.notes_items (name) VALUES ('planted')"),
        "drop": q("DROP TABLE S.notes_items"),
        "unqualified": "SELECT name FROM notes_items",
        "public": "CREATE TABLE public.thief_stash (x int)",
        "create_in_other": q("CREATE TABLE S.thief_items (x int)"),
    });
    let (s, b) = h.sync("thief", json!({"sql": sql})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    for name in sql.as_object().unwrap().keys() {
        assert!(
            b[name]["own"].get("error").is_some() && b[name]["injected"].get("error").is_some(),
            "{name} succeeded: {b}"
        );
    }
    let (s, b) = h.sync("notes", json!({"action": "list"})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["rows"].as_array().unwrap().len(), 1, "{b}");
    // The thief's own schema works for it.
    let (s, b) = h
        .sync(
            "thief",
            json!({"sql": {"mine": "CREATE TABLE IF NOT EXISTS thief_items (x int)"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(b["mine"]["own"].get("ok").is_some(), "{b}");
}

/// The author guide's `_run_report`: progress written straight to the job's row at
/// milestones. It records the row counts of its own writes and waits for the test.
const REPORTER: &str = r#"
import os, time, psycopg2

def execute(data, conn=None):
    job_id = data.get("_job_id", "")
    dsn = os.getenv("DATABASE_URL", "")
    counts = []
    for p in (10, 50):
        with psycopg2.connect(dsn) as c:
            with c.cursor() as cur:
                cur.execute(
                    "UPDATE noderouter_core.job_queue "
                    "SET progress = %s, updated_at = NOW() WHERE id = %s",
                    (p, job_id),
                )
                counts.append(cur.rowcount)
            c.commit()
    time.sleep(float(data.get("hold", 0)))
    return {"message": "done", "counts": counts}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_writes_progress_of_its_own_jobs_and_no_other_apps() {
    let h = Harness::start().await;
    h.deploy_ok(
        "reporter",
        &[
            ("manifest.json", &manifest("reporter")),
            ("main.py", REPORTER),
        ],
    )
    .await;
    h.deploy_ok(
        "forger",
        &[("manifest.json", &manifest("forger")), ("main.py", PROBE)],
    )
    .await;
    let nats = h.nats_client().await;
    let mut progress = nats.subscribe("job.progress.reporter.>").await.unwrap();
    h.nats.subscribed(&nats, "job.progress.reporter.>").await;
    let (s, sub) = h.submit("reporter", json!({"hold": 3})).await;
    assert!(s.is_success(), "{sub}");
    let id = sub["job_id"].as_str().unwrap().to_owned();

    // The guide's own-job UPDATE reaches the row while the job runs.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let job = h.job(&id).await;
        if job["status"] == "running" && job["progress"] == 50 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "progress never reached 50: {job}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Another app cannot touch it: not its status or result, not its progress.
    let sql = json!({
        "forge_result": "UPDATE noderouter_core.job_queue SET status = 'completed', result = '{\"forged\": true}' WHERE id = %s",
        "forge_progress": "UPDATE noderouter_core.job_queue SET progress = 77, updated_at = NOW() WHERE id = %s",
        "see": "SELECT id FROM noderouter_core.job_queue WHERE id = %s",
        // Announcing progress as the platform's trigger did before its channel was secret.
        "announce": "SELECT pg_notify('nr_job_progress', %s)",
        "channel": "SELECT channel FROM noderouter_core.job_progress_channel",
    });
    let args = json!({
        "forge_result": [id],
        "forge_progress": [id],
        "see": [id],
        "announce": [format!("{id} 93")],
        "channel": [],
    });
    let (s, b) = h.sync("forger", json!({"sql": sql, "args": args})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    for via in ["injected", "own"] {
        assert!(
            b["forge_result"][via]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("permission denied"),
            "{b}"
        );
        assert_eq!(b["forge_progress"][via]["ok"], 0, "{b}");
        assert_eq!(b["see"][via]["ok"], 0, "{b}");
        assert!(
            b["channel"][via]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("permission denied"),
            "{b}"
        );
    }

    let job = h
        .wait_job(&id, |j| {
            matches!(j["status"].as_str(), Some("completed" | "failed"))
        })
        .await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["result"]["counts"], json!([1, 1]), "{job}");
    assert!(job["result"].get("forged").is_none(), "{job}");
    assert_eq!(job["progress"], 100, "{job}");
    // What the submitter was told: the job's own 10 and 50 (and its end), never the 93
    // the other app announced.
    let mut told = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(1), progress.next()).await {
        let ev: Envelope<JobProgress> = decode(&m.payload).unwrap();
        told.push(ev.data.progress);
    }
    assert!(told.contains(&50), "{told:?}");
    assert!(!told.contains(&93), "{told:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platform_tells_a_password_less_postgres_from_one_that_checks() {
    use sqlx::Connection as _;
    let h = Harness::start().await;
    h.deploy_ok(
        "probe",
        &[("manifest.json", &manifest("probe")), ("main.py", PROBE)],
    )
    .await;
    // Ground truth: log in as the app's role with a wrong password.
    let pool = sqlx::PgPool::connect(&h.db.url).await.unwrap();
    let (role,): (String,) = sqlx::query_as(
        "SELECT db_role FROM noderouter_core.app_identities WHERE app_name = 'probe'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let rest = &h.db.url[h.db.url.rfind('@').unwrap() + 1..];
    let wrong = format!("postgres://{role}:wrong-password@{rest}");
    let lets_in = sqlx::PgConnection::connect(&wrong).await.is_ok();
    let detected = nr_infra::appid::postgres_trusts_anyone(&h.db.url)
        .await
        .unwrap();
    assert_eq!(
        detected,
        lets_in,
        "the server {} a wrong password, the detector says trust = {detected}",
        if lets_in { "accepts" } else { "refuses" }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_apps_data_stays_and_its_next_deploy_finds_it() {
    let h = Harness::start().await;
    let files = [
        ("manifest.json", manifest("keeper")),
        ("main.py", guide_starter_main("keeper")),
    ];
    let refs: Vec<(&str, &str)> = files.iter().map(|(a, b)| (*a, b.as_str())).collect();
    h.deploy_ok("keeper", &refs).await;
    let (s, b) = h
        .sync("keeper", json!({"action": "create", "name": "kept"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let res = h
        .http
        .delete(format!("{}/admin/api/apps/keeper", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let schema = common::app_schema(&h, "keeper").await;
    let pool = sqlx::PgPool::connect(&h.db.url).await.unwrap();
    let (n,): (i64,) = sqlx::query_as(&format!("SELECT count(*) FROM \"{schema}\".keeper_items"))
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
    // Deployed again, the app is the same identity and reads what it wrote.
    h.deploy_ok("keeper", &refs).await;
    let (s, b) = h.sync("keeper", json!({"action": "list"})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["rows"][0]["name"], "kept", "{b}");
}

/// Locks its own job's row (the progress grant allows it) on a connection of its own,
/// and keeps the transaction open after `execute` returns, from a thread that outlives
/// the call.
const LOCKER: &str = r#"
import os, threading, time, psycopg2

_held = []

def execute(data, conn=None):
    c = psycopg2.connect(os.environ["DATABASE_URL"])
    cur = c.cursor()
    cur.execute(
        "UPDATE noderouter_core.job_queue SET progress = 1, updated_at = NOW() WHERE id = %s",
        (data["_job_id"],),
    )
    _held.append((c, cur))
    threading.Thread(target=time.sleep, args=(120,), daemon=True).start()
    return {"locked": cur.rowcount}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_holding_its_own_job_row_locked_stalls_no_other_apps_jobs() {
    let h = Harness::start().await;
    h.deploy_ok(
        "locker",
        &[("manifest.json", &manifest("locker")), ("main.py", LOCKER)],
    )
    .await;
    h.deploy_ok(
        "bystander",
        &[
            ("manifest.json", &manifest("bystander")),
            (
                "main.py",
                "def execute(data, conn=None):\n    return {'ok': True}\n",
            ),
        ],
    )
    .await;
    let (s, locked) = h.submit("locker", json!({})).await;
    assert!(s.is_success(), "{locked}");
    // Its row is locked by the time the runner records its outcome; give it that time.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let mut ids = Vec::new();
    for i in 0..5 {
        let (s, b) = h.submit("bystander", json!({ "n": i })).await;
        assert!(s.is_success(), "{b}");
        ids.push(b["job_id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        let job = h
            .wait_job(id, |j| {
                matches!(j["status"].as_str(), Some("completed" | "failed"))
            })
            .await;
        assert_eq!(job["status"], "completed", "{job}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "other apps' jobs waited {:?} behind the locked row",
        started.elapsed()
    );
}

/// Opens `data["n"]` connections with its own `DATABASE_URL` and holds them all.
const GREEDY: &str = r#"
import os, psycopg2

def execute(data, conn=None):
    held, error = [], None
    try:
        for _ in range(data["n"]):
            held.append(psycopg2.connect(os.environ["DATABASE_URL"]))
    except psycopg2.OperationalError as exc:
        error = str(exc).strip()
    for c in held:
        c.close()
    return {"held": len(held), "error": error}
"#;

/// Postgres serves so many connections in all (100 by default); an app that opened
/// them all would leave none to the platform and the other apps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_holds_no_more_postgres_connections_than_its_share() {
    let h = Harness::start_with(&["--app-db-connections", "6"]).await;
    h.deploy_ok(
        "greedy",
        &[("manifest.json", &manifest("greedy")), ("main.py", GREEDY)],
    )
    .await;
    h.deploy_ok(
        "neighbour",
        &[
            ("manifest.json", &manifest("neighbour")),
            ("main.py", &guide_starter_main("neighbour")),
        ],
    )
    .await;
    let (s, b) = h.sync("greedy", json!({"n": 20})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // Its worker holds one already (its `execute` takes `conn`).
    assert!(b["held"].as_u64().unwrap() < 6, "{b}");
    assert!(
        b["error"]
            .as_str()
            .unwrap_or_default()
            .contains("too many connections for role"),
        "{b}"
    );
    let (s, b) = h
        .sync("neighbour", json!({"action": "create", "name": "n1"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(b["id"].as_i64().is_some(), "{b}");
    // The next call has its connections again.
    let (s, b) = h.sync("greedy", json!({"n": 3})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["held"], 3, "{b}");
}

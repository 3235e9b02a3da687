//! Hostile apps against the platform's locks: an app holding every lock it can take in
//! Postgres (advisory locks are open to every role) stops no other app's first deploy,
//! import or variable change, and cannot lock the platform's tables at all.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::Harness;
use nr_testkit::{app_name, manifest};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Takes the advisory locks named in `data["advisory"]` on a connection of its own and
/// keeps it open in the worker after the call; tries to lock the platform's tables.
const HOLDER: &str = r#"
import os, psycopg2

_held = []

def execute(data, conn=None):
    c = psycopg2.connect(os.environ["DATABASE_URL"])
    c.autocommit = True
    _held.append(c)
    out = {"advisory": {}, "tables": {}}
    with c.cursor() as cur:
        for key in data["advisory"]:
            cur.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (key,))
            out["advisory"][key] = cur.fetchone()[0]
    for table in data["tables"]:
        t = psycopg2.connect(os.environ["DATABASE_URL"])
        try:
            with t.cursor() as cur:
                cur.execute("LOCK TABLE %s IN SHARE MODE" % table)
            out["tables"][table] = "locked"
            _held.append(t)
        except Exception as exc:
            out["tables"][table] = type(exc).__name__
            t.close()
    return out
"#;

const VICTIM: &str = r#"import os

def execute(data, conn=None):
    return {"color": os.environ.get("COLOR")}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_holding_every_lock_it_can_take_stalls_no_other_apps_deploy_or_variables() {
    let h = Harness::start().await;
    let holder = app_name("lockholder");
    let victim = app_name("lockvictim");
    h.deploy_ok(
        &holder,
        &[
            ("manifest.json", &manifest(&holder, "1.0.0", json!({}))),
            ("main.py", HOLDER),
        ],
    )
    .await;
    // The keys the platform once used, and any it might: the allocator of app
    // identities, the victim's import, its variables.
    let advisory = [
        "noderouter:app_identities".to_owned(),
        format!("noderouter:import:{victim}"),
        format!("noderouter:app_env:{victim}"),
    ];
    let tables = [
        "noderouter_core.app_identities",
        "noderouter_core.app_env",
        "noderouter_core.projection_offsets",
    ];
    let (s, held) = h
        .sync(&holder, json!({"advisory": advisory, "tables": tables}))
        .await;
    assert_eq!(s, StatusCode::OK, "{held}");
    for key in &advisory {
        assert_eq!(
            held["advisory"][key], true,
            "the app could not even take {key}: {held}"
        );
    }
    for table in tables {
        assert_eq!(
            held["tables"][table], "InsufficientPrivilege",
            "an app locked {table}: {held}"
        );
    }

    // The victim's first deploy creates its identity and imports it, under locks of
    // the platform's: none of them is one the holder has.
    let zip = nr_testkit::zip_files(&[
        ("manifest.json", &manifest(&victim, "1.0.0", json!({}))),
        ("main.py", VICTIM),
    ]);
    let (s, b) = tokio::time::timeout(
        Duration::from_secs(60),
        h.deploy(&format!("{victim}.zip"), zip),
    )
    .await
    .expect("the deploy stalled behind a lock another app holds");
    assert_eq!(s, StatusCode::OK, "{b}");

    // A change of its variables commits and reaches it.
    let put = h
        .http
        .put(format!("{}/admin/api/apps/{victim}/env", h.url))
        .json(&json!({"name": "COLOR", "value": "teal"}))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("the change of a variable stalled behind a lock another app holds");
    assert_eq!(put.status(), StatusCode::OK);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (s, b): (StatusCode, Value) = h.sync(&victim, json!({})).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        if b["color"] == "teal" {
            break;
        }
        assert!(Instant::now() < deadline, "the victim still sees {b}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts a thread (once per worker) that, for `data["seconds"]`, takes every advisory
/// lock `pg_locks` shows held by another session, retrying each key it has seen until
/// it holds it, and never lets go.
const COPIER: &str = r#"
import os, threading, time, psycopg2

_started = []

def _i4(v):
    return v - (1 << 32) if v >= (1 << 31) else v

def _copy(seconds):
    c = psycopg2.connect(os.environ["DATABASE_URL"])
    c.autocommit = True
    seen, held = set(), set()
    end = time.time() + seconds
    with c.cursor() as cur:
        while time.time() < end:
            cur.execute("SELECT classid::bigint, objid::bigint, objsubid FROM pg_locks "
                        "WHERE locktype = 'advisory' AND pid <> pg_backend_pid()")
            seen.update(cur.fetchall())
            for key in seen - held:
                hi, lo, sub = key
                if sub == 2:
                    cur.execute("SELECT pg_try_advisory_lock(%s, %s)", (_i4(hi), _i4(lo)))
                else:
                    big = (hi << 32) | lo
                    if big >= (1 << 63):
                        big -= 1 << 64
                    cur.execute("SELECT pg_try_advisory_lock(%s)", (big,))
                if cur.fetchone()[0]:
                    held.add(key)
            time.sleep(0.01)

def execute(data, conn=None):
    if not _started:
        t = threading.Thread(target=_copy, args=(data["seconds"],), daemon=True)
        t.start()
        _started.append(t)
    return {"started": True}
"#;

const VERSIONED: &str = r#"import os

def execute(data, conn=None):
    return {"version": os.environ.get("NR_APP_VERSION")}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_copying_every_advisory_lock_it_sees_stalls_no_other_apps_imports() {
    let h = Harness::start().await;
    let copier = app_name("lockcopier");
    let victim = app_name("lockcopied");
    h.deploy_ok(
        &copier,
        &[
            ("manifest.json", &manifest(&copier, "1.0.0", json!({}))),
            ("main.py", COPIER),
        ],
    )
    .await;
    // Every worker of the copier watches (two calls land on the two workers).
    for _ in 0..2 {
        let (s, b) = h.sync(&copier, json!({"seconds": 120})).await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    // The victim imports three times per version (deploy's check, then its load); the
    // second version's imports must not wait behind anything the copier saw.
    for version in ["1.0.0", "2.0.0"] {
        let zip = nr_testkit::zip_files(&[
            ("manifest.json", &manifest(&victim, version, json!({}))),
            ("main.py", VERSIONED),
        ]);
        let (s, b) = tokio::time::timeout(
            Duration::from_secs(60),
            h.deploy(&format!("{victim}.zip"), zip),
        )
        .await
        .unwrap_or_else(|_| panic!("deploying {version} stalled behind a lock another app copied"));
        assert_eq!(s, StatusCode::OK, "{b}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (s, b) = h.sync(&victim, json!({})).await;
            if s == StatusCode::OK && b["version"] == version {
                break;
            }
            assert!(Instant::now() < deadline, "{victim} still answers {s} {b}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Records each import of it (its module code) as a span in its own table.
const SPANS: &str = r#"import os, time, uuid, psycopg2

_me = uuid.uuid4().hex
_c = psycopg2.connect(os.environ["DATABASE_URL"])
_c.autocommit = True
with _c.cursor() as cur:
    cur.execute("CREATE TABLE IF NOT EXISTS import_spans (id text PRIMARY KEY, started float8 NOT NULL, ended float8)")
    cur.execute("INSERT INTO import_spans VALUES (%s, extract(epoch from clock_timestamp()), NULL)", (_me,))
    time.sleep(0.8)
    cur.execute("UPDATE import_spans SET ended = extract(epoch from clock_timestamp()) WHERE id = %s", (_me,))
_c.close()

def execute(data, conn=None):
    with conn.cursor() as cur:
        cur.execute("SELECT started, ended FROM import_spans ORDER BY started")
        return {"spans": cur.fetchall()}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_of_one_app_never_overlap() {
    let h = Harness::start_with(&["--runners", "2"]).await;
    let app = app_name("spans");
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
            ("main.py", SPANS),
        ],
    )
    .await;
    // Deploy's check and both runners' loads: three imports, each 0.8 s long.
    let deadline = Instant::now() + Duration::from_secs(60);
    let spans = loop {
        let (s, b) = h.sync(&app, json!({})).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let spans: Vec<(f64, Option<f64>)> = serde_json::from_value(b["spans"].clone()).unwrap();
        if spans.len() >= 3 && spans.iter().all(|(_, end)| end.is_some()) {
            break spans;
        }
        assert!(Instant::now() < deadline, "imports so far: {spans:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for pair in spans.windows(2) {
        let (_, Some(ended)) = pair[0] else {
            unreachable!()
        };
        assert!(
            pair[1].0 >= ended,
            "two imports of {app} overlapped: {spans:?}"
        );
    }
}

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

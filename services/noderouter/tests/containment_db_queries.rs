//! An app's queries end with its call: a worker killed after its time limit leaves no
//! query running on in Postgres (the app's role checks for a vanished client).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::Harness;
use serde_json::json;

/// Starts a 60-second query on the injected connection and on three of its own.
const SLOW: &str = r#"
import os, threading, psycopg2

def _sleep(conn):
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_sleep(60)")
    except Exception:
        pass

def execute(data, conn=None):
    conns = [conn] + [psycopg2.connect(os.environ["DATABASE_URL"]) for _ in range(3)]
    threads = [threading.Thread(target=_sleep, args=(c,), daemon=True) for c in conns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"done": True}
"#;

async fn running_queries(pool: &sqlx::PgPool, role: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND query LIKE '%pg_sleep(60)%' AND state = 'active'",
    )
    .bind(role)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_calls_queries_stop_with_it() {
    let h = Harness::start().await;
    h.deploy_ok(
        "sleeper",
        &[
            (
                "manifest.json",
                r#"{"app_name":"sleeper","version":"1.0.0","timeout_s":2}"#,
            ),
            ("main.py", SLOW),
        ],
    )
    .await;
    let pool = sqlx::PgPool::connect(&h.db.url).await.unwrap();
    let (role,): (String,) = sqlx::query_as(
        "SELECT db_role FROM noderouter_core.app_identities WHERE app_name = 'sleeper'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let (s, b) = h.sync("sleeper", json!({})).await;
    assert_eq!(b["code"], "timeout", "{s} {b}");
    // The queries were running when the call was cut off...
    let ended = Instant::now();
    // ...and stop within a few seconds of it, not after their 60.
    let mut left = running_queries(&pool, &role).await;
    while left > 0 && ended.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        left = running_queries(&pool, &role).await;
    }
    assert_eq!(
        left,
        0,
        "queries still running {:?} after the call ended",
        ended.elapsed()
    );
}

//! One app's job output cannot cost another app's jobs: outcomes are recorded in
//! batches that mix apps, and what an app returns or prints goes into Postgres.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Harness;
use nr_testkit::{app_name, manifest};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn is_final(job: &Value) -> bool {
    matches!(
        job["status"].as_str(),
        Some("completed" | "failed" | "cancelled")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_holding_nul_is_kept_and_other_apps_jobs_run_once() {
    let h = Harness::start().await;
    // Returns, prints and logs U+0000, which Postgres text and jsonb refuse.
    let nul = app_name("nul");
    h.deploy_ok(
        &nul,
        &[
            ("manifest.json", &manifest(&nul, "1.0.0", json!({}))),
            (
                "main.py",
                "def execute(data, conn=None):\n    print('before\\x00after')\n    return {'x': 'a\\x00b', 'k\\x00': data['n']}\n",
            ),
        ],
    )
    .await;
    // Counts its runs in its own table, made at import as the guide does.
    let counted = app_name("counted");
    let table = format!("{counted}_runs");
    let main = format!(
        "import os, psycopg2\n\
         with psycopg2.connect(os.environ['DATABASE_URL']) as _c:\n    \
         _c.cursor().execute('CREATE TABLE IF NOT EXISTS {table} (n int)')\n\
         def execute(data, conn=None):\n    with conn.cursor() as cur:\n        \
         cur.execute('INSERT INTO {table} (n) VALUES (%s)', (data['n'],))\n    \
         conn.commit()\n    return {{'n': data['n']}}\n"
    );
    h.deploy_ok(
        &counted,
        &[
            ("manifest.json", &manifest(&counted, "1.0.0", json!({}))),
            ("main.py", &main),
        ],
    )
    .await;

    const EACH: i64 = 20;
    let submits = (0..EACH).flat_map(|n| {
        [nul.clone(), counted.clone()].map(|app| {
            let h = &h;
            async move {
                let (s, b) = h.submit(&app, json!({"n": n})).await;
                assert_eq!(s, StatusCode::ACCEPTED, "{b}");
                (app, b["job_id"].as_str().unwrap().to_owned())
            }
        })
    });
    let jobs = futures::future::join_all(submits).await;
    for (app, id) in &jobs {
        let job = h.wait_job(id, is_final).await;
        assert_eq!(job["status"], "completed", "{app}: {job}");
        if app == &nul {
            assert_eq!(job["result"]["x"], "a\u{FFFD}b", "{job}");
            assert!(job["result"].get("k\u{FFFD}").is_some(), "{job}");
        }
    }
    // Every job of the other app ran exactly once: none was run again because a batch
    // that also held the first app's outcomes failed.
    let schema = common::app_schema(&h, &counted).await;
    let pool = sqlx::PgPool::connect(&h.db.url).await.unwrap();
    let (runs, distinct): (i64, i64) = sqlx::query_as(&format!(
        "SELECT count(*), count(DISTINCT n) FROM \"{schema}\".{table}"
    ))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((runs, distinct), (EACH, EACH));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_error_message_is_stored_cut() {
    let h = Harness::start().await;
    let app = app_name("raiser");
    h.deploy_ok(
        &app,
        &[
            (
                "manifest.json",
                &manifest(&app, "1.0.0", json!({"job_retry": {"attempts": 1}})),
            ),
            (
                "main.py",
                "def execute(data, conn=None):\n    raise ValueError('x' * 2_000_000)\n",
            ),
        ],
    )
    .await;
    let (s, b) = h.submit(&app, json!({})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let job = h.wait_job(b["job_id"].as_str().unwrap(), is_final).await;
    assert_eq!(job["status"], "failed", "{job}");
    let error = job["error_message"].as_str().unwrap();
    assert!(error.len() < 20 * 1024, "{} bytes stored", error.len());
    assert!(
        error.contains("truncated"),
        "{}",
        &error[error.len() - 200..]
    );
}

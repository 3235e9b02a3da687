//! Helpers of the schedule tests: an app with schedules, and the scheduler's rows.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::Harness;

pub const MAIN: &str = "def execute(data, conn=None):\n    return {\"ok\": True, \"got\": data}\n";

pub fn manifest(app: &str, schedules: Value) -> String {
    json!({
        "app_name": app,
        "version": "1.0.0",
        "actions": [{"name": "report", "display_name": "Report"}],
        "schedules": schedules,
    })
    .to_string()
}

pub async fn pool(h: &Harness) -> sqlx::PgPool {
    sqlx::PgPool::connect(&h.db.url).await.unwrap()
}

/// Waits (bounded) until the scheduler has seen every schedule of `app`.
pub async fn wait_seen(db: &sqlx::PgPool, app: &str, n: i64) {
    for _ in 0..200 {
        let (c,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM noderouter_core.schedules WHERE app_name = $1")
                .bind(app)
                .fetch_one(db)
                .await
                .unwrap();
        if c >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the scheduler never saw the schedules of {app}");
}

/// Moves a schedule's decided-until mark back by `minutes`, as if no scheduler had run
/// since; returns the instant it was done.
pub async fn rewind(db: &sqlx::PgPool, app: &str, name: &str, minutes: i32) -> DateTime<Utc> {
    let now = Utc::now();
    sqlx::query(
        "UPDATE noderouter_core.schedules SET checked_until = NOW() - make_interval(mins => $3) \
         WHERE app_name = $1 AND name = $2",
    )
    .bind(app)
    .bind(name)
    .bind(minutes)
    .execute(db)
    .await
    .unwrap();
    now
}

/// Waits (bounded) until the ticks up to `at` have been decided.
pub async fn wait_decided(db: &sqlx::PgPool, app: &str, name: &str, at: DateTime<Utc>) {
    for _ in 0..200 {
        let (done,): (bool,) = sqlx::query_as(
            "SELECT checked_until >= to_timestamp($3) FROM noderouter_core.schedules \
             WHERE app_name = $1 AND name = $2",
        )
        .bind(app)
        .bind(name)
        .bind(at.timestamp() as f64 + 1.0)
        .fetch_one(db)
        .await
        .unwrap();
        if done {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the ticks of {app}/{name} were never decided");
}

/// (tick epoch seconds, status, reason) of a schedule, oldest first.
pub async fn ticks(db: &sqlx::PgPool, app: &str, name: &str) -> Vec<(f64, String, Option<String>)> {
    sqlx::query_as(
        "SELECT EXTRACT(EPOCH FROM tick)::float8, status, reason FROM noderouter_core.schedule_ticks \
         WHERE app_name = $1 AND schedule = $2 ORDER BY tick",
    )
    .bind(app)
    .bind(name)
    .fetch_all(db)
    .await
    .unwrap()
}

//! Ticks missed while no scheduler ran, under the default `overlap: skip`: with
//! `catch_up: last` the tick due now runs and no missed one takes its place; with
//! `catch_up: all` every missed tick runs, one after another.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::schedules::{manifest, pool, rewind, ticks, wait_decided, wait_seen, MAIN};
use common::Harness;
use serde_json::json;

/// Fast polls; a tick more than 90 s old when decided was missed, so at least one tick
/// of a schedule firing every minute is always on time.
const SCHEDULER: &[&str] = &["--scheduler-poll-s", "0.2", "--scheduler-grace-s", "90"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_ticks_never_take_the_place_of_the_tick_due_now_and_all_of_them_run_in_turn() {
    let h = Harness::start_with(SCHEDULER).await;
    let m = manifest(
        "skipper",
        json!([
            {"name": "last", "cron": "* * * * *", "action": "report", "catch_up": "last"},
            {"name": "all", "cron": "* * * * *", "action": "report", "catch_up": "all"}
        ]),
    );
    h.deploy_ok("skipper", &[("manifest.json", &m), ("main.py", MAIN)])
        .await;
    let db = pool(&h).await;
    wait_seen(&db, "skipper", 2).await;
    let mut at = chrono::Utc::now();
    for name in ["last", "all"] {
        at = rewind(&db, "skipper", name, 5).await;
    }
    for name in ["last", "all"] {
        wait_decided(&db, "skipper", name, at).await;
    }
    let surely_late = at.timestamp() as f64 - 91.0;
    let on_time = at.timestamp() as f64 - 89.0;

    let last = ticks(&db, "skipper", "last").await;
    let late: Vec<_> = last.iter().filter(|t| t.0 < surely_late).collect();
    assert!(late.len() >= 3, "{last:?}");
    assert!(
        late.iter().all(|t| t.1 == "missed"),
        "a missed tick ran: {last:?}"
    );
    assert!(
        last.iter().any(|t| t.0 > on_time && t.1 == "submitted"),
        "the tick due now did not run: {last:?}"
    );

    // Every missed tick of `all` runs in turn: none is skipped, and the queue drains
    // (a tick due on time still follows `overlap`).
    let missed = |rows: Vec<(f64, String, Option<String>)>| -> Vec<(f64, String, Option<String>)> {
        rows.into_iter().filter(|t| t.0 < surely_late).collect()
    };
    let mut all = missed(ticks(&db, "skipper", "all").await);
    assert!(all.len() >= 3, "{all:?}");
    for _ in 0..300 {
        if all.iter().all(|t| t.1 == "submitted") {
            break;
        }
        assert!(all.iter().all(|t| t.1 != "skipped"), "{all:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        all = missed(ticks(&db, "skipper", "all").await);
    }
    assert!(all.iter().all(|t| t.1 == "submitted"), "{all:?}");
    // A missed tick that waited its turn still tells the app it ran late.
    let mut lates: Vec<bool> = Vec::new();
    for _ in 0..100 {
        lates = sqlx::query_scalar(
            "SELECT (payload #>> '{_schedule,late}')::bool FROM noderouter_core.job_queue \
             WHERE payload #>> '{_schedule,name}' = 'all' \
               AND (payload #>> '{_schedule,tick}')::timestamptz < to_timestamp($1)",
        )
        .bind(surely_late)
        .fetch_all(&db)
        .await
        .unwrap();
        if lates.len() >= all.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        lates.len() >= all.len() && lates.iter().all(|l| *l),
        "{lates:?}"
    );
}

/// `overlap: queue` keeps at most ten ticks waiting; later ones are skipped, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_of_ticks_is_bounded_and_a_tick_past_it_is_skipped_with_the_reason() {
    // A day of grace: every tick of the rewound half hour is on time.
    let h =
        Harness::start_with(&["--scheduler-poll-s", "0.2", "--scheduler-grace-s", "86400"]).await;
    let m = manifest(
        "queuer",
        json!([{"name": "q", "cron": "* * * * *", "action": "report", "overlap": "queue"}]),
    );
    h.deploy_ok("queuer", &[("manifest.json", &m), ("main.py", MAIN)])
        .await;
    let db = pool(&h).await;
    wait_seen(&db, "queuer", 1).await;
    let at = rewind(&db, "queuer", "q", 30).await;
    wait_decided(&db, "queuer", "q", at).await;
    // The ticks of the rewound half hour, all decided by one pass.
    let rows: Vec<_> = ticks(&db, "queuer", "q")
        .await
        .into_iter()
        .filter(|t| t.0 <= at.timestamp() as f64)
        .collect();
    assert!(rows.len() >= 30, "{rows:?}");
    // Ten waited (some have run since, after the run before them) ...
    let waited = rows
        .iter()
        .filter(|t| {
            t.2.as_deref().is_some_and(|r| {
                r.contains("(overlap: queue)") || r == "ran after the previous run finished"
            }) && t.1 != "skipped"
        })
        .count();
    assert_eq!(waited, 10, "{rows:?}");
    // ... and those past them were skipped, saying why (before: every one waited).
    let skipped: Vec<_> = rows.iter().filter(|t| t.1 == "skipped").collect();
    assert!(skipped.len() >= 18, "{rows:?}");
    assert!(
        skipped.iter().all(|t| t
            .2
            .as_deref()
            .is_some_and(|r| r.contains("overlap: queue keeps at most 10"))),
        "{skipped:?}"
    );
}

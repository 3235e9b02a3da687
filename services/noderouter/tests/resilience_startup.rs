//! Fail fast at the start: a taken HTTP address refused naming the setting and the
//! address, a start refused late leaving no app process behind, and settings out of range
//! refused by name before anything starts. Real NATS, Postgres and workers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::resilience::deploy_version;
use common::Harness;
use noderouter::Platform;
use nr_testkit::{app_name, TestDb, TestNats};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_http_address_is_refused_naming_the_setting_and_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let nats = TestNats::start().await.unwrap();
    let db = TestDb::create().await.unwrap();
    let dir = common::traversable_tempdir();
    let mut config = common::config_for(&nats, &db, dir.path(), &[]);
    config.gateway.http_addr = addr.clone();
    let Err(e) = Platform::start(config).await else {
        panic!("the platform started on a taken address");
    };
    let text = format!("{e:#}");
    assert!(
        text.contains("NR_HTTP_ADDR") && text.contains(&addr),
        "{text}"
    );
}

/// Waits until `app`'s uid has no process left (at most `limit`); returns what is left.
async fn app_processes_after(uid: u32, limit: Duration) -> Vec<u64> {
    let deadline = Instant::now() + limit;
    loop {
        let left = common::procs::of_uid(uid);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A start refused after the runners loaded the deployed apps (here: the HTTP address is
/// taken, which only the gateway, built last, finds out) stops those apps' processes,
/// rather than leave them running for the next start to sweep.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_refused_late_leaves_no_app_process_behind() {
    let base = common::app_uid_base().to_string();
    let extra = ["--app-uid-base", base.as_str(), "--app-uid-count", "1000"];
    let mut h = Harness::start_with(&extra).await;
    let app = app_name("latefail");
    let (s, b) = deploy_version(&h, &app, "1.0.0").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = h.sync(&app, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let pool = sqlx::PgPool::connect(&h.db.url).await.unwrap();
    let (uid,): (i64,) =
        sqlx::query_as("SELECT uid FROM noderouter_core.app_identities WHERE app_name = $1")
            .bind(&app)
            .fetch_one(&pool)
            .await
            .unwrap();
    pool.close().await;
    let uid = uid as u32;
    assert!(
        !common::procs::of_uid(uid).is_empty(),
        "the app runs no process while it serves"
    );
    h.platform.take().unwrap().shutdown().await.unwrap();
    let left = app_processes_after(uid, Duration::from_secs(10)).await;
    assert!(left.is_empty(), "a clean stop left {left:?}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = common::config_for(&h.nats, &h.db, h.dir.path(), &extra);
    config.gateway.http_addr = taken.local_addr().unwrap().to_string();
    let Err(e) = Platform::start(config).await else {
        panic!("the platform started on a taken address");
    };
    assert!(format!("{e:#}").contains("NR_HTTP_ADDR"), "{e:#}");
    let left = app_processes_after(uid, Duration::from_secs(5)).await;
    assert!(
        left.is_empty(),
        "the refused start left the app's processes {left:?} running"
    );
}

/// Settings no service can run with are refused, each by name, before anything starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_out_of_range_are_refused_by_name_before_anything_starts() {
    let nats = TestNats::start().await.unwrap();
    let db = TestDb::create().await.unwrap();
    let dir = common::traversable_tempdir();
    for (flags, named) in [
        (
            &["--sync-timeout-s", "0"][..],
            "NR_SYNC_TIMEOUT_S must be a number of seconds from 1 to 86400 (got 0)",
        ),
        (
            &["--deploy-timeout-s=-1"][..],
            "NR_DEPLOY_TIMEOUT_S must be a number of seconds from 1 to 86400 (got -1)",
        ),
        (
            &["--job-lease-s", "NaN"][..],
            "NR_JOB_LEASE_S must be a number of seconds from 1 to 3600 (got NaN)",
        ),
        (
            &["--job-timeout-s", "inf"][..],
            "NR_JOB_TIMEOUT_S must be a number of seconds from 1 to 86400 (got inf)",
        ),
        (
            &["--job-max-attempts", "0"][..],
            "NR_JOB_MAX_ATTEMPTS must be at least 1 (got 0)",
        ),
        (
            &["--job-result-bytes", "0"][..],
            "NR_JOB_RESULT_BYTES must be from 1024 to 66060288 (got 0)",
        ),
        // A pool of none made sqlx panic at start.
        (
            &["--db-pool", "0"][..],
            "NR_DB_POOL must be at least 1 (got 0)",
        ),
        (
            &["--jwt-leeway-s", "121"][..],
            "NR_JWT_LEEWAY_S must be at most 120 (got 121)",
        ),
        (
            &["--session-ttl-s", "0"][..],
            "NR_SESSION_TTL_S must be at least 60 (got 0)",
        ),
        (
            &["--max-body-bytes", "0"][..],
            "NR_MAX_BODY_BYTES must be at least 1 (got 0)",
        ),
        (
            &["--app-uid-base", "1000000", "--app-uid-count", "0"][..],
            "NR_APP_UID_COUNT must be at least 1 (got 0)",
        ),
    ] {
        let config = common::config_for(&nats, &db, dir.path(), flags);
        let Err(e) = Platform::start(config).await else {
            panic!("the platform started with {flags:?}");
        };
        assert!(format!("{e:#}").contains(named), "{flags:?}: {e:#}");
    }
    // A short session key is refused before the runner starts (it used to be found
    // only by the gateway, after the apps' processes had started).
    let mut config = common::config_for(&nats, &db, dir.path(), &[]);
    config.gateway.auth.jwt_secret = Some("short".into());
    let Err(e) = Platform::start(config).await else {
        panic!("the platform started with a 5-character NR_JWT_SECRET");
    };
    assert!(
        format!("{e:#}").contains("NR_JWT_SECRET must be at least 16 characters"),
        "{e:#}"
    );
    assert!(
        !dir.path().join("runner").exists(),
        "the runner started before the settings were checked"
    );
}

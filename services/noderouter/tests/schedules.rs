//! Manifest schedules against the real platform: deploy's refusals, catch-up of ticks
//! missed while no scheduler ran, pause, two schedulers with one killed (each tick
//! once), and the cron rules across daylight-saving changes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::schedules::{manifest, pool, rewind, ticks, wait_decided, wait_seen, MAIN};
use common::{config_for, Harness};
use noderouter::Platform;
use nr_infra::cron::CronSpec;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Fast polls; a tick more than 30 s old when decided was missed.
const SCHEDULER: &[&str] = &["--scheduler-poll-s", "0.2", "--scheduler-grace-s", "30"];

#[tokio::test]
async fn deploy_refuses_bad_schedules_and_routes_naming_each_field() {
    let h = Harness::start_with(SCHEDULER).await;
    let m = json!({
        "app_name": "badsched",
        "version": "1.0.0",
        "actions": [{"name": "report", "display_name": "Report"}],
        "schedules": [
            {"name": "a", "cron": "0 0 2 * * *"},
            {"name": "b", "cron": "0 2 * * *", "timezone": "Mars/Olympus"},
            {"name": "c", "cron": "0 2 * * *", "action": "nope"},
            {"name": "d", "cron": "0 2 * * *", "overlap": "sometimes", "catch_up": "maybe"},
            {"name": "d", "cron": "61 2 * * *"},
            {"name": "e", "cron": "0 0 30 2 *"}
        ],
        "routes": [
            {"method": "GET", "path": "/items/:id", "action": "report"},
            {"method": "HEAD", "path": "/items/:key", "action": "report"},
            {"method": "POST", "path": "items", "action": "report"},
            {"method": "TRACE", "path": "/x", "action": "report"},
            {"method": "POST", "path": "/hook", "action": "ghost",
             "webhook": {"secret_name": "lower", "algorithm": "md5"}, "permission": "a:b"},
            {"method": "GET", "path": "/up", "action": "report", "upload": {"max_bytes": 10}},
            {"method": "POST", "path": "/hookup", "action": "report",
             "webhook": {"secret_name": "HOOK_SECRET"}, "upload": {"max_bytes": 1073741824}}
        ]
    })
    .to_string();
    let (status, body) = h
        .deploy(
            "badsched.zip",
            nr_testkit::zip_files(&[("manifest.json", &m), ("main.py", MAIN)]),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let text = body["details"].to_string();
    for needle in [
        "schedules[0].cron",
        "6 fields",
        "schedules[1].timezone",
        "Mars/Olympus",
        "schedules[2].action \\\"nope\\\" is not declared",
        "schedules[3].overlap",
        "schedules[3].catch_up",
        "schedule \\\"d\\\" is declared twice",
        "schedules[4].cron",
        "schedules[5].cron \\\"0 0 30 2 *\\\" never fires",
        "routes[0] (/items/:id) and routes[1] (/items/:key) both answer HEAD",
        "routes[2].path",
        "routes[3].method",
        "routes[4].action",
        "both permission and webhook",
        "routes[4].webhook.secret_name",
        "routes[4].webhook.algorithm",
        "routes[5].upload needs a POST",
        "routes[6] declares both webhook and upload",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from {text}");
    }
    // Nothing was deployed.
    let r = h
        .http
        .get(format!("{}/admin/api/schedules?app=badsched", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), json!([]));
}

#[tokio::test]
async fn ticks_missed_while_no_scheduler_ran_follow_catch_up_and_pause_records_them() {
    let h = Harness::start_with(SCHEDULER).await;
    let every = |name: &str, catch_up: &str| {
        json!({"name": name, "cron": "* * * * *", "action": "report", "payload": {"k": 1},
               "overlap": "allow", "catch_up": catch_up})
    };
    let m = manifest(
        "catchup",
        json!([
            every("none", "none"),
            every("last", "last"),
            every("all", "all"),
            every("held", "all")
        ]),
    );
    h.deploy_ok("catchup", &[("manifest.json", &m), ("main.py", MAIN)])
        .await;
    let db = pool(&h).await;
    wait_seen(&db, "catchup", 4).await;

    // Pausing is the operators': the list shows it with the next five fire times.
    let (s, b) = common::post(
        &h.http,
        format!("{}/admin/api/schedules/catchup/held/pause", h.url),
        json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["changed"], true, "{b}");
    // Again: nothing changes, and the audit trail holds one pause.
    let (s, b) = common::post(
        &h.http,
        format!("{}/admin/api/schedules/catchup/held/pause", h.url),
        json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        b,
        json!({"app": "catchup", "name": "held", "paused": true, "changed": false})
    );
    let audit: std::collections::HashMap<String, usize> = {
        use futures::TryStreamExt as _;
        async_nats::jetstream::new(h.nats_client().await)
            .get_stream(nr_contracts::subjects::STREAM_SCHEDULES)
            .await
            .unwrap()
            .info_with_subjects("schedule.changed.catchup")
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap()
    };
    assert_eq!(audit.get("schedule.changed.catchup"), Some(&1), "{audit:?}");
    let (s, b) = common::post(
        &h.http,
        format!("{}/admin/api/schedules/catchup/nope/pause", h.url),
        json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");

    let mut at = Utc::now();
    for name in ["none", "last", "all", "held"] {
        at = rewind(&db, "catchup", name, 10).await;
    }
    for name in ["none", "last", "all", "held"] {
        wait_decided(&db, "catchup", name, at).await;
    }
    let surely_late = at.timestamp() as f64 - 31.0;

    let none = ticks(&db, "catchup", "none").await;
    let late: Vec<_> = none.iter().filter(|t| t.0 < surely_late).collect();
    assert!(late.len() >= 9, "{none:?}");
    for t in &late {
        assert_eq!(t.1, "missed", "{none:?}");
        assert!(t.2.as_deref().unwrap().contains("catch_up: none"), "{t:?}");
    }

    let last = ticks(&db, "catchup", "last").await;
    let submitted: Vec<_> = last.iter().filter(|t| t.1 == "submitted").collect();
    let missed: Vec<_> = last.iter().filter(|t| t.1 == "missed").collect();
    assert!((1..=2).contains(&submitted.len()), "{last:?}");
    assert!(missed.len() >= 8, "{last:?}");
    assert!(missed.iter().all(|m| m.0 < submitted[0].0), "{last:?}");
    assert!(missed[0].2.as_deref().unwrap().contains("catch_up: last"));

    let all = ticks(&db, "catchup", "all").await;
    assert!(all.len() >= 10, "{all:?}");
    assert!(all.iter().all(|t| t.1 == "submitted"), "{all:?}");
    // Each run is an ordinary job naming its schedule and tick (queued just after its
    // tick commits).
    for _ in 0..100 {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM noderouter_core.job_queue WHERE payload #>> '{_schedule,name}' = 'all'",
        )
        .fetch_one(&db)
        .await
        .unwrap();
        if n as usize >= all.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let jobs: Vec<(Value, Option<String>)> = sqlx::query_as(
        "SELECT payload, submitted_by FROM noderouter_core.job_queue WHERE payload #>> '{_schedule,name}' = 'all' ORDER BY payload #>> '{_schedule,tick}'",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(jobs.len(), all.len());
    assert_eq!(jobs[0].0["action"], "report");
    assert_eq!(jobs[0].0["k"], 1);
    assert_eq!(jobs[0].0["_schedule"]["late"], true);
    assert_eq!(jobs[0].1.as_deref(), Some("schedule:catchup/all"));
    let first: DateTime<Utc> = jobs[0].0["_schedule"]["tick"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(first.timestamp() as f64, all[0].0);
    // A run completes as any job does.
    let (id,): (uuid::Uuid,) = sqlx::query_as(
        "SELECT id FROM noderouter_core.job_queue WHERE payload #>> '{_schedule,name}' = 'last'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    let job = h
        .wait_job(&id.to_string(), |j| {
            j["status"] != "pending" && j["status"] != "running"
        })
        .await;
    assert_eq!(job["status"], "completed", "{job}");

    let held = ticks(&db, "catchup", "held").await;
    assert!(
        held.len() >= 10 && held.iter().all(|t| t.1 == "paused"),
        "{held:?}"
    );

    let list: Value = h
        .http
        .get(format!("{}/admin/api/schedules?app=catchup", h.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let held_view = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "held")
        .unwrap();
    assert_eq!(held_view["paused"], true, "{held_view}");
    assert_eq!(
        held_view["next"].as_array().unwrap().len(),
        5,
        "{held_view}"
    );
    assert_eq!(held_view["recent"][0]["status"], "paused", "{held_view}");
    let (s, b) = common::post(
        &h.http,
        format!("{}/admin/api/schedules/catchup/held/resume", h.url),
        json!({}),
    )
    .await;
    assert_eq!((s, b["paused"].clone()), (StatusCode::OK, json!(false)));

    // Both changes are in the audit trail, newest first, naming who made them (before,
    // only the row's paused_by told, and only of the last pause).
    let audit = h.get_json("/admin/api/audit?kind=schedules").await;
    let seen: Vec<(String, String, String)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
            (s("action"), s("target"), s("actor"))
        })
        .collect();
    let who = || "admin".to_owned();
    assert_eq!(
        seen,
        [
            ("resumed".into(), "catchup:held".into(), who()),
            ("paused".into(), "catchup:held".into(), who()),
        ],
        "{audit}"
    );
}

#[tokio::test]
async fn two_schedulers_decide_each_tick_once_even_when_one_is_killed() {
    let base = common::app_uid_base().to_string();
    let mut extra: Vec<&str> = SCHEDULER.to_vec();
    extra.extend(["--app-uid-base", &base, "--app-uid-count", "1000"]);
    let mut h = Harness::start_with(&extra).await;
    let m = manifest(
        "twice",
        json!([{"name": "tick", "cron": "* * * * *", "overlap": "allow", "catch_up": "all"}]),
    );
    h.deploy_ok("twice", &[("manifest.json", &m), ("main.py", MAIN)])
        .await;
    let db = pool(&h).await;
    wait_seen(&db, "twice", 1).await;

    // A second gateway (no runner of its own) on the same database and NATS.
    let dir2 = common::traversable_tempdir();
    let mut extra2 = extra.clone();
    extra2.extend(["--runners", "0"]);
    let other = Platform::start(config_for(&h.nats, &h.db, dir2.path(), &extra2))
        .await
        .expect("a second platform starts");

    // Both race over 30 missed minutes; then the first is killed and the second alone
    // goes over 60 (the 30 decided already among them).
    rewind(&db, "twice", "tick", 30).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    h.platform.take().unwrap().shutdown().await.unwrap();
    let at = rewind(&db, "twice", "tick", 60).await;
    wait_decided(&db, "twice", "tick", at).await;

    let rows = ticks(&db, "twice", "tick").await;
    assert!(rows.len() >= 60, "{}", rows.len());
    let mut seen = std::collections::HashSet::new();
    for r in &rows {
        assert!(seen.insert(r.0 as i64), "tick {} twice", r.0);
        assert_eq!(r.1, "submitted", "{r:?}");
    }
    // One job per tick, no more (jobs are queued just after their ticks commit).
    let mut counts = (0i64, 0i64);
    for _ in 0..100 {
        counts = sqlx::query_as(
            "SELECT COUNT(*), COUNT(DISTINCT payload #>> '{_schedule,tick}') FROM noderouter_core.job_queue \
             WHERE app_name = 'twice'",
        )
        .fetch_one(&db)
        .await
        .unwrap();
        if counts.0 as usize >= rows.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (jobs, distinct) = counts;
    assert_eq!(jobs, distinct);
    assert_eq!(jobs as usize, rows.len());
    // The survivor decided the ticks after the kill.
    let (nodes,): (i64,) = sqlx::query_as(
        "SELECT COUNT(DISTINCT node) FROM noderouter_core.schedule_ticks WHERE app_name = 'twice'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert!(nodes >= 1);
    other.shutdown().await.unwrap();
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

#[test]
fn a_daily_time_follows_its_zone_across_the_spring_change() {
    // Paris moves from UTC+1 to UTC+2 on 2026-03-29.
    let s = CronSpec::new("30 9 * * *", Some("Europe/Paris")).unwrap();
    assert_eq!(
        s.upcoming(utc("2026-03-27T12:00:00Z"), 3),
        vec![
            utc("2026-03-28T08:30:00Z"),
            utc("2026-03-29T07:30:00Z"),
            utc("2026-03-30T07:30:00Z"),
        ]
    );
}

#[test]
fn a_time_in_the_spring_gap_fires_once_that_day() {
    // 02:30 does not exist in Paris on 2026-03-29 (02:00 -> 03:00).
    let s = CronSpec::new("30 2 * * *", Some("Europe/Paris")).unwrap();
    let ticks = s.upcoming(utc("2026-03-28T12:00:00Z"), 2);
    assert!(
        ticks[0] >= utc("2026-03-29T01:00:00Z") && ticks[0] <= utc("2026-03-29T01:30:00Z"),
        "{ticks:?}"
    );
    assert_eq!(ticks[1], utc("2026-03-30T00:30:00Z"));
}

#[test]
fn a_time_repeated_in_the_autumn_fires_once() {
    // 02:30 happens twice in Paris on 2026-10-25 (03:00 -> 02:00).
    let s = CronSpec::new("30 2 * * *", Some("Europe/Paris")).unwrap();
    assert_eq!(
        s.between(utc("2026-10-24T12:00:00Z"), utc("2026-10-26T12:00:00Z"), 10),
        vec![utc("2026-10-25T00:30:00Z"), utc("2026-10-26T01:30:00Z")]
    );
}

#[test]
fn cron_needs_five_fields_and_a_known_zone() {
    assert!(nr_infra::cron::parse_cron("*/15 9-17 * * MON-FRI").is_ok());
    assert!(nr_infra::cron::parse_cron("0 2 * *")
        .unwrap_err()
        .contains("4 fields"));
    // The field at fault is named with its range (before: "Number out of bounds.").
    let e = nr_infra::cron::parse_cron("0 25 * * *").unwrap_err();
    assert!(
        e.contains("the hour field \"25\" is not valid: it takes 0-23"),
        "{e}"
    );
    let e = nr_infra::cron::parse_cron("0 2 * 13 MON").unwrap_err();
    assert!(e.contains("the month field \"13\""), "{e}");
    assert!(nr_infra::cron::parse_timezone(Some("Mars/Olympus")).is_err());
    // Parses, but no such date exists: refused (before, deployed and never run).
    for never in ["0 0 30 2 *", "0 0 31 4,6,9,11 *", "15 3 31 FEB *"] {
        let e = nr_infra::cron::check_fires(never).unwrap_err();
        assert!(e.contains("never fires"), "{never}: {e}");
    }
    // A leap day, a weekday or a day-of-month that some month has all fire.
    for fires in [
        "0 0 29 2 *",
        "0 0 30 2 MON",
        "0 0 31 * *",
        "*/15 9-17 * * MON-FRI",
    ] {
        assert!(nr_infra::cron::check_fires(fires).is_ok(), "{fires}");
    }
    let s = CronSpec::new("* * * * *", None).unwrap();
    assert_eq!(
        s.between(utc("2026-01-01T00:00:00Z"), utc("2026-01-01T01:00:00Z"), 3),
        vec![
            utc("2026-01-01T00:58:00Z"),
            utc("2026-01-01T00:59:00Z"),
            utc("2026-01-01T01:00:00Z"),
        ]
    );
}

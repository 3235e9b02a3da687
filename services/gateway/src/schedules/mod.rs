//! The scheduler: every gateway polls the deployed apps' `schedules[]` and turns their
//! ticks into ordinary jobs (`jobs::enqueue`, the path of `POST /api/async/<app>`).
//!
//! Exactly once per tick, however many gateways poll: a scheduler decides a schedule's
//! ticks only while it holds that schedule's row (`FOR UPDATE SKIP LOCKED`; the others
//! pass), and each decided tick is a row keyed by (app, schedule, tick) inserted with
//! `ON CONFLICT DO NOTHING`. A run's job id is chosen before its tick row commits and
//! the job is queued after; if the scheduler dies in between, another one queues that
//! same id later (the job's primary key keeps it once).
//!
//! A tick older than the grace period when decided was missed (no scheduler ran):
//! `catch_up` says whether it runs. A tick whose last run is still pending or running
//! follows `overlap`. Skipped, missed and paused ticks are rows too, with their reason.

pub(crate) mod admin;

use std::sync::{Arc, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use nr_contracts::manifest::{CatchUp, Overlap, ScheduleDecl};
use nr_infra::cron::CronSpec;
use serde_json::{json, Value};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::error::ApiError;
use crate::jobs::{enqueue, NewJob};
use crate::AppState;

/// The most ticks of one schedule decided in one poll (the newest ones).
const MAX_TICKS_PER_POLL: usize = 1000;
/// Ticks of one schedule that wait at once under `overlap: queue`: a tick due while
/// this many wait is skipped (recorded with the reason), so a run much longer than its
/// period does not pile up work without end. Missed ticks `catch_up: all` queues are not
/// counted against it.
pub(crate) const MAX_QUEUED: i64 = 10;
/// The reason of a tick `overlap: queue` keeps waiting (what [`MAX_QUEUED`] counts).
const QUEUED_BY_OVERLAP: &str = "waits for the last run to finish (overlap: queue)";
/// A submitted tick whose job row is missing this long was left by a scheduler that
/// died between the two; another queues it.
const REPAIR_AFTER: &str = "30 seconds";
/// How far back a submitted tick counts as a possible overlapping run.
const ACTIVE_WINDOW: &str = "1 day";

/// Postgres speaks `time`; cron speaks `chrono`.
pub(crate) fn to_db(t: DateTime<Utc>) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.timestamp_micros()) * 1000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub(crate) fn from_db(t: OffsetDateTime) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_micros((t.unix_timestamp_nanos() / 1000) as i64)
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// Who submits scheduled jobs (`job_queue.submitted_by`).
pub(crate) fn submitter(app: &str, schedule: &str) -> String {
    format!("schedule:{app}/{schedule}")
}

/// Starts this gateway's scheduler; it ends with `stop` or when the gateway is gone.
pub(crate) fn spawn(state: Weak<AppState>, stop: CancellationToken) {
    tokio::spawn(async move {
        loop {
            let Some(s) = state.upgrade() else { return };
            let poll = Duration::from_secs_f64(s.config.scheduler_poll_s.clamp(0.05, 3600.0));
            if let Err(e) = poll_once(&s).await {
                tracing::warn!(error = %e, "scheduler poll failed");
            }
            drop(s);
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(poll) => {}
            }
        }
    });
}

/// One pass over every deployed schedule.
pub(crate) async fn poll_once(state: &AppState) -> anyhow::Result<()> {
    let now = Utc::now();
    for (app, entry) in state.apps.all() {
        for s in &entry.manifest.schedules {
            if let Err(e) = decide(state, &app, entry.rev, s, now).await {
                tracing::warn!(app = %app, schedule = %s.name, error = %e, "schedule not decided");
            }
        }
    }
    if let Err(e) = crate::routes::download::prune(state).await {
        tracing::warn!(error = %e, "expired downloads not pruned");
    }
    repair(state).await
}

/// What one tick became.
struct Decision {
    status: &'static str,
    reason: Option<String>,
    job: Option<Uuid>,
}

async fn decide(
    state: &AppState,
    app: &str,
    rev: u64,
    s: &ScheduleDecl,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let spec = CronSpec::new(&s.cron, s.timezone.as_deref()).map_err(anyhow::Error::msg)?;
    sqlx::query(
        "INSERT INTO noderouter_core.schedules (app_name, name, checked_until) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING",
    )
    .bind(app)
    .bind(&s.name)
    .bind(to_db(now))
    .execute(&state.db)
    .await?;
    let mut tx = state.db.begin().await?;
    let row: Option<(bool, OffsetDateTime)> = sqlx::query_as(
        "SELECT paused, checked_until FROM noderouter_core.schedules \
         WHERE app_name = $1 AND name = $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(app)
    .bind(&s.name)
    .fetch_optional(&mut *tx)
    .await?;
    // Another scheduler holds it right now and decides these ticks.
    let Some((paused, from)) = row else {
        return Ok(());
    };
    let from = from_db(from);
    let grace = chrono::Duration::milliseconds(
        (state.config.scheduler_grace_s.clamp(0.0, 86_400.0) * 1000.0) as i64,
    );
    let ticks = spec.between(from, now, MAX_TICKS_PER_POLL);
    let (waiting, mut queued) = if s.overlap == Overlap::Allow {
        (0, 0)
    } else {
        queued_ticks(&mut tx, app, &s.name).await?
    };
    let mut busy =
        s.overlap != Overlap::Allow && (waiting > 0 || active_run(&mut tx, app, &s.name).await?);
    let mut to_queue: Vec<(DateTime<Utc>, Uuid, bool)> = Vec::new();
    for (i, tick) in ticks.iter().enumerate() {
        let late = now - *tick > grace;
        let d = if paused {
            Decision {
                status: "paused",
                reason: Some("the schedule was paused".into()),
                job: None,
            }
        } else if late && s.catch_up == CatchUp::None {
            Decision {
                status: "missed",
                reason: Some(format!(
                    "no scheduler ran within {} s of the tick (catch_up: none)",
                    grace.num_seconds()
                )),
                job: None,
            }
        } else if late && s.catch_up == CatchUp::Last && i + 1 != ticks.len() {
            // The newest tick due runs, late or on time: a missed one never takes the
            // place of the tick that is due now.
            Decision {
                status: "missed",
                reason: Some("a later tick ran instead (catch_up: last)".into()),
                job: None,
            }
        } else if busy && late && s.catch_up == CatchUp::All && s.overlap != Overlap::Allow {
            // Every missed tick runs, one after another, whatever `overlap` says of
            // ticks that come while a run is on (those due on time still follow it, so
            // a run longer than the period queues nothing).
            Decision {
                status: "queued",
                reason: Some("waits for the run before it (catch_up: all)".into()),
                job: None,
            }
        } else if busy && s.overlap == Overlap::Skip {
            Decision {
                status: "skipped",
                reason: Some("the last run was still pending or running (overlap: skip)".into()),
                job: None,
            }
        } else if busy && s.overlap == Overlap::Queue && queued >= MAX_QUEUED {
            Decision {
                status: "skipped",
                reason: Some(format!(
                    "{queued} ticks already wait for the last run (overlap: queue keeps at most {MAX_QUEUED})"
                )),
                job: None,
            }
        } else if busy && s.overlap == Overlap::Queue {
            Decision {
                status: "queued",
                reason: Some(QUEUED_BY_OVERLAP.into()),
                job: None,
            }
        } else {
            busy = true;
            Decision {
                status: "submitted",
                reason: late
                    .then(|| format!("ran late, caught up (catch_up: {})", s.catch_up.as_str())),
                job: Some(Uuid::now_v7()),
            }
        };
        let inserted = sqlx::query(
            "INSERT INTO noderouter_core.schedule_ticks (app_name, schedule, tick, status, reason, job_id, node) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        )
        .bind(app)
        .bind(&s.name)
        .bind(to_db(*tick))
        .bind(d.status)
        .bind(&d.reason)
        .bind(d.job)
        .bind(&state.node)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if let (1, Some(job)) = (inserted, d.job) {
            to_queue.push((*tick, job, late));
        }
        if inserted == 1 && d.reason.as_deref() == Some(QUEUED_BY_OVERLAP) {
            queued += 1;
        }
    }
    // A queued tick runs once nothing of its schedule is pending or running.
    if (s.overlap == Overlap::Queue || s.catch_up == CatchUp::All)
        && !paused
        && to_queue.is_empty()
        && !active_run(&mut tx, app, &s.name).await?
    {
        let job = Uuid::now_v7();
        let released: Option<(OffsetDateTime,)> = sqlx::query_as(
            "UPDATE noderouter_core.schedule_ticks SET status = 'submitted', job_id = $3, decided_at = NOW(), \
                    reason = 'ran after the previous run finished' \
             WHERE (app_name, schedule, tick) = (SELECT app_name, schedule, tick FROM noderouter_core.schedule_ticks \
                 WHERE app_name = $1 AND schedule = $2 AND status = 'queued' ORDER BY tick LIMIT 1) \
             RETURNING tick",
        )
        .bind(app)
        .bind(&s.name)
        .bind(job)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((tick,)) = released {
            let tick = from_db(tick);
            to_queue.push((tick, job, now - tick > grace));
        }
    }
    if now > from {
        sqlx::query(
            "UPDATE noderouter_core.schedules SET checked_until = $3 WHERE app_name = $1 AND name = $2",
        )
        .bind(app)
        .bind(&s.name)
        .bind(to_db(now))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    for (tick, job, late) in to_queue {
        submit_tick(state, app, rev, s, tick, job, late).await;
    }
    Ok(())
}

/// Whether a run of the schedule is pending or running (or submitted and not yet
/// queued by a scheduler still at work).
async fn active_run(tx: &mut sqlx::PgConnection, app: &str, schedule: &str) -> sqlx::Result<bool> {
    let (active,): (bool,) = sqlx::query_as(&format!(
        "SELECT EXISTS (SELECT 1 FROM noderouter_core.schedule_ticks t \
             LEFT JOIN noderouter_core.job_queue j ON j.id = t.job_id \
         WHERE t.app_name = $1 AND t.schedule = $2 AND t.status = 'submitted' \
           AND t.decided_at > NOW() - INTERVAL '{ACTIVE_WINDOW}' \
           AND (j.id IS NULL OR j.status IN ('pending', 'running')))"
    ))
    .bind(app)
    .bind(schedule)
    .fetch_one(tx)
    .await?;
    Ok(active)
}

/// How many ticks of the schedule wait: in all, and because of `overlap: queue`.
async fn queued_ticks(
    tx: &mut sqlx::PgConnection,
    app: &str,
    schedule: &str,
) -> sqlx::Result<(i64, i64)> {
    sqlx::query_as(
        "SELECT COUNT(*), COUNT(*) FILTER (WHERE reason = $3) FROM noderouter_core.schedule_ticks \
         WHERE app_name = $1 AND schedule = $2 AND status = 'queued'",
    )
    .bind(app)
    .bind(schedule)
    .bind(QUEUED_BY_OVERLAP)
    .fetch_one(tx)
    .await
}

/// The job's `data`: the schedule's payload, its action, and `_schedule`.
pub(crate) fn job_data(s: &ScheduleDecl, tick: DateTime<Utc>, late: bool) -> Value {
    let mut data = s.payload.clone().unwrap_or_default();
    if let Some(action) = &s.action {
        data.insert("action".into(), Value::String(action.clone()));
    }
    data.insert(
        "_schedule".into(),
        json!({
            "name": s.name,
            "tick": tick.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "late": late,
        }),
    );
    Value::Object(data)
}

async fn submit_tick(
    state: &AppState,
    app: &str,
    rev: u64,
    s: &ScheduleDecl,
    tick: DateTime<Utc>,
    job: Uuid,
    late: bool,
) {
    let payload = job_data(s, tick, late);
    let by = submitter(app, &s.name);
    let res = enqueue(
        state,
        NewJob {
            id: job,
            app,
            rev,
            payload: &payload,
            submitted_by: &by,
            idempotency_key: None,
            request_id: None,
        },
    )
    .await;
    match res {
        Ok(()) => {
            tracing::info!(app = %app, schedule = %s.name, tick = %tick, job = %job, "scheduled run submitted")
        }
        // Another scheduler queued this very job already.
        Err(ApiError::Conflict(_)) => {}
        Err(e) => {
            tracing::warn!(app = %app, schedule = %s.name, tick = %tick, error = %e, "scheduled run not submitted");
            let _ = sqlx::query(
                "UPDATE noderouter_core.schedule_ticks SET status = 'failed', reason = $4 \
                 WHERE app_name = $1 AND schedule = $2 AND tick = $3",
            )
            .bind(app)
            .bind(&s.name)
            .bind(to_db(tick))
            .bind(format!("the job could not be submitted: {e}"))
            .execute(&state.db)
            .await;
        }
    }
}

/// Queues the jobs of submitted ticks whose scheduler died before it queued them.
async fn repair(state: &AppState) -> anyhow::Result<()> {
    let orphans: Vec<(String, String, OffsetDateTime, Uuid)> = sqlx::query_as(&format!(
        "SELECT t.app_name, t.schedule, t.tick, t.job_id FROM noderouter_core.schedule_ticks t \
         WHERE t.status = 'submitted' AND t.job_id IS NOT NULL \
           AND t.decided_at < NOW() - INTERVAL '{REPAIR_AFTER}' \
           AND t.decided_at > NOW() - INTERVAL '{ACTIVE_WINDOW}' \
           AND NOT EXISTS (SELECT 1 FROM noderouter_core.job_queue j WHERE j.id = t.job_id) \
         LIMIT 50"
    ))
    .fetch_all(&state.db)
    .await?;
    for (app, schedule, tick, job) in orphans {
        let Some(entry) = state.apps.get(&app) else {
            continue;
        };
        let Some(s) = entry.manifest.schedules.iter().find(|s| s.name == schedule) else {
            continue;
        };
        submit_tick(state, &app, entry.rev, s, from_db(tick), job, true).await;
    }
    Ok(())
}

/// The entry of a deployed schedule, or 404 naming what is missing.
pub(crate) fn find(
    state: &AppState,
    app: &str,
    name: &str,
) -> Result<(Arc<crate::apps::AppEntry>, ScheduleDecl), ApiError> {
    let entry = state
        .apps
        .get(app)
        .ok_or_else(|| ApiError::NotFound(format!("app '{app}' is not deployed")))?;
    let s = entry
        .manifest
        .schedules
        .iter()
        .find(|s| s.name == name)
        .cloned()
        .ok_or_else(|| ApiError::NotFound(format!("app '{app}' has no schedule '{name}'")))?;
    Ok((entry, s))
}

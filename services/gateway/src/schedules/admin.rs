//! Operators' view of schedules: `GET /admin/api/schedules` (each with its next five
//! fire times and latest ticks, `apps:read`), `GET .../{app}/{name}/ticks`, and
//! `POST .../{app}/{name}/pause|resume` (`apps:deploy`).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use nr_auth::perms;
use nr_contracts::events::{ScheduleChange, ScheduleChanged, SCHEDULE_CHANGED};
use nr_contracts::{subjects, Envelope};
use nr_infra::cron::CronSpec;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::AppState;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/admin/api/schedules", get(list))
        .route("/admin/api/schedules/{app}/{name}/ticks", get(ticks))
        .route("/admin/api/schedules/{app}/{name}/pause", post(pause))
        .route("/admin/api/schedules/{app}/{name}/resume", post(resume))
}

/// One decided tick of a schedule.
#[derive(Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub(crate) struct Tick {
    /// The fire time, UTC.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    tick: OffsetDateTime,
    /// `submitted`, `queued`, `skipped`, `missed`, `paused` or `failed`.
    status: String,
    /// Why the tick did not run (or ran late); absent for a run on time.
    reason: Option<String>,
    /// The run's job (`GET /api/async/jobs/{id}`), for a submitted tick.
    #[schema(value_type = Option<String>)]
    job_id: Option<Uuid>,
    /// The scheduler (gateway) that decided it.
    node: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    decided_at: OffsetDateTime,
}

/// A schedule of a deployed app, as operators see it.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ScheduleView {
    app: String,
    name: String,
    cron: String,
    timezone: String,
    action: Option<String>,
    overlap: &'static str,
    catch_up: &'static str,
    paused: bool,
    /// The next five fire times, UTC.
    #[schema(value_type = Vec<String>)]
    next: Vec<DateTime<Utc>>,
    /// The same, in the schedule's time zone (RFC 3339 with its offset).
    next_local: Vec<String>,
    /// The latest decided ticks, newest first.
    recent: Vec<Tick>,
}

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct ListQuery {
    /// Only this app's schedules.
    app: Option<String>,
}

async fn recent(
    state: &AppState,
    app: &str,
    name: &str,
    limit: i64,
) -> Result<Vec<Tick>, ApiError> {
    sqlx::query_as::<_, Tick>(
        "SELECT tick, status, reason, job_id, node, decided_at FROM noderouter_core.schedule_ticks \
         WHERE app_name = $1 AND schedule = $2 ORDER BY tick DESC LIMIT $3",
    )
    .bind(app)
    .bind(name)
    .bind(limit)
    .fetch_all(&state.db)
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("cannot read schedule ticks: {e}")))
}

/// Lists the deployed apps' schedules with their next five fire times and latest ticks.
///
/// `GET /admin/api/schedules`: needs `apps:read`.
#[utoipa::path(
    get,
    path = "/admin/api/schedules",
    tag = "admin",
    params(ListQuery),
    responses(
        (status = 200, description = "Every schedule (of one app with `?app=`)", body = Vec<ScheduleView>),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "`apps:read` is missing", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<ScheduleView>>, ApiError> {
    caller.require(perms::APPS_READ)?;
    let paused: Vec<(String, String)> =
        sqlx::query_as("SELECT app_name, name FROM noderouter_core.schedules WHERE paused")
            .fetch_all(&state.db)
            .await
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("cannot read schedules: {e}")))?;
    let now = Utc::now();
    let mut out = Vec::new();
    for (app, entry) in state.apps.all() {
        if q.app.as_ref().is_some_and(|a| *a != app) {
            continue;
        }
        for s in &entry.manifest.schedules {
            let tz = s.timezone.clone().unwrap_or_else(|| "UTC".into());
            let (next, next_local) = match CronSpec::new(&s.cron, s.timezone.as_deref()) {
                Ok(spec) => {
                    let next = spec.upcoming(now, 5);
                    let zone = nr_infra::cron::parse_timezone(s.timezone.as_deref())
                        .unwrap_or(chrono_tz::Tz::UTC);
                    let local = next
                        .iter()
                        .map(|t| t.with_timezone(&zone).to_rfc3339())
                        .collect();
                    (next, local)
                }
                Err(_) => (Vec::new(), Vec::new()),
            };
            out.push(ScheduleView {
                paused: paused.iter().any(|(a, n)| *a == app && *n == s.name),
                recent: recent(&state, &app, &s.name, 10).await?,
                app: app.clone(),
                name: s.name.clone(),
                cron: s.cron.clone(),
                timezone: tz,
                action: s.action.clone(),
                overlap: s.overlap.as_str(),
                catch_up: s.catch_up.as_str(),
                next,
                next_local,
            });
        }
    }
    Ok(Json(out))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct TicksQuery {
    /// How many ticks, newest first (1 to 1000; 100 when absent).
    limit: Option<i64>,
}

/// The decided ticks of one schedule, newest first, with the reason of any that did
/// not run.
///
/// `GET /admin/api/schedules/{app}/{name}/ticks`: needs `apps:read`.
#[utoipa::path(
    get,
    path = "/admin/api/schedules/{app}/{name}/ticks",
    tag = "admin",
    params(
        ("app" = String, Path, description = "A deployed app"),
        ("name" = String, Path, description = "One of its schedules"),
        TicksQuery,
    ),
    responses(
        (status = 200, description = "The ticks", body = Vec<Tick>),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "`apps:read` is missing", body = ErrorBody),
        (status = 404, description = "No such app or schedule", body = ErrorBody),
    )
)]
pub(crate) async fn ticks(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((app, name)): Path<(String, String)>,
    Query(q): Query<TicksQuery>,
) -> Result<Json<Vec<Tick>>, ApiError> {
    caller.require(perms::APPS_READ)?;
    super::find(&state, &app, &name)?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    Ok(Json(recent(&state, &app, &name, limit).await?))
}

/// A schedule's pause state after the change.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Paused {
    app: String,
    name: String,
    paused: bool,
    /// `false` when the schedule already was so: nothing was changed or recorded.
    changed: bool,
}

async fn set_paused(
    state: &AppState,
    caller: &Caller,
    app: String,
    name: String,
    paused: bool,
) -> Result<Json<Paused>, ApiError> {
    caller.require(perms::APPS_DEPLOY)?;
    super::find(state, &app, &name)?;
    // The change and its audit event land together: the row is committed only once
    // the event is stored, so a refused publish leaves the schedule as it was.
    let mut tx = state
        .db
        .begin()
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("cannot record the pause: {e}")))?;
    // One change of a schedule at a time (the row may not exist yet): pausing a paused
    // schedule again changes nothing and records nothing (it kept who paused it, and
    // when, and wrote a second audit entry).
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('nr-schedule:' || $1 || '/' || $2))")
        .bind(&app)
        .bind(&name)
        .execute(&mut *tx)
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("cannot record the pause: {e}")))?;
    let now: Option<(bool,)> = sqlx::query_as(
        "SELECT paused FROM noderouter_core.schedules WHERE app_name = $1 AND name = $2",
    )
    .bind(&app)
    .bind(&name)
    .fetch_optional(&mut *tx)
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("cannot record the pause: {e}")))?;
    if now.map(|(p,)| p).unwrap_or(false) == paused {
        return Ok(Json(Paused {
            app,
            name,
            paused,
            changed: false,
        }));
    }
    // Resuming does not replay the pause: ticks from here on run.
    sqlx::query(
        "INSERT INTO noderouter_core.schedules (app_name, name, paused, paused_by, paused_at, checked_until) \
         VALUES ($1, $2, $3, $4, CASE WHEN $3 THEN NOW() END, NOW()) \
         ON CONFLICT (app_name, name) DO UPDATE SET paused = $3, paused_by = $4, \
             paused_at = CASE WHEN $3 THEN NOW() END, \
             checked_until = CASE WHEN $3 THEN schedules.checked_until \
                                  ELSE GREATEST(schedules.checked_until, NOW()) END",
    )
    .bind(&app)
    .bind(&name)
    .bind(paused)
    .bind(&caller.0.sub)
    .execute(&mut *tx)
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("cannot record the pause: {e}")))?;
    let event = Envelope::new(
        SCHEDULE_CHANGED,
        &state.node,
        ScheduleChanged {
            app_name: app.clone(),
            schedule: name.clone(),
            change: if paused {
                ScheduleChange::Paused
            } else {
                ScheduleChange::Resumed
            },
            actor: caller.0.name.clone(),
            actor_id: caller.0.sub.clone(),
        },
    );
    nr_infra::bus::publish_event(&state.js, &subjects::schedule_changed(&app), &event, None)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "a schedule change was not acknowledged by the event log");
            // The transaction is dropped, so the pause is not recorded either.
            ApiError::Unavailable(
                "the schedules' event log (NATS JetStream) did not acknowledge this change, as while a NATS node is down and its streams elect new leaders: it may or may not have been made; look at the schedule before trying again".into(),
            )
        })?;
    tx.commit()
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("cannot record the pause: {e}")))?;
    tracing::info!(app = %app, schedule = %name, paused, by = %caller.0.sub, "schedule paused or resumed");
    Ok(Json(Paused {
        app,
        name,
        paused,
        changed: true,
    }))
}

/// Pauses a schedule: its ticks are recorded as `paused` and do not run.
///
/// `POST /admin/api/schedules/{app}/{name}/pause`: needs `apps:deploy`.
#[utoipa::path(
    post,
    path = "/admin/api/schedules/{app}/{name}/pause",
    tag = "admin",
    params(
        ("app" = String, Path, description = "A deployed app"),
        ("name" = String, Path, description = "One of its schedules"),
    ),
    responses(
        (status = 200, description = "Paused", body = Paused),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "`apps:deploy` is missing", body = ErrorBody),
        (status = 404, description = "No such app or schedule", body = ErrorBody),
    )
)]
pub(crate) async fn pause(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((app, name)): Path<(String, String)>,
) -> Result<Json<Paused>, ApiError> {
    set_paused(&state, &caller, app, name, true).await
}

/// Resumes a paused schedule: ticks from now on run (the paused ones are not replayed).
///
/// `POST /admin/api/schedules/{app}/{name}/resume`: needs `apps:deploy`.
#[utoipa::path(
    post,
    path = "/admin/api/schedules/{app}/{name}/resume",
    tag = "admin",
    params(
        ("app" = String, Path, description = "A deployed app"),
        ("name" = String, Path, description = "One of its schedules"),
    ),
    responses(
        (status = 200, description = "Resumed", body = Paused),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "`apps:deploy` is missing", body = ErrorBody),
        (status = 404, description = "No such app or schedule", body = ErrorBody),
    )
)]
pub(crate) async fn resume(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((app, name)): Path<(String, String)>,
) -> Result<Json<Paused>, ApiError> {
    set_paused(&state, &caller, app, name, false).await
}

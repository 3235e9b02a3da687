//! Async jobs: `POST /api/async/<app>`, `GET /api/async/jobs/<id>`,
//! `DELETE /api/async/jobs/<id>`. The row in `noderouter_core.job_queue` is written here
//! first, then the work item is published; runners do the rest.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use nr_contracts::events::{JobProgress, JobStatus, JobSubmitted, JOB_PROGRESS, JOB_SUBMITTED};
use nr_contracts::{subjects, Envelope};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::sync::{check_content_type, check_json_object};
use crate::AppState;
use axum::http::HeaderMap;
use nr_auth::perms;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/async/{app}", post(submit))
        .route("/api/async/jobs", get(list_jobs))
        .route("/api/async/jobs/{id}", get(get_job).delete(cancel))
}

#[derive(Serialize)]
pub(crate) struct Submitted {
    job_id: String,
    status: &'static str,
    node: String,
}

/// How long an `Idempotency-Key` keeps answering with the same job.
const IDEMPOTENCY_WINDOW: &str = "24 hours";

async fn submit(
    State(state): State<Arc<AppState>>,
    Path(app): Path<String>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Submitted>), ApiError> {
    let entry = state
        .apps
        .get(&app)
        .ok_or_else(|| ApiError::NotFound(format!("app '{app}' is not deployed")))?;
    caller.require(entry.manifest.required_permission.as_deref().unwrap_or(""))?;
    check_content_type(&headers)?;
    check_json_object(&body)?;
    let idempotency_key = headers
        .get("idempotency-key")
        .map(|v| v.to_str().map(str::to_owned))
        .transpose()
        .map_err(|_| ApiError::BadRequest("Idempotency-Key must be visible ASCII".into()))?;
    if idempotency_key
        .as_ref()
        .is_some_and(|k| k.is_empty() || k.len() > 200)
    {
        return Err(ApiError::BadRequest(
            "Idempotency-Key must be 1-200 characters".into(),
        ));
    }
    if let Some(key) = &idempotency_key {
        let existing: Option<(Uuid, String, Option<String>)> = sqlx::query_as(&format!(
            "SELECT id, app_name, node FROM noderouter_core.job_queue \
             WHERE submitted_by = $1 AND idempotency_key = $2 AND created_at > NOW() - INTERVAL '{IDEMPOTENCY_WINDOW}'"
        ))
        .bind(&caller.0.sub)
        .bind(key)
        .fetch_optional(&state.db)
        .await
        .map_err(|e| anyhow::anyhow!("cannot read job: {e}"))?;
        if let Some((id, existing_app, node)) = existing {
            if existing_app != app {
                return Err(ApiError::Conflict(format!(
                    "Idempotency-Key was already used for a job of app '{existing_app}'"
                )));
            }
            return Ok((
                StatusCode::OK,
                Json(Submitted {
                    job_id: id.to_string(),
                    status: "pending",
                    node: node.unwrap_or_else(|| state.node.clone()),
                }),
            ));
        }
        // An older job with the same key falls out of the window: free the key.
        sqlx::query(
            "UPDATE noderouter_core.job_queue SET idempotency_key = NULL WHERE submitted_by = $1 AND idempotency_key = $2",
        )
        .bind(&caller.0.sub)
        .bind(key)
        .execute(&state.db)
        .await
        .map_err(|e| anyhow::anyhow!("cannot record job: {e}"))?;
    }
    let payload: serde_json::Value = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::json!({})
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("request body is not valid JSON: {e}")))?
    };
    let id = Uuid::now_v7();
    let inserted = sqlx::query(
        "INSERT INTO noderouter_core.job_queue \
             (id, app_name, payload, status, max_attempts, app_rev, submitted_by, idempotency_key, node) \
         VALUES ($1, $2, $3, 'pending', $4, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(&app)
    .bind(&payload)
    .bind(state.config.job_max_attempts.max(1))
    .bind(entry.rev as i64)
    .bind(&caller.0.sub)
    .bind(&idempotency_key)
    .bind(&state.node)
    .execute(&state.db)
    .await;
    if let Err(sqlx::Error::Database(e)) = &inserted {
        if e.is_unique_violation() {
            return Err(ApiError::Conflict(
                "a job with this Idempotency-Key is being submitted right now; retry".into(),
            ));
        }
    }
    inserted.map_err(|e| anyhow::anyhow!("cannot record job: {e}"))?;
    let event = Envelope::new(
        JOB_SUBMITTED,
        &state.node,
        JobSubmitted {
            job_id: id.to_string(),
            app_name: app.clone(),
            app_rev: entry.rev,
        },
    );
    if let Err(e) =
        nr_infra::bus::publish_event(&state.js, &subjects::job_submitted(&app), &event, None).await
    {
        tracing::error!(job = %id, error = %e, "cannot queue job");
        let _ = sqlx::query(
            "UPDATE noderouter_core.job_queue SET status = 'failed', error_message = 'the job could not be queued' WHERE id = $1",
        )
        .bind(id)
        .execute(&state.db)
        .await;
        return Err(ApiError::Unavailable(
            "the job queue is unavailable; retry shortly".into(),
        ));
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(Submitted {
            job_id: id.to_string(),
            status: "pending",
            node: state.node.clone(),
        }),
    ))
}

/// A job as the author guide shows it.
#[derive(Serialize, sqlx::FromRow)]
pub(crate) struct Job {
    id: Uuid,
    app_name: String,
    status: String,
    progress: i32,
    result: Option<serde_json::Value>,
    error_message: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
    attempt: i32,
}

fn parse_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError::NotFound(format!("job '{id}' not found")))
}

const JOB_COLUMNS: &str =
    "id, app_name, status, progress, result, error_message, created_at, updated_at, attempt";

/// The job if the caller may see it: its submitter, or a holder of `jobs:read_all`.
/// Anyone else is told it does not exist.
async fn visible_job(state: &AppState, caller: &Caller, id: &str) -> Result<Job, ApiError> {
    let uuid = parse_id(id)?;
    let all = caller.0.has(perms::JOBS_READ_ALL);
    let job: Option<Job> = sqlx::query_as(&format!(
        "SELECT {JOB_COLUMNS} FROM noderouter_core.job_queue WHERE id = $1 AND ($2 OR submitted_by = $3)"
    ))
    .bind(uuid)
    .bind(all)
    .bind(&caller.0.sub)
    .fetch_optional(&state.db)
    .await
    .map_err(|e| anyhow::anyhow!("cannot read job: {e}"))?;
    job.ok_or_else(|| ApiError::NotFound(format!("job '{id}' not found")))
}

async fn get_job(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Job>, ApiError> {
    visible_job(&state, &caller, &id).await.map(Json)
}

#[derive(serde::Deserialize)]
struct JobQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    app_name: Option<String>,
    /// Every user's jobs (needs `jobs:read_all`).
    #[serde(default)]
    all: bool,
    #[serde(default)]
    limit: Option<i64>,
    /// Cursor: the `id` of the last job of the previous page.
    #[serde(default)]
    before: Option<String>,
}

/// `GET /api/async/jobs`: the caller's jobs, newest first, filtered and paginated.
async fn list_jobs(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    axum::extract::Query(q): axum::extract::Query<JobQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if q.all {
        caller.require(perms::JOBS_READ_ALL)?;
    }
    if let Some(s) = &q.status {
        if !["pending", "running", "completed", "failed", "cancelled"].contains(&s.as_str()) {
            return Err(ApiError::BadRequest(format!(
                "status {s:?} must be one of pending, running, completed, failed, cancelled"
            )));
        }
    }
    let before = q.before.as_deref().map(parse_id).transpose()?;
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let jobs: Vec<Job> = sqlx::query_as(&format!(
        "SELECT {JOB_COLUMNS} FROM noderouter_core.job_queue \
         WHERE ($1 OR submitted_by = $2) AND ($3::text IS NULL OR status = $3) \
           AND ($4::text IS NULL OR app_name = $4) AND ($5::uuid IS NULL OR id < $5) \
         ORDER BY id DESC LIMIT $6"
    ))
    .bind(q.all)
    .bind(&caller.0.sub)
    .bind(&q.status)
    .bind(&q.app_name)
    .bind(before)
    .bind(limit + 1)
    .fetch_all(&state.db)
    .await
    .map_err(|e| anyhow::anyhow!("cannot list jobs: {e}"))?;
    let more = jobs.len() as i64 > limit;
    let jobs: Vec<Job> = jobs.into_iter().take(limit as usize).collect();
    let next = if more {
        jobs.last().map(|j| j.id.to_string())
    } else {
        None
    };
    Ok(Json(serde_json::json!({"jobs": jobs, "next_before": next})))
}

async fn cancel(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Job>, ApiError> {
    let uuid = visible_job(&state, &caller, &id).await?.id;
    let cancelled: Option<Job> = sqlx::query_as(
        "UPDATE noderouter_core.job_queue SET status = 'cancelled', lease_until = NULL \
         WHERE id = $1 AND status IN ('pending', 'running') \
         RETURNING id, app_name, status, progress, result, error_message, created_at, updated_at, attempt",
    )
    .bind(uuid)
    .fetch_optional(&state.db)
    .await
    .map_err(|e| anyhow::anyhow!("cannot cancel job: {e}"))?;
    let Some(job) = cancelled else {
        let existing = visible_job(&state, &caller, &id).await?;
        return Err(ApiError::Conflict(format!(
            "job '{id}' is already {} and cannot be cancelled",
            existing.status
        )));
    };
    // Stop it wherever it runs, and tell whoever follows its progress.
    let _ = state
        .nats
        .publish(subjects::job_cancel(&id), Bytes::new())
        .await;
    let event = Envelope::new(
        JOB_PROGRESS,
        &state.node,
        JobProgress {
            job_id: id.clone(),
            app_name: job.app_name.clone(),
            status: JobStatus::Cancelled,
            progress: job.progress,
            message: None,
            submitted_by: Some(caller.0.sub.clone()),
        },
    );
    let subject = subjects::job_progress(&job.app_name, &id);
    if let Err(e) = nr_infra::bus::publish_event(&state.js, &subject, &event, None).await {
        tracing::warn!(job = %id, error = %e, "cannot publish cancellation");
    }
    Ok(Json(job))
}

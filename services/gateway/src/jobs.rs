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

use crate::error::ApiError;
use crate::sync::check_json_object;
use crate::AppState;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/async/{app}", post(submit))
        .route("/api/async/jobs/{id}", get(get_job).delete(cancel))
}

#[derive(Serialize)]
pub(crate) struct Submitted {
    job_id: String,
    status: &'static str,
    node: String,
}

async fn submit(
    State(state): State<Arc<AppState>>,
    Path(app): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Submitted>), ApiError> {
    let entry = state
        .apps
        .get(&app)
        .ok_or_else(|| ApiError::NotFound(format!("app '{app}' is not deployed")))?;
    check_json_object(&body)?;
    let payload: serde_json::Value = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::json!({})
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("request body is not valid JSON: {e}")))?
    };
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO noderouter_core.job_queue (id, app_name, payload, status, max_attempts, app_rev) \
         VALUES ($1, $2, $3, 'pending', $4, $5)",
    )
    .bind(id)
    .bind(&app)
    .bind(&payload)
    .bind(state.config.job_max_attempts.max(1))
    .bind(entry.rev as i64)
    .execute(&state.db)
    .await
    .map_err(|e| anyhow::anyhow!("cannot record job: {e}"))?;
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

async fn get_job(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Job>, ApiError> {
    let uuid = parse_id(&id)?;
    let job: Option<Job> = sqlx::query_as(
        "SELECT id, app_name, status, progress, result, error_message, created_at, updated_at, attempt \
         FROM noderouter_core.job_queue WHERE id = $1",
    )
    .bind(uuid)
    .fetch_optional(&state.db)
    .await
    .map_err(|e| anyhow::anyhow!("cannot read job: {e}"))?;
    job.map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("job '{id}' not found")))
}

async fn cancel(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Job>, ApiError> {
    let uuid = parse_id(&id)?;
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
        let Json(existing) = get_job(State(state), Path(id.clone())).await?;
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
            submitted_by: None,
        },
    );
    let subject = subjects::job_progress(&job.app_name, &id);
    if let Err(e) = nr_infra::bus::publish_event(&state.js, &subject, &event, None).await {
        tracing::warn!(job = %id, error = %e, "cannot publish cancellation");
    }
    Ok(Json(job))
}

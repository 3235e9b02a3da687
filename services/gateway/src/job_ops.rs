//! Operating jobs: re-queueing dead letters (one job, or an app's in bulk) and reading
//! a job's captured output.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::Json;
use nr_auth::perms;
use nr_contracts::events::{JobProgress, JobStatus, JobSubmitted, JOB_PROGRESS, JOB_SUBMITTED};
use nr_contracts::{subjects, Envelope};
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::jobs::{is_app_name, parse_id, visible_job};
use crate::AppState;

/// Most jobs one bulk re-queue puts back.
const BULK_LIMIT: i64 = 10_000;

/// The body of a re-queue (optional).
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RequeueBody {
    /// The app whose failed jobs to re-queue (bulk only).
    #[serde(default)]
    app_name: Option<String>,
    /// Runs the job gets from now on, 1-100; the app's `job_retry.attempts` (else the
    /// platform's default) when absent.
    #[serde(default)]
    attempts: Option<i32>,
}

/// What a re-queue put back.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Requeued {
    /// The ids of the re-queued jobs, now `pending`.
    job_ids: Vec<String>,
    count: usize,
}

fn parse_body(body: &Bytes) -> Result<RequeueBody, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(RequeueBody::default());
    }
    let b: RequeueBody = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("re-queue body: {e}")))?;
    if let Some(a) = b.attempts {
        if !(1..=100).contains(&a) {
            return Err(ApiError::BadRequest(format!(
                "re-queue body field attempts: {a} must be a whole number from 1 to 100"
            )));
        }
    }
    Ok(b)
}

fn attempts_for(state: &AppState, app: &str, asked: Option<i32>) -> i32 {
    asked
        .or_else(|| {
            state
                .apps
                .get(app)
                .and_then(|e| e.manifest.job_retry)
                .and_then(|r| r.attempts)
                .and_then(|a| i32::try_from(a).ok())
        })
        .unwrap_or(state.config.job_max_attempts)
        .max(1)
}

/// Publishes the work items (and a `pending` progress event) of re-queued jobs.
async fn queue_again(state: &AppState, jobs: &[nr_jobs::Requeued]) -> Result<(), ApiError> {
    for job in jobs {
        let id = job.id.to_string();
        let rev = job
            .app_rev
            .and_then(|r| u64::try_from(r).ok())
            .or_else(|| state.apps.get(&job.app_name).map(|e| e.rev))
            .unwrap_or(0);
        let event = Envelope::new(
            JOB_SUBMITTED,
            &state.node,
            JobSubmitted {
                job_id: id.clone(),
                app_name: job.app_name.clone(),
                app_rev: rev,
            },
        );
        nr_infra::bus::publish_event(
            &state.js,
            &subjects::job_submitted(&job.app_name),
            &event,
            None,
        )
        .await
        .map_err(|e| {
            tracing::error!(job = %id, error = %e, "cannot queue re-queued job");
            ApiError::Unavailable("the job queue is unavailable; retry shortly".into())
        })?;
        let progress = Envelope::new(
            JOB_PROGRESS,
            &state.node,
            JobProgress {
                job_id: id.clone(),
                app_name: job.app_name.clone(),
                status: JobStatus::Pending,
                progress: 0,
                message: Some("re-queued".into()),
                submitted_by: job.submitted_by.clone(),
            },
        );
        let subject = subjects::job_progress(&job.app_name, &id);
        if let Err(e) = nr_infra::bus::publish_event(&state.js, &subject, &progress, None).await {
            tracing::warn!(job = %id, error = %e, "cannot publish re-queue");
        }
    }
    Ok(())
}

/// Puts a failed job (a dead letter) back in the queue with fresh attempts.
#[utoipa::path(
    post,
    path = "/api/async/jobs/{id}/requeue",
    tag = "jobs",
    params(("id" = String, Path, description = "The job's id (a UUID)")),
    request_body(content = Option<RequeueBody>, content_type = "application/json"),
    responses(
        (status = 200, description = "The job is pending again", body = Requeued),
        (status = 400, description = "A bad body", body = ErrorBody),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "The job is another user's and `jobs:requeue_all` is missing", body = ErrorBody),
        (status = 404, description = "No such job visible to the caller", body = ErrorBody),
        (status = 409, description = "The job is not failed", body = ErrorBody),
        (status = 415, description = "A body declared as something other than JSON", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn requeue_one(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Json<Requeued>, ApiError> {
    crate::sync::check_content_type(&headers)?;
    let body = parse_body(&body)?;
    if body.app_name.is_some() {
        return Err(ApiError::BadRequest(
            "re-queue body field app_name: only POST /api/async/requeue takes an app".into(),
        ));
    }
    let job = visible_job(&state, &caller, &id).await?;
    // The app's permission here, and its routes' gates on this job's action just below
    // (exactly, where the bulk query can only be conservative).
    may_run(&state, &caller, &job.app_name)?;
    if let Some(entry) = state.apps.get(&job.app_name) {
        let action = nr_jobs::action_of(&state.db, job.id)
            .await
            .map_err(|e| anyhow::anyhow!("cannot read job: {e}"))?;
        if let Some(action) = action {
            crate::routes::direct::may_run_action(&job.app_name, &entry, &caller, &action)?;
        }
    }
    let all = caller.0.has(perms::JOBS_REQUEUE_ALL);
    if !all && job.submitted_by.as_deref() != Some(&caller.0.sub) {
        return Err(ApiError::Forbidden(format!(
            "only the job's submitter, or a holder of '{}', may re-queue job '{id}'",
            perms::JOBS_REQUEUE_ALL
        )));
    }
    let attempts = attempts_for(&state, &job.app_name, body.attempts);
    let done = nr_jobs::requeue(
        &state.db,
        nr_jobs::RequeueWhat::One(job.id),
        nr_jobs::Viewer::All,
        attempts,
        &[],
    )
    .await
    .map_err(|e| anyhow::anyhow!("cannot re-queue job: {e}"))?;
    if done.is_empty() {
        return Err(ApiError::Conflict(format!(
            "job '{id}' is {}, not failed: only failed jobs are re-queued",
            job.status
        )));
    }
    queue_again(&state, &done).await?;
    Ok(Json(Requeued {
        job_ids: vec![id],
        count: 1,
    }))
}

/// Puts an app's failed jobs back in the queue: the caller's own, or every user's
/// with `jobs:requeue_all`; at most 10,000 per call.
#[utoipa::path(
    post,
    path = "/api/async/requeue",
    tag = "jobs",
    request_body(content = RequeueBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The jobs now pending again", body = Requeued),
        (status = 400, description = "A bad body or app name", body = ErrorBody),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 415, description = "A body declared as something other than JSON", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn requeue_app(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Json<Requeued>, ApiError> {
    crate::sync::check_content_type(&headers)?;
    let body = parse_body(&body)?;
    let Some(app) = body.app_name.as_deref() else {
        return Err(ApiError::BadRequest(
            "re-queue body field app_name: required (the app whose failed jobs to re-queue)".into(),
        ));
    };
    if !is_app_name(app) {
        return Err(ApiError::BadRequest(format!(
            "re-queue body field app_name: {app:?} is not an app name (letters, digits, _ and -, at most 64)"
        )));
    }
    // Jobs of actions a route would not let the caller run stay failed.
    let barred = may_run(&state, &caller, app)?;
    let viewer = if caller.0.has(perms::JOBS_REQUEUE_ALL) {
        nr_jobs::Viewer::All
    } else {
        nr_jobs::Viewer::Submitter(&caller.0.sub)
    };
    let attempts = attempts_for(&state, app, body.attempts);
    let done = nr_jobs::requeue(
        &state.db,
        nr_jobs::RequeueWhat::App {
            app,
            limit: BULK_LIMIT,
        },
        viewer,
        attempts,
        &barred,
    )
    .await
    .map_err(|e| anyhow::anyhow!("cannot re-queue jobs: {e}"))?;
    queue_again(&state, &done).await?;
    Ok(Json(Requeued {
        count: done.len(),
        job_ids: done.iter().map(|j| j.id.to_string()).collect(),
    }))
}

/// Re-queueing runs the app's code again, so it takes what calling the app takes now:
/// a caller who lost the app's `required_permission` cannot run their old jobs of it,
/// and the actions its routes gate from the caller (returned) are not run again.
fn may_run(state: &AppState, caller: &Caller, app: &str) -> Result<Vec<String>, ApiError> {
    match state.apps.get(app) {
        Some(entry) => {
            caller.require(entry.manifest.required_permission.as_deref().unwrap_or(""))?;
            Ok(crate::routes::direct::barred_actions(app, &entry, caller))
        }
        None => Ok(Vec::new()),
    }
}

/// A job's captured output.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct JobLogs {
    job_id: String,
    status: String,
    /// stdout, stderr and `logging` lines of the last attempt, each prefixed with
    /// `[<request id>]` (of the submit; the job id without one); long lines and the whole are cut with a marker. Empty while the
    /// job has not finished an attempt.
    logs: String,
}

/// The output a job's last attempt printed or logged.
#[utoipa::path(
    get,
    path = "/api/async/jobs/{id}/logs",
    tag = "jobs",
    params(("id" = String, Path, description = "The job's id (a UUID)")),
    responses(
        (status = 200, description = "The job's logs", body = JobLogs),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 404, description = "No such job visible to the caller", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn logs(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<JobLogs>, ApiError> {
    let uuid = parse_id(&id)?;
    let found = nr_jobs::logs(&state.db, uuid, crate::jobs::viewer(&caller))
        .await
        .map_err(|e| anyhow::anyhow!("cannot read job: {e}"))?;
    let (status, logs) =
        found.ok_or_else(|| ApiError::NotFound(format!("job '{id}' not found")))?;
    Ok(Json(JobLogs {
        job_id: id,
        status,
        logs: logs.unwrap_or_default(),
    }))
}

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
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::sync::{check_content_type, check_json_object};
use crate::AppState;
use axum::http::HeaderMap;
use nr_auth::perms;

mod read;
pub(crate) mod repair;
pub(crate) use read::*;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/async/{app}", post(submit))
        .route("/api/async/jobs", get(list_jobs))
        .route("/api/async/jobs/{id}", get(get_job).delete(cancel))
        .route(
            "/api/async/jobs/{id}/requeue",
            post(crate::job_ops::requeue_one),
        )
        .route("/api/async/jobs/{id}/logs", get(crate::job_ops::logs))
        .route("/api/async/requeue", post(crate::job_ops::requeue_app))
}

/// The answer to a submit: the job's id, to poll at `GET /api/async/jobs/{id}`.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Submitted {
    job_id: String,
    /// `pending` for a new job; a retry under its Idempotency-Key gets its status now.
    status: String,
    node: String,
}

/// How long an `Idempotency-Key` keeps answering with the same job.
const IDEMPOTENCY_WINDOW: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// `^[a-zA-Z0-9][a-zA-Z0-9_-]{0,63}$`: the shape of an app (and action) name.
pub(crate) fn is_app_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
}

/// Queues a job for the app's `execute(data)`; poll it at `GET /api/async/jobs/{id}`.
#[utoipa::path(
    post,
    path = "/api/async/{app}",
    tag = "jobs",
    params(
        ("app" = String, Path, description = "Name of a deployed app"),
        ("Idempotency-Key" = Option<String>, Header, description = "1-200 visible ASCII characters; a retry with the same key within 24 h returns the same job"),
    ),
    request_body(
        content = Object,
        content_type = "application/json",
        description = "Free-form JSON object passed to the app as `data`, e.g. `{\"action\": \"report\"}`; an empty body counts as `{}`"
    ),
    responses(
        (status = 202, description = "The job is queued", body = Submitted),
        (status = 200, description = "The job submitted earlier with this Idempotency-Key and the same body, with its status now", body = Submitted),
        (status = 400, description = "The body is not one JSON object, sets `_schedule` or `_job_id`, or a bad Idempotency-Key", body = ErrorBody),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "The app's `required_permission` is missing, or the permission of a route bound to this `action`; or the action is served by its webhook route only", body = ErrorBody),
        (status = 404, description = "The app is not deployed", body = ErrorBody),
        (status = 409, description = "The Idempotency-Key belongs to a job of another app", body = ErrorBody),
        (status = 422, description = "The Idempotency-Key was used with another body", body = ErrorBody),
        (status = 413, description = "The body exceeds the limit", body = ErrorBody),
        (status = 415, description = "The body is not declared JSON", body = ErrorBody),
        (status = 503, description = "The job queue is unavailable", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn submit(
    State(state): State<Arc<AppState>>,
    Path(app): Path<String>,
    caller: Caller,
    request_id: Option<axum::Extension<crate::RequestId>>,
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
    let payload: serde_json::Value = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::json!({})
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(nr_jobs::unreadable_body(&body, &e)))?
    };
    if let Some(key) = &idempotency_key {
        let existing = nr_jobs::by_idempotency_key(
            &state.db,
            &caller.0.sub,
            key,
            IDEMPOTENCY_WINDOW,
            &payload,
        )
        .await
        .map_err(|e| anyhow::anyhow!("cannot read job: {e}"))?;
        if let Some(job) = existing {
            if job.app_name != app {
                return Err(ApiError::Conflict(format!(
                    "Idempotency-Key was already used for a job of app '{}'",
                    job.app_name
                )));
            }
            // A retry sends the same request; another body under the key is a mistake
            // the caller must hear of, not a job silently not run.
            if !job.same_payload {
                return Err(ApiError::Unprocessable(format!(
                    "Idempotency-Key {key:?} was already used with another body (job {}): send a new key for another request",
                    job.id
                )));
            }
            return Ok((
                StatusCode::OK,
                Json(Submitted {
                    job_id: job.id.to_string(),
                    status: job.status,
                    node: job.node.unwrap_or_else(|| state.node.clone()),
                }),
            ));
        }
        // An older job with the same key falls out of the window: free the key.
        nr_jobs::free_idempotency_key(&state.db, &caller.0.sub, key)
            .await
            .map_err(|e| anyhow::anyhow!("cannot record job: {e}"))?;
    }
    crate::routes::direct::check(
        &app,
        &entry,
        &caller,
        &crate::routes::direct::Direct::of(&payload),
    )?;
    if nr_jobs::has_nul(&payload) {
        return Err(ApiError::BadRequest(
            "request body must not contain the character \\u0000 in a key or string: the job queue cannot store it".into(),
        ));
    }
    let id = Uuid::now_v7();
    enqueue(
        &state,
        NewJob {
            id,
            app: &app,
            rev: entry.rev,
            payload: &payload,
            submitted_by: &caller.0.sub,
            idempotency_key: idempotency_key.as_deref(),
            request_id: request_id.as_ref().map(|r| r.0 .0.as_str()),
        },
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Submitted {
            job_id: id.to_string(),
            status: "pending".into(),
            node: state.node.clone(),
        }),
    ))
}

/// A job to queue: what `POST /api/async/<app>` and the scheduler submit.
pub(crate) struct NewJob<'a> {
    pub(crate) id: Uuid,
    pub(crate) app: &'a str,
    pub(crate) rev: u64,
    pub(crate) payload: &'a serde_json::Value,
    pub(crate) submitted_by: &'a str,
    pub(crate) idempotency_key: Option<&'a str>,
    /// The submit's request id, carried by the job's log lines.
    pub(crate) request_id: Option<&'a str>,
}

/// Records a job and queues it for the runners. A job id (or Idempotency-Key) taken
/// already is a 409.
pub(crate) async fn enqueue(state: &AppState, job: NewJob<'_>) -> Result<(), ApiError> {
    let NewJob {
        id,
        app,
        rev,
        payload,
        submitted_by,
        idempotency_key,
        request_id,
    } = job;
    // Runs in all: the manifest's `job_retry.attempts`, else the platform's default.
    let max_attempts = state
        .apps
        .get(app)
        .and_then(|entry| entry.manifest.job_retry.and_then(|r| r.attempts))
        .and_then(|a| i32::try_from(a).ok())
        .unwrap_or(state.config.job_max_attempts)
        .max(1);
    let queued = nr_jobs::QueuedJob {
        id,
        app: app.to_owned(),
        payload: payload.clone(),
        max_attempts,
        app_rev: rev as i64,
        submitted_by: submitted_by.to_owned(),
        idempotency_key: idempotency_key.map(str::to_owned),
        node: state.node.clone(),
        request_id: request_id.map(str::to_owned),
    };
    match state.submits.call(queued).await {
        Some(Ok(true)) => {}
        Some(Ok(false)) => {
            return Err(ApiError::Conflict(
                "a job with this Idempotency-Key is being submitted right now; retry".into(),
            ))
        }
        Some(Err(e)) => return Err(anyhow::anyhow!("cannot record job: {e}").into()),
        None => return Err(anyhow::anyhow!("cannot record job: the job writer stopped").into()),
    }
    let event = Envelope::new(
        JOB_SUBMITTED,
        &state.node,
        JobSubmitted {
            job_id: id.to_string(),
            app_name: app.to_owned(),
            app_rev: rev,
        },
    );
    if let Err(e) = queue(state, app, &event).await {
        tracing::error!(job = %id, error = %e, "cannot queue job");
        if let Err(db) = nr_jobs::fail_unqueued(&state.db, id, "the job could not be queued").await
        {
            // Recorded and still pending: the repair pass queues it (`jobs::repair`), so
            // the caller's retry would run the work twice.
            tracing::warn!(job = %id, error = %db, "a job that could not be queued stays pending; it is queued again once NR_JOB_REPAIR_AFTER_S has passed");
            return Ok(());
        }
        return Err(ApiError::Unavailable(
            "the job queue is unavailable; retry shortly".into(),
        ));
    }
    Ok(())
}

/// How long a submit keeps trying to queue its job while JetStream has no leader for the
/// jobs stream (a NATS node died and the survivors are electing one, which takes a few
/// seconds): the caller waits a little longer instead of getting a 503.
const QUEUE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(4);
/// The pause between two attempts to queue a job.
const QUEUE_RETRY: std::time::Duration = std::time::Duration::from_millis(250);

/// Publishes `job.submitted`, again every [`QUEUE_RETRY`] for [`QUEUE_PATIENCE`] while it
/// fails.
/// Every attempt carries the event's id as its message id, so JetStream keeps one copy
/// however many attempts land.
async fn queue(
    state: &AppState,
    app: &str,
    event: &Envelope<JobSubmitted>,
) -> Result<u64, nr_infra::bus::PublishFailure> {
    let subject = subjects::job_submitted(app);
    let deadline = tokio::time::Instant::now() + QUEUE_PATIENCE;
    loop {
        match nr_infra::bus::publish_event_until(&state.js, &subject, event, None, Some(deadline))
            .await
        {
            Err(nr_infra::bus::PublishFailure::Other(e))
                if tokio::time::Instant::now() + QUEUE_RETRY < deadline =>
            {
                tracing::warn!(job = %event.data.job_id, error = %e, "queueing a job failed; trying again");
                tokio::time::sleep(QUEUE_RETRY).await;
            }
            done => return done,
        }
    }
}

/// Submits written together: whatever waits while one INSERT is in flight goes in the
/// next, at most this many per statement.
const SUBMIT_BATCH: usize = 256;

/// What one submit came to: queued, its key taken (`false`), or the database's error.
pub(crate) type SubmitResult = Result<bool, String>;

/// The gateway's job writer: under load many submits share one INSERT and one commit;
/// a lone submit is written at once. A batch the database refuses is written again one
/// job at a time, so one bad job fails alone.
pub(crate) fn submit_batcher(
    db: sqlx::PgPool,
) -> nr_jobs::Batcher<nr_jobs::QueuedJob, SubmitResult> {
    nr_jobs::Batcher::spawn(SUBMIT_BATCH, move |jobs: Vec<nr_jobs::QueuedJob>| {
        let db = db.clone();
        async move {
            match nr_jobs::submit_many(&db, &jobs).await {
                Ok(queued) => queued.into_iter().map(Ok).collect(),
                Err(e) if jobs.len() == 1 => vec![one_result(Err(e))],
                Err(_) => {
                    let mut out = Vec::with_capacity(jobs.len());
                    for job in &jobs {
                        out.push(one_result(nr_jobs::submit(&db, &job.as_new()).await));
                    }
                    out
                }
            }
        }
    })
}

fn one_result(r: Result<(), sqlx::Error>) -> SubmitResult {
    match r {
        Ok(()) => Ok(true),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
        Err(e) => Err(e.to_string()),
    }
}

/// Cancels a pending or running job.
#[utoipa::path(
    delete,
    path = "/api/async/jobs/{id}",
    tag = "jobs",
    params(("id" = String, Path, description = "The job's id (a UUID)")),
    responses(
        (status = 200, description = "The cancelled job", body = Job),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "The job is another user's and `jobs:cancel_all` is missing", body = ErrorBody),
        (status = 404, description = "No such job visible to the caller", body = ErrorBody),
        (status = 409, description = "The job has already finished", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn cancel(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<nr_jobs::Job>, ApiError> {
    let seen = visible_job(&state, &caller, &id).await?;
    // Seeing every job (`jobs:read_all`) is not leave to stop them: cancelling needs
    // to be the submitter, or to hold `jobs:cancel_all`.
    if !caller.0.has(perms::JOBS_CANCEL_ALL) && seen.submitted_by.as_deref() != Some(&caller.0.sub)
    {
        return Err(ApiError::Forbidden(format!(
            "only the job's submitter, or a holder of '{}', may cancel job '{id}'",
            perms::JOBS_CANCEL_ALL
        )));
    }
    let cancelled = nr_jobs::cancel(&state.db, seen.id)
        .await
        .map_err(|e| anyhow::anyhow!("cannot cancel job: {e}"))?;
    let Some(job) = cancelled else {
        let existing = visible_job(&state, &caller, &id).await?;
        return Err(ApiError::Conflict(format!(
            "job '{id}' is already {} and cannot be cancelled",
            existing.status
        )));
    };
    // The event goes to the job's submitter, whoever cancelled it.
    let submitted_by = job.submitted_by.clone();
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
            submitted_by,
        },
    );
    let subject = subjects::job_progress(&job.app_name, &id);
    if let Err(e) = nr_infra::bus::publish_event(&state.js, &subject, &event, None).await {
        tracing::warn!(job = %id, error = %e, "cannot publish cancellation");
    }
    Ok(Json(job))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names_follow_the_guide_pattern() {
        assert!(is_app_name("sales_2-x"));
        assert!(!is_app_name(""));
        assert!(!is_app_name("_x"));
        assert!(!is_app_name("a\u{0}"));
        assert!(!is_app_name(&"a".repeat(65)));
    }
}

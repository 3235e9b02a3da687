//! Reading jobs: `GET /api/async/jobs/<id>` and `GET /api/async/jobs`, the shapes they
//! answer, and which jobs a caller may see.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::is_app_name;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::AppState;
use nr_auth::perms;

/// A job as the author guide shows it (`nr_jobs::Job` writes this JSON).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Only describes the JSON of `nr_jobs::Job`.
pub(crate) struct Job {
    #[schema(value_type = String, example = "0190f3a2-7c1e-7b44-9a55-1f0e2d3c4b5a")]
    id: Uuid,
    app_name: String,
    /// `pending`, `running`, `completed`, `failed` or `cancelled`.
    status: String,
    /// 0-100.
    progress: i32,
    /// What the app returned, once completed.
    #[schema(value_type = Option<Object>)]
    result: Option<serde_json::Value>,
    error_message: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    created_at: OffsetDateTime,
    #[schema(value_type = String, format = DateTime)]
    updated_at: OffsetDateTime,
    /// Runs so far (the current one included).
    attempt: i32,
    /// Runs the job may have in all; a failed job is re-queued with more.
    max_attempts: i32,
}

/// A job in a listing: everything but its result (read it at `GET /api/async/jobs/{id}`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Only describes the JSON of `nr_jobs::JobSummary`.
pub(crate) struct JobSummary {
    #[schema(value_type = String)]
    id: Uuid,
    app_name: String,
    status: String,
    progress: i32,
    error_message: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    created_at: OffsetDateTime,
    #[schema(value_type = String, format = DateTime)]
    updated_at: OffsetDateTime,
    attempt: i32,
    max_attempts: i32,
}

pub(crate) fn parse_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError::NotFound(format!("job '{id}' not found")))
}

/// Whose jobs the caller sees: everyone's with `jobs:read_all`, else its own.
pub(crate) fn viewer(caller: &Caller) -> nr_jobs::Viewer<'_> {
    if caller.0.has(perms::JOBS_READ_ALL) {
        nr_jobs::Viewer::All
    } else {
        nr_jobs::Viewer::Submitter(&caller.0.sub)
    }
}

/// The job if the caller may see it: its submitter, or a holder of `jobs:read_all`.
/// Anyone else is told it does not exist.
pub(crate) async fn visible_job(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<nr_jobs::Job, ApiError> {
    let uuid = parse_id(id)?;
    let job = nr_jobs::get(&state.db, uuid, viewer(caller))
        .await
        .map_err(|e| anyhow::anyhow!("cannot read job: {e}"))?;
    job.ok_or_else(|| ApiError::NotFound(format!("job '{id}' not found")))
}

/// One job, if the caller submitted it or holds `jobs:read_all`.
#[utoipa::path(
    get,
    path = "/api/async/jobs/{id}",
    tag = "jobs",
    params(("id" = String, Path, description = "The job's id (a UUID)")),
    responses(
        (status = 200, description = "The job", body = Job),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 404, description = "No such job visible to the caller", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn get_job(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<nr_jobs::Job>, ApiError> {
    visible_job(&state, &caller, &id).await.map(Json)
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct JobQuery {
    /// Only jobs in this status.
    #[serde(default)]
    #[param(pattern = "^(pending|running|completed|failed|cancelled)$")]
    status: Option<String>,
    /// Only jobs of this app.
    #[serde(default)]
    app_name: Option<String>,
    /// Every user's jobs (needs `jobs:read_all`).
    #[serde(default)]
    all: bool,
    /// Page size, 1-500 (default 50).
    #[serde(default)]
    limit: Option<i64>,
    /// Cursor: the `id` of the last job of the previous page.
    #[serde(default)]
    before: Option<String>,
}

/// The listing of `GET /api/async/jobs`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Only describes the JSON that `list_jobs` writes.
pub(crate) struct JobPage {
    /// Summaries: no `result`.
    jobs: Vec<JobSummary>,
    /// Pass as `before` for the next page; null on the last page.
    next_before: Option<String>,
}

/// `GET /api/async/jobs`: the caller's jobs, newest first, filtered and paginated.
#[utoipa::path(
    get,
    path = "/api/async/jobs",
    tag = "jobs",
    params(JobQuery),
    responses(
        (status = 200, description = "The caller's jobs (every user's with `all=true`), newest first", body = JobPage),
        (status = 400, description = "A bad filter, cursor or limit (1-500)", body = ErrorBody),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "`all=true` without `jobs:read_all`", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn list_jobs(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    axum::extract::Query(q): axum::extract::Query<JobQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if q.all {
        caller.require(perms::JOBS_READ_ALL)?;
    }
    let status = q
        .status
        .as_deref()
        .map(|s| {
            nr_jobs::parse_status(s).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "status {s:?} must be one of {}",
                    nr_jobs::STATUSES.join(", ")
                ))
            })
        })
        .transpose()?;
    if let Some(a) = &q.app_name {
        if !is_app_name(a) {
            return Err(ApiError::BadRequest(format!(
                "app_name {a:?} is not an app name (letters, digits, _ and -, at most 64)"
            )));
        }
    }
    let before = q
        .before
        .as_deref()
        .map(|b| {
            Uuid::parse_str(b).map_err(|_| {
                ApiError::BadRequest(format!(
                    "before {b:?} must be the id of a job (the next_before of the previous page)"
                ))
            })
        })
        .transpose()?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be from 1 to 500 (got {limit})"
        )));
    }
    let own = nr_jobs::Viewer::Submitter(&caller.0.sub);
    let jobs = nr_jobs::list(
        &state.db,
        &nr_jobs::ListFilter {
            viewer: if q.all { nr_jobs::Viewer::All } else { own },
            status,
            app: q.app_name.as_deref(),
            before,
            limit: limit + 1,
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("cannot list jobs: {e}"))?;
    let more = jobs.len() as i64 > limit;
    let jobs: Vec<nr_jobs::JobSummary> = jobs.into_iter().take(limit as usize).collect();
    let next = if more {
        jobs.last().map(|j| j.id.to_string())
    } else {
        None
    };
    Ok(Json(serde_json::json!({"jobs": jobs, "next_before": next})))
}

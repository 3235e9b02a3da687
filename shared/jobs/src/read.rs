//! Reads of the queue, and the user's writes: cancel and re-queue.

use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::JobStatus;

/// Who looks at jobs: everyone's (`jobs:read_all`) or one subject's own.
#[derive(Debug, Clone, Copy)]
pub enum Viewer<'a> {
    All,
    Submitter(&'a str),
}

impl Viewer<'_> {
    fn binds(&self) -> (bool, &str) {
        match self {
            Viewer::All => (true, ""),
            Viewer::Submitter(s) => (false, s),
        }
    }
}

/// One job in full, as `GET /api/async/jobs/<id>` shows it.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct Job {
    pub id: Uuid,
    pub app_name: String,
    pub status: String,
    pub progress: i32,
    pub result: Option<Value>,
    pub error_message: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    pub attempt: i32,
    pub max_attempts: i32,
    #[serde(skip)]
    pub submitted_by: Option<String>,
}

/// A job in a listing: no result.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct JobSummary {
    pub id: Uuid,
    pub app_name: String,
    pub status: String,
    pub progress: i32,
    pub error_message: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    pub attempt: i32,
    pub max_attempts: i32,
}

const JOB: &str = "id, app_name, status, progress, result, error_message, created_at, updated_at, \
                   attempt, max_attempts, submitted_by";
const SUMMARY: &str =
    "id, app_name, status, progress, error_message, created_at, updated_at, attempt, max_attempts";

/// The job if `viewer` may see it.
pub async fn get(db: &PgPool, id: Uuid, viewer: Viewer<'_>) -> Result<Option<Job>, sqlx::Error> {
    let (all, sub) = viewer.binds();
    sqlx::query_as(&format!(
        "SELECT {JOB} FROM noderouter_core.job_queue WHERE id = $1 AND ($2 OR submitted_by = $3)"
    ))
    .bind(id)
    .bind(all)
    .bind(sub)
    .fetch_optional(db)
    .await
}

/// The kept logs of a job `viewer` may see: `None` when there is no such job.
pub async fn logs(
    db: &PgPool,
    id: Uuid,
    viewer: Viewer<'_>,
) -> Result<Option<(String, Option<String>)>, sqlx::Error> {
    let (all, sub) = viewer.binds();
    sqlx::query_as(
        "SELECT status, logs FROM noderouter_core.job_queue WHERE id = $1 AND ($2 OR submitted_by = $3)",
    )
    .bind(id)
    .bind(all)
    .bind(sub)
    .fetch_optional(db)
    .await
}

/// A listing's filters.
pub struct ListFilter<'a> {
    pub viewer: Viewer<'a>,
    pub status: Option<JobStatus>,
    pub app: Option<&'a str>,
    pub before: Option<Uuid>,
    pub limit: i64,
}

/// Summaries, newest first.
pub async fn list(db: &PgPool, f: &ListFilter<'_>) -> Result<Vec<JobSummary>, sqlx::Error> {
    let (all, sub) = f.viewer.binds();
    sqlx::query_as(&format!(
        "SELECT {SUMMARY} FROM noderouter_core.job_queue \
         WHERE ($1 OR submitted_by = $2) AND ($3::text IS NULL OR status = $3) \
           AND ($4::text IS NULL OR app_name = $4) AND ($5::uuid IS NULL OR id < $5) \
         ORDER BY id DESC LIMIT $6"
    ))
    .bind(all)
    .bind(sub)
    .bind(f.status.map(JobStatus::as_str))
    .bind(f.app)
    .bind(f.before)
    .bind(f.limit)
    .fetch_all(db)
    .await
}

/// A job sent earlier with an idempotency key.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyedJob {
    pub id: Uuid,
    pub app_name: String,
    pub node: Option<String>,
    /// Its status now.
    pub status: String,
    /// Whether it was sent with the payload asked about (JSON equality: key order and
    /// spacing do not count).
    pub same_payload: bool,
}

/// The job a submitter sent earlier with this idempotency key within `window`, compared
/// with `payload`.
pub async fn by_idempotency_key(
    db: &PgPool,
    submitted_by: &str,
    key: &str,
    window: std::time::Duration,
    payload: &serde_json::Value,
) -> Result<Option<KeyedJob>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, app_name, node, status, payload = $4 AS same_payload \
         FROM noderouter_core.job_queue \
         WHERE submitted_by = $1 AND idempotency_key = $2 \
           AND created_at > NOW() - make_interval(secs => $3)",
    )
    .bind(submitted_by)
    .bind(key)
    .bind(window.as_secs_f64())
    .bind(payload)
    .fetch_optional(db)
    .await
}

/// Frees an idempotency key whose job fell out of the window.
pub async fn free_idempotency_key(
    db: &PgPool,
    submitted_by: &str,
    key: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE noderouter_core.job_queue SET idempotency_key = NULL \
         WHERE submitted_by = $1 AND idempotency_key = $2",
    )
    .bind(submitted_by)
    .bind(key)
    .execute(db)
    .await
    .map(|_| ())
}

/// Cancels a pending or running job; `None` when it had already finished. An error of
/// an earlier attempt goes: the job did not end with it.
pub async fn cancel(db: &PgPool, id: Uuid) -> Result<Option<Job>, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE noderouter_core.job_queue SET status = $2, lease_until = NULL, error_message = NULL \
         WHERE id = $1 AND status IN ($3, $4) RETURNING {JOB}"
    ))
    .bind(id)
    .bind(JobStatus::Cancelled.as_str())
    .bind(JobStatus::Pending.as_str())
    .bind(JobStatus::Running.as_str())
    .fetch_optional(db)
    .await
}

/// A job put back in the queue.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Requeued {
    pub id: Uuid,
    pub app_name: String,
    pub app_rev: Option<i64>,
    pub submitted_by: Option<String>,
}

/// Which failed jobs to re-queue.
pub enum RequeueWhat<'a> {
    One(Uuid),
    /// Every failed job of the app (at most `limit`).
    App {
        app: &'a str,
        limit: i64,
    },
}

/// Puts failed jobs back to `pending` with `attempts` more runs (the attempt counter
/// keeps counting, so older attempts stay fenced). An app's jobs in bulk leave out those
/// that never ran (attempt 0: their submit was refused with 503 and the caller told to
/// retry, so its retry may have run the work already); one of them by its id is taken. Only failed jobs `viewer` may see,
/// and none whose payload's `action` is in `barred` (actions the caller may not run,
/// lowercase ASCII slugs): an action is compared with its ASCII letters lowercased, and
/// while anything is barred a job whose action holds a space, a control or a non-ASCII
/// character (a spelling an app may strip or fold into a barred one) is left failed too.
pub async fn requeue(
    db: &PgPool,
    what: RequeueWhat<'_>,
    viewer: Viewer<'_>,
    attempts: i32,
    barred: &[String],
) -> Result<Vec<Requeued>, sqlx::Error> {
    let (all, sub) = viewer.binds();
    let (one, app, limit) = match what {
        RequeueWhat::One(id) => (Some(id), None, 1),
        RequeueWhat::App { app, limit } => (None, Some(app), limit.max(1)),
    };
    sqlx::query_as(
        "UPDATE noderouter_core.job_queue j \
         SET status = $6, max_attempts = j.attempt + $5, not_before = NULL, lease_until = NULL, \
             error_message = NULL, result = NULL, progress = 0 \
         WHERE j.id IN ( \
             SELECT id FROM noderouter_core.job_queue \
             WHERE status = $7 AND ($1::uuid IS NULL OR id = $1) AND ($2::text IS NULL OR app_name = $2) \
               AND ($1::uuid IS NOT NULL OR attempt > 0) \
               AND ($3 OR submitted_by = $4) \
               AND NOT (cardinality($9::text[]) > 0 AND ( \
                   COALESCE(payload->>'action', '') !~ '^[!-~]*$' \
                   OR translate(COALESCE(payload->>'action', ''), \
                        'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') = ANY($9))) \
             ORDER BY id LIMIT $8 FOR UPDATE SKIP LOCKED) \
         RETURNING j.id, j.app_name, j.app_rev, j.submitted_by",
    )
    .bind(one)
    .bind(app)
    .bind(all)
    .bind(sub)
    .bind(attempts.max(1))
    .bind(JobStatus::Pending.as_str())
    .bind(JobStatus::Failed.as_str())
    .bind(limit)
    .bind(barred)
    .fetch_all(db)
    .await
}

/// The `action` a job's payload names, if it names one.
pub async fn action_of(db: &PgPool, id: Uuid) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_as::<_, (Option<String>,)>(
        "SELECT payload->>'action' FROM noderouter_core.job_queue WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await
    .map(|row| row.and_then(|(a,)| a))
}

/// A job's progress (0 when it is gone).
pub async fn progress(db: &PgPool, id: Uuid) -> i32 {
    sqlx::query_as::<_, (i32,)>("SELECT progress FROM noderouter_core.job_queue WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await
        .ok()
        .flatten()
        .map(|(p,)| p)
        .unwrap_or(0)
}

/// A job's status and attempt, if it exists.
pub async fn state(db: &PgPool, id: Uuid) -> Result<Option<(Option<JobStatus>, i32)>, sqlx::Error> {
    let row: Option<(String, i32)> =
        sqlx::query_as("SELECT status, attempt FROM noderouter_core.job_queue WHERE id = $1")
            .bind(id)
            .fetch_optional(db)
            .await?;
    Ok(row.map(|(s, a)| (crate::parse_status(&s), a)))
}

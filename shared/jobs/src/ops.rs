//! Writes to the queue: claim, renew, progress, finish, retry, hand back, cancel,
//! re-queue and prune (submits are in `submit.rs`).

use std::time::Duration;

use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::JobStatus;

/// A job this runner now holds.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: Uuid,
    pub attempt: i32,
    pub max_attempts: i32,
    /// Runs of this job that did not count against its attempts (the platform could
    /// not start them, or a draining runner handed them back).
    pub uncounted: i32,
    pub payload: Value,
    pub submitted_by: Option<String>,
    /// The request id of the submit, if it came through the HTTP API.
    pub request_id: Option<String>,
}

/// Claims every job of `ids` that may run now, in one statement: pending and past its
/// back-off, or running under a lapsed lease, with attempts left. A row someone else
/// holds locked is skipped, not waited for: an app may lock its own job's row (its
/// progress grant allows `SELECT … FOR UPDATE`), and a batch mixes apps.
pub async fn claim(
    db: &PgPool,
    ids: &[Uuid],
    node: &str,
    lease: Duration,
) -> Result<Vec<Claimed>, sqlx::Error> {
    type Row = (Uuid, i32, i32, i32, Value, Option<String>, Option<String>);
    let rows: Vec<Row> = sqlx::query_as(
        "WITH free AS ( \
             SELECT id FROM noderouter_core.job_queue \
             WHERE id = ANY($1) AND attempt < max_attempts \
               AND ((status = $5 AND (not_before IS NULL OR not_before <= NOW())) \
                    OR (status = $4 AND lease_until < NOW())) \
             FOR UPDATE SKIP LOCKED) \
         UPDATE noderouter_core.job_queue j \
         SET status = $4, attempt = j.attempt + 1, node = $2, progress = 0, not_before = NULL, \
             lease_until = NOW() + make_interval(secs => $3) \
         FROM free WHERE j.id = free.id \
         RETURNING j.id, j.attempt, j.max_attempts, j.uncounted, j.payload, j.submitted_by, \
                   j.request_id",
    )
    .bind(ids)
    .bind(node)
    .bind(lease.as_secs_f64())
    .bind(JobStatus::Running.as_str())
    .bind(JobStatus::Pending.as_str())
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(id, attempt, max_attempts, uncounted, payload, submitted_by, request_id)| Claimed {
                id,
                attempt,
                max_attempts,
                uncounted,
                payload,
                submitted_by,
                request_id,
            },
        )
        .collect())
}

/// Why a job was not claimed.
#[derive(Debug, PartialEq)]
pub enum Unclaimed {
    /// Finished, gone, or out of attempts (now failed): drop its work item.
    Done,
    /// Held by a live lease or waiting out its back-off: look again after this.
    Later(Duration),
}

/// Looks at a job [`claim`] did not take. A job out of attempts whose runner stopped
/// under it ends `failed` with the reason (a dead letter).
pub async fn why_unclaimed(
    db: &PgPool,
    id: Uuid,
    lease: Duration,
) -> Result<Unclaimed, sqlx::Error> {
    let state: Option<(String, i32, i32, i32, bool, Option<f64>)> = sqlx::query_as(
        "SELECT status, attempt, max_attempts, attempt - uncounted, \
                COALESCE(lease_until > NOW(), false), \
                EXTRACT(EPOCH FROM (not_before - NOW()))::float8 \
         FROM noderouter_core.job_queue WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await?;
    let Some((status, attempt, max, counted, leased, wait)) = state else {
        return Ok(Unclaimed::Done);
    };
    let status = crate::parse_status(&status);
    match status {
        None => Ok(Unclaimed::Done),
        Some(s) if s.is_final() => Ok(Unclaimed::Done),
        Some(JobStatus::Running) if leased => Ok(Unclaimed::Later(lease)),
        _ if attempt >= max => {
            sqlx::query(
                "UPDATE noderouter_core.job_queue SET status = $4, lease_until = NULL, \
                 error_message = $2 WHERE id = $1 AND status IN ($5, $6) AND attempt = $3",
            )
            .bind(id)
            .bind(format!(
                "the job's runner stopped under it (gave up after {counted} {})",
                if counted == 1 { "attempt" } else { "attempts" }
            ))
            .bind(attempt)
            .bind(JobStatus::Failed.as_str())
            .bind(JobStatus::Pending.as_str())
            .bind(JobStatus::Running.as_str())
            .execute(db)
            .await?;
            Ok(Unclaimed::Done)
        }
        _ => Ok(Unclaimed::Later(
            wait.and_then(|w| Duration::try_from_secs_f64(w).ok())
                .filter(|d| !d.is_zero())
                .unwrap_or(Duration::from_millis(200)),
        )),
    }
}

/// Extends the lease of a running attempt; false when the attempt lost it.
pub async fn renew(
    db: &PgPool,
    id: Uuid,
    attempt: i32,
    lease: Duration,
) -> Result<bool, sqlx::Error> {
    sqlx::query(
        "UPDATE noderouter_core.job_queue SET lease_until = NOW() + make_interval(secs => $3) \
         WHERE id = $1 AND attempt = $2 AND status = $4",
    )
    .bind(id)
    .bind(attempt)
    .bind(lease.as_secs_f64())
    .bind(JobStatus::Running.as_str())
    .execute(db)
    .await
    .map(|r| r.rows_affected() == 1)
}

/// Records progress (0-99) of a running attempt; false when the attempt is not current.
///
/// The caller publishes the value itself, so the write is marked (a transaction-local
/// `noderouter.progress_published`) and not announced on the progress channel, which is
/// for writes made straight to the row (migration 20261130000002).
pub async fn set_progress(
    db: &PgPool,
    id: Uuid,
    attempt: i32,
    percent: i32,
) -> Result<bool, sqlx::Error> {
    sqlx::query(
        "WITH published AS (SELECT set_config('noderouter.progress_published', 'on', true)) \
         UPDATE noderouter_core.job_queue SET progress = $3 FROM published \
         WHERE id = $1 AND attempt = $2 AND status = $4",
    )
    .bind(id)
    .bind(attempt)
    .bind(percent.clamp(0, 99))
    .bind(JobStatus::Running.as_str())
    .execute(db)
    .await
    .map(|r| r.rows_affected() == 1)
}

/// How one attempt ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub id: Uuid,
    pub attempt: i32,
    /// `Completed` or `Failed`.
    pub status: JobStatus,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub logs: Option<String>,
}

/// How long recording outcomes waits for a row lock (2 s): an app may hold its own job's
/// row locked, and one batch carries many apps' outcomes.
const FINISH_LOCK_WAIT: &str = "SET LOCAL lock_timeout = '2s'";

/// Records many outcomes, in one statement when it can. Returns, for each outcome in
/// order, the job's final progress when this attempt still held the job (`Ok(None)`: it
/// had lost it), or why it could not be recorded. When the statement fails (a row
/// stayed locked past [`FINISH_LOCK_WAIT`], or anything else one outcome could cause),
/// each outcome is recorded on its own, so only the failing job's is not (it runs
/// again once its lease lapses) and the others' are recorded.
pub async fn finish_each(db: &PgPool, outcomes: &[Outcome]) -> Vec<Result<Option<i32>, String>> {
    match finish(db, outcomes).await {
        Ok(done) => done.into_iter().map(Ok).collect(),
        Err(e) if outcomes.len() > 1 => {
            if is_lock_timeout(&e) {
                tracing::warn!(
                    outcomes = outcomes.len(),
                    "a job row stayed locked: recording the batch's outcomes one by one"
                );
            } else {
                tracing::warn!(
                    outcomes = outcomes.len(),
                    error = %e,
                    "recording a batch of job outcomes failed: recording them one by one"
                );
            }
            let mut out = Vec::with_capacity(outcomes.len());
            for o in outcomes {
                out.push(match finish(db, std::slice::from_ref(o)).await {
                    Ok(done) => Ok(done.into_iter().next().flatten()),
                    Err(e) => Err(e.to_string()),
                });
            }
            out
        }
        Err(e) => outcomes.iter().map(|_| Err(e.to_string())).collect(),
    }
}

/// Postgres's `lock_not_available` (55P03): `lock_timeout` ran out.
fn is_lock_timeout(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == "55P03")
}

/// Records many outcomes in one statement, waiting at most [`FINISH_LOCK_WAIT`] for a
/// row lock. Returns, for each outcome in order, the job's final progress when this
/// attempt still held the job (`None`: it had lost it).
pub async fn finish(db: &PgPool, outcomes: &[Outcome]) -> Result<Vec<Option<i32>>, sqlx::Error> {
    let ids: Vec<Uuid> = outcomes.iter().map(|o| o.id).collect();
    let attempts: Vec<i32> = outcomes.iter().map(|o| o.attempt).collect();
    let statuses: Vec<&str> = outcomes.iter().map(|o| o.status.as_str()).collect();
    let results: Vec<Option<Value>> = outcomes
        .iter()
        .map(|o| o.result.clone().map(crate::without_nul))
        .collect();
    let errors: Vec<Option<String>> = outcomes
        .iter()
        .map(|o| o.error.clone().map(crate::storable::error_text))
        .collect();
    let logs: Vec<Option<String>> = outcomes
        .iter()
        .map(|o| o.logs.clone().map(crate::storable::text))
        .collect();
    let mut tx = db.begin().await?;
    sqlx::query(FINISH_LOCK_WAIT).execute(&mut *tx).await?;
    let done: Vec<(Uuid, i32)> = sqlx::query_as(
        "UPDATE noderouter_core.job_queue j \
         SET status = u.status, result = u.result, error_message = u.error, logs = u.logs, \
             progress = CASE WHEN u.status = $7 THEN 100 ELSE j.progress END, lease_until = NULL \
         FROM unnest($1::uuid[], $2::int4[], $3::text[], $4::jsonb[], $5::text[], $6::text[]) \
              AS u(id, attempt, status, result, error, logs) \
         WHERE j.id = u.id AND j.attempt = u.attempt AND j.status = $8 \
         RETURNING j.id, j.progress",
    )
    .bind(&ids)
    .bind(&attempts)
    .bind(&statuses)
    .bind(&results)
    .bind(&errors)
    .bind(&logs)
    .bind(JobStatus::Completed.as_str())
    .bind(JobStatus::Running.as_str())
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(ids
        .iter()
        .map(|id| done.iter().find(|(d, _)| d == id).map(|(_, p)| *p))
        .collect())
}

/// Puts a failed attempt back to wait `delay` before its next run; false when the
/// attempt no longer held the job.
pub async fn retry_later(
    db: &PgPool,
    id: Uuid,
    again: Retry,
    error: &str,
    logs: Option<&str>,
) -> Result<bool, sqlx::Error> {
    sqlx::query(
        "UPDATE noderouter_core.job_queue SET status = $6, lease_until = NULL, \
             not_before = NOW() + make_interval(secs => $3), error_message = $4, logs = $5, \
             max_attempts = max_attempts + $8, uncounted = uncounted + $8 \
         WHERE id = $1 AND attempt = $2 AND status = $7",
    )
    .bind(id)
    .bind(again.attempt)
    .bind(again.delay.as_secs_f64())
    .bind(crate::storable::error_text(error.to_owned()))
    .bind(logs.map(|l| crate::storable::text(l.to_owned())))
    .bind(JobStatus::Pending.as_str())
    .bind(JobStatus::Running.as_str())
    .bind(i32::from(!again.counted))
    .execute(db)
    .await
    .map(|r| r.rows_affected() == 1)
}

/// A failed run to try again: which one, after how long, and whether it counts
/// against the job's attempts (a run the platform could not start does not).
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub attempt: i32,
    pub delay: Duration,
    pub counted: bool,
}

/// Hands a running attempt back to the queue at once, not counting it (a runner
/// draining on SIGTERM): any runner may claim it now.
pub async fn hand_back(db: &PgPool, id: Uuid, attempt: i32) -> Result<bool, sqlx::Error> {
    sqlx::query(
        "UPDATE noderouter_core.job_queue SET status = $3, lease_until = NULL, not_before = NULL, \
             max_attempts = max_attempts + 1, uncounted = uncounted + 1, progress = 0 \
         WHERE id = $1 AND attempt = $2 AND status = $4",
    )
    .bind(id)
    .bind(attempt)
    .bind(JobStatus::Pending.as_str())
    .bind(JobStatus::Running.as_str())
    .execute(db)
    .await
    .map(|r| r.rows_affected() == 1)
}

/// Deletes finished jobs (completed, failed, cancelled) last changed more than `age`
/// ago, `batch` rows per statement, so no statement holds many locks or runs long.
/// Returns how many were deleted.
pub async fn prune(db: &PgPool, age: Duration, batch: i64) -> Result<u64, sqlx::Error> {
    let mut total = 0;
    loop {
        let n = sqlx::query(
            "DELETE FROM noderouter_core.job_queue WHERE id IN ( \
                 SELECT id FROM noderouter_core.job_queue \
                 WHERE status IN ($3, $4, $5) AND updated_at < NOW() - make_interval(secs => $1) \
                 ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
        )
        .bind(age.as_secs_f64())
        .bind(batch.max(1))
        .bind(JobStatus::Completed.as_str())
        .bind(JobStatus::Failed.as_str())
        .bind(JobStatus::Cancelled.as_str())
        .execute(db)
        .await?
        .rows_affected();
        total += n;
        if n < batch.max(1) as u64 {
            return Ok(total);
        }
        tokio::task::yield_now().await;
    }
}

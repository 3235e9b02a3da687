//! Submits: one job, or many in one statement (what the gateway's batcher writes under
//! load: one INSERT and one commit for every submit waiting, however many).

use std::collections::HashSet;

use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::JobStatus;

/// A job to queue.
pub struct NewJob<'a> {
    pub id: Uuid,
    pub app: &'a str,
    pub payload: &'a Value,
    /// Runs in all, the first included.
    pub max_attempts: i32,
    pub app_rev: i64,
    pub submitted_by: &'a str,
    pub idempotency_key: Option<&'a str>,
    pub node: &'a str,
    /// The request id of the submit (`X-Request-Id`), carried by the job's log lines.
    pub request_id: Option<&'a str>,
}

/// [`NewJob`] with owned fields, to hand to a batcher.
#[derive(Debug, Clone)]
pub struct QueuedJob {
    pub id: Uuid,
    pub app: String,
    pub payload: Value,
    pub max_attempts: i32,
    pub app_rev: i64,
    pub submitted_by: String,
    pub idempotency_key: Option<String>,
    pub node: String,
    pub request_id: Option<String>,
}

impl QueuedJob {
    pub fn as_new(&self) -> NewJob<'_> {
        NewJob {
            id: self.id,
            app: &self.app,
            payload: &self.payload,
            max_attempts: self.max_attempts,
            app_rev: self.app_rev,
            submitted_by: &self.submitted_by,
            idempotency_key: self.idempotency_key.as_deref(),
            node: &self.node,
            request_id: self.request_id.as_deref(),
        }
    }
}

pub async fn submit(db: &PgPool, job: &NewJob<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO noderouter_core.job_queue \
             (id, app_name, payload, status, max_attempts, app_rev, submitted_by, idempotency_key, node, request_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(job.id)
    .bind(job.app)
    .bind(job.payload)
    .bind(JobStatus::Pending.as_str())
    .bind(job.max_attempts.max(1))
    .bind(job.app_rev)
    .bind(job.submitted_by)
    .bind(job.idempotency_key)
    .bind(job.node)
    .bind(job.request_id)
    .execute(db)
    .await
    .map(|_| ())
}

/// Records many jobs in one statement. Returns, for each job in order, whether it was
/// queued; `false` when its id, or its submitter's `Idempotency-Key`, is taken (also by
/// an earlier job of the same batch).
pub async fn submit_many(db: &PgPool, jobs: &[QueuedJob]) -> Result<Vec<bool>, sqlx::Error> {
    let ids: Vec<Uuid> = jobs.iter().map(|j| j.id).collect();
    let apps: Vec<&str> = jobs.iter().map(|j| j.app.as_str()).collect();
    let payloads: Vec<&Value> = jobs.iter().map(|j| &j.payload).collect();
    let attempts: Vec<i32> = jobs.iter().map(|j| j.max_attempts.max(1)).collect();
    let revs: Vec<i64> = jobs.iter().map(|j| j.app_rev).collect();
    let subs: Vec<&str> = jobs.iter().map(|j| j.submitted_by.as_str()).collect();
    let keys: Vec<Option<&str>> = jobs.iter().map(|j| j.idempotency_key.as_deref()).collect();
    let nodes: Vec<&str> = jobs.iter().map(|j| j.node.as_str()).collect();
    let rids: Vec<Option<&str>> = jobs.iter().map(|j| j.request_id.as_deref()).collect();
    // WITH ORDINALITY keeps the batch's order, so of two submits with the same key the
    // first one queued wins, as it would one statement at a time.
    let queued: Vec<(Uuid,)> = sqlx::query_as(
        "INSERT INTO noderouter_core.job_queue \
             (id, app_name, payload, status, max_attempts, app_rev, submitted_by, idempotency_key, node, request_id) \
         SELECT u.id, u.app, u.payload, $9, u.attempts, u.rev, u.sub, u.key, u.node, u.rid \
         FROM unnest($1::uuid[], $2::text[], $3::jsonb[], $4::int4[], $5::int8[], $6::text[], \
                     $7::text[], $8::text[], $10::text[]) WITH ORDINALITY \
              AS u(id, app, payload, attempts, rev, sub, key, node, rid, n) \
         ORDER BY u.n \
         ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(&ids)
    .bind(&apps)
    .bind(&payloads)
    .bind(&attempts)
    .bind(&revs)
    .bind(&subs)
    .bind(&keys)
    .bind(&nodes)
    .bind(JobStatus::Pending.as_str())
    .bind(&rids)
    .fetch_all(db)
    .await?;
    let queued: HashSet<Uuid> = queued.into_iter().map(|(id,)| id).collect();
    Ok(ids.iter().map(|id| queued.contains(id)).collect())
}

/// Marks a job that could not be queued as failed, and frees its Idempotency-Key.
pub async fn fail_unqueued(db: &PgPool, id: Uuid, reason: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        // The key goes with it: the client was told the submit failed, and its retry under
        // the same key must queue the job, not be answered with this one.
        "UPDATE noderouter_core.job_queue SET status = $2, error_message = $3, idempotency_key = NULL WHERE id = $1",
    )
    .bind(id)
    .bind(JobStatus::Failed.as_str())
    .bind(reason)
    .execute(db)
    .await
    .map(|_| ())
}

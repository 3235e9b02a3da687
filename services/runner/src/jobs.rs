//! Async jobs: claimed from the `NR_JOBS` work queue, run one per forked worker, their
//! row in `noderouter_core.job_queue` fenced by attempt number.
//!
//! The row is the authority. A claim bumps `attempt` and takes a lease that the holder
//! renews; every later write (progress, completion) names the attempt, so a runner that
//! lost its lease (it stalled, or was killed and the job re-run elsewhere) changes
//! nothing. A JetStream message is acked only once its job is final.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer, AckKind};
use futures::StreamExt;
use nr_contracts::events::{JobProgress, JobStatus, JobSubmitted, JOB_PROGRESS};
use nr_contracts::{decode, subjects, Envelope};
use sqlx::PgPool;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::host::{CallError, Progress};
use crate::{HostError, Inner};

const CONSUMER: &str = "runner-jobs";

/// A job this runner is running.
struct Running {
    app: String,
    attempt: i32,
    cancel: CancellationToken,
    last_progress: i32,
    submitted_by: Option<String>,
}

#[derive(Default)]
pub(crate) struct JobTable {
    running: Mutex<HashMap<Uuid, Running>>,
}

impl JobTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) async fn start(inner: Arc<Inner>, shutdown: CancellationToken) -> anyhow::Result<()> {
    let lease = inner.lease();
    let stream = inner
        .js
        .get_stream(subjects::STREAM_JOBS)
        .await
        .context("cannot open NR_JOBS")?;
    let consumer = stream
        .get_or_create_consumer(
            CONSUMER,
            consumer::pull::Config {
                durable_name: Some(CONSUMER.into()),
                filter_subject: subjects::JOB_SUBMITTED_ALL.into(),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: lease,
                max_ack_pending: 10_000,
                ..Default::default()
            },
        )
        .await
        .context("cannot create the job consumer")?;
    let slots = inner.config.job_concurrency();
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(slots)
        .messages()
        .await
        .context("cannot read NR_JOBS")?;
    let permits = Arc::new(Semaphore::new(slots));

    // Cancellation requests from the gateway.
    let mut cancels = inner
        .nats
        .subscribe(subjects::JOB_CANCEL_ALL)
        .await
        .map_err(|e| anyhow::anyhow!("cannot subscribe to job cancellations: {e}"))?;
    {
        let inner = inner.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            loop {
                let msg = tokio::select! {
                    _ = stop.cancelled() => break,
                    m = cancels.next() => m,
                };
                let Some(msg) = msg else { break };
                let id = msg
                    .subject
                    .as_str()
                    .rsplit('.')
                    .next()
                    .and_then(|s| Uuid::parse_str(s).ok());
                if let Some(id) = id {
                    if let Some(r) = inner.jobs.lock().get(&id) {
                        r.cancel.cancel();
                    }
                }
            }
        });
    }

    // Progress written straight to the row by the app.
    listen_progress(inner.clone(), shutdown.clone()).await?;

    tokio::spawn(async move {
        loop {
            let permit = tokio::select! {
                _ = shutdown.cancelled() => break,
                p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            };
            let next = tokio::select! {
                _ = shutdown.cancelled() => break,
                n = messages.next() => n,
            };
            let msg = match next {
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "job consumer error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                None => break,
            };
            let inner = inner.clone();
            tokio::spawn(async move {
                handle(inner, msg).await;
                drop(permit);
            });
        }
    });
    Ok(())
}

async fn listen_progress(inner: Arc<Inner>, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut listener = sqlx::postgres::PgListener::connect_with(&inner.db)
        .await
        .context("cannot listen for job progress")?;
    listener.listen("nr_job_progress").await?;
    tokio::spawn(async move {
        loop {
            let n = tokio::select! {
                _ = shutdown.cancelled() => break,
                n = listener.recv() => n,
            };
            let Ok(n) = n else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            let mut parts = n.payload().split(' ');
            let (Some(id), Some(p)) = (parts.next(), parts.next()) else {
                continue;
            };
            let (Ok(id), Ok(p)) = (Uuid::parse_str(id), p.parse::<i32>()) else {
                continue;
            };
            inner.report_progress(id, p.min(99), None).await;
        }
    });
    Ok(())
}

enum Claim {
    Run {
        attempt: i32,
        payload: serde_json::Value,
        submitted_by: Option<String>,
    },
    Done,
    Later(Duration),
}

async fn claim(db: &PgPool, id: Uuid, node: &str, lease: Duration) -> anyhow::Result<Claim> {
    let row: Option<(i32, serde_json::Value, Option<String>)> = sqlx::query_as(
        "UPDATE noderouter_core.job_queue \
         SET status = 'running', attempt = attempt + 1, node = $2, progress = 0, \
             lease_until = NOW() + make_interval(secs => $3) \
         WHERE id = $1 AND attempt < max_attempts \
           AND (status = 'pending' OR (status = 'running' AND lease_until < NOW())) \
         RETURNING attempt, payload, submitted_by",
    )
    .bind(id)
    .bind(node)
    .bind(lease.as_secs_f64())
    .fetch_optional(db)
    .await?;
    if let Some((attempt, payload, submitted_by)) = row {
        return Ok(Claim::Run {
            attempt,
            payload,
            submitted_by,
        });
    }
    let state: Option<(String, i32, i32, bool)> = sqlx::query_as(
        "SELECT status, attempt, max_attempts, COALESCE(lease_until > NOW(), false) \
         FROM noderouter_core.job_queue WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await?;
    match state {
        None => Ok(Claim::Done),
        Some((status, _, _, _)) if status != "pending" && status != "running" => Ok(Claim::Done),
        Some((status, _, _, true)) if status == "running" => Ok(Claim::Later(lease)),
        Some((_, attempt, max, _)) if attempt >= max => {
            sqlx::query(
                "UPDATE noderouter_core.job_queue SET status = 'failed', lease_until = NULL, \
                 error_message = $2 WHERE id = $1 AND status IN ('pending', 'running') AND attempt = $3",
            )
            .bind(id)
            .bind(format!("the job was interrupted {attempt} times (its runner stopped); giving up"))
            .bind(attempt)
            .execute(db)
            .await?;
            Ok(Claim::Done)
        }
        Some(_) => Ok(Claim::Later(Duration::from_millis(500))),
    }
}

async fn handle(inner: Arc<Inner>, msg: jetstream::Message) {
    let job: JobSubmitted = match decode::<Envelope<JobSubmitted>>(&msg.payload) {
        Ok(j) => j.data,
        Err(e) => {
            tracing::warn!(error = %e, "undecodable job.submitted dropped");
            let _ = msg.ack_with(AckKind::Term).await;
            return;
        }
    };
    let Ok(id) = Uuid::parse_str(&job.job_id) else {
        let _ = msg.ack_with(AckKind::Term).await;
        return;
    };
    let lease = inner.lease();
    let claimed = claim(&inner.db, id, &inner.id, lease).await;
    let (attempt, payload, submitted_by) = match claimed {
        Ok(Claim::Run {
            attempt,
            payload,
            submitted_by,
        }) => (attempt, payload, submitted_by),
        Ok(Claim::Done) => {
            let _ = msg.ack().await;
            return;
        }
        Ok(Claim::Later(delay)) => {
            let _ = msg.ack_with(AckKind::Nak(Some(delay))).await;
            return;
        }
        Err(e) => {
            tracing::error!(job = %id, error = %e, "cannot claim job");
            let _ = msg
                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
            return;
        }
    };
    let cancel = CancellationToken::new();
    inner.jobs.lock().insert(
        id,
        Running {
            app: job.app_name.clone(),
            attempt,
            cancel: cancel.clone(),
            last_progress: 0,
            submitted_by: submitted_by.clone(),
        },
    );
    inner
        .publish_progress(
            id,
            &job.app_name,
            JobStatus::Running,
            0,
            None,
            submitted_by.clone(),
        )
        .await;

    // Keep the lease (and the message) while the job runs; losing it stops the job.
    let renew = {
        let inner = inner.clone();
        let cancel = cancel.clone();
        let msg_ack = msg.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(lease / 3);
            tick.tick().await;
            loop {
                tick.tick().await;
                let kept = sqlx::query(
                    "UPDATE noderouter_core.job_queue SET lease_until = NOW() + make_interval(secs => $3) \
                     WHERE id = $1 AND attempt = $2 AND status = 'running'",
                )
                .bind(id)
                .bind(attempt)
                .bind(lease.as_secs_f64())
                .execute(&inner.db)
                .await
                .map(|r| r.rows_affected());
                match kept {
                    Ok(0) => {
                        cancel.cancel();
                        break;
                    }
                    Ok(_) => {
                        let _ = msg_ack.ack_with(AckKind::Progress).await;
                    }
                    Err(e) => tracing::warn!(job = %id, error = %e, "lease renewal failed"),
                }
            }
        })
    };

    let outcome = run(&inner, &job, id, attempt, &payload, cancel.clone()).await;
    renew.abort();
    inner.jobs.lock().remove(&id);

    let finish = |status: JobStatus, result: Option<serde_json::Value>, error: Option<String>| {
        let inner = inner.clone();
        let app = job.app_name.clone();
        let submitted_by = submitted_by.clone();
        async move {
            let done = sqlx::query(
                "UPDATE noderouter_core.job_queue SET status = $3, result = $4, error_message = $5, \
                     progress = CASE WHEN $3 = 'completed' THEN 100 ELSE progress END, lease_until = NULL \
                 WHERE id = $1 AND attempt = $2 AND status = 'running'",
            )
            .bind(id)
            .bind(attempt)
            .bind(status.as_str())
            .bind(result)
            .bind(error)
            .execute(&inner.db)
            .await;
            match done {
                Ok(r) if r.rows_affected() == 1 => {
                    nr_telemetry::metrics().job(&app, status.as_str());
                    let progress = if status == JobStatus::Completed {
                        100
                    } else {
                        inner.job_progress(id).await
                    };
                    inner
                        .publish_progress(id, &app, status, progress, None, submitted_by)
                        .await;
                    true
                }
                Ok(_) => false,
                Err(e) => {
                    tracing::error!(job = %id, error = %e, "cannot record job outcome");
                    false
                }
            }
        }
    };

    match outcome {
        Ok((result, actions, host)) => {
            if finish(JobStatus::Completed, Some(result), None).await && !actions.is_empty() {
                crate::exec::publish_actions(
                    &inner,
                    &job.app_name,
                    &host.manifest,
                    actions,
                    None,
                    Some(id.to_string()),
                )
                .await;
            }
            let _ = msg.ack().await;
        }
        Err(JobFailure::Cancelled) => {
            // Cancelled by a user (the row says so) or the lease was lost to another
            // runner, whose delivery of the message will be acked.
            let status: Option<(String, i32)> = sqlx::query_as(
                "SELECT status, attempt FROM noderouter_core.job_queue WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(&inner.db)
            .await
            .ok()
            .flatten();
            if matches!(&status, Some((s, a)) if s == "cancelled" && *a == attempt)
                || status.is_none()
            {
                let _ = msg.ack().await;
            }
        }
        Err(JobFailure::Retry(reason)) => {
            tracing::warn!(job = %id, reason = %reason, "job will be retried");
            let _ = sqlx::query(
                "UPDATE noderouter_core.job_queue SET status = 'pending', lease_until = NULL \
                 WHERE id = $1 AND attempt = $2 AND status = 'running'",
            )
            .bind(id)
            .bind(attempt)
            .execute(&inner.db)
            .await;
            let _ = msg
                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
        }
        Err(JobFailure::Failed(error)) => {
            finish(JobStatus::Failed, None, Some(error)).await;
            let _ = msg.ack().await;
        }
    }
}

enum JobFailure {
    Failed(String),
    Cancelled,
    Retry(String),
}

type JobOutput = (
    serde_json::Value,
    Vec<crate::host::FiredAction>,
    Arc<crate::host::AppHost>,
);

async fn run(
    inner: &Arc<Inner>,
    job: &JobSubmitted,
    id: Uuid,
    attempt: i32,
    payload: &serde_json::Value,
    cancel: CancellationToken,
) -> Result<JobOutput, JobFailure> {
    let host = match inner.host_for(&job.app_name, job.app_rev).await {
        Ok(h) => h,
        Err(HostError::NotFound(_)) => {
            return Err(JobFailure::Failed(format!(
                "app '{}' is not deployed",
                job.app_name
            )))
        }
        Err(e @ HostError::LoadFailed { .. }) => return Err(JobFailure::Failed(e.to_string())),
        Err(HostError::Internal(e)) => return Err(JobFailure::Retry(e)),
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<Progress>();
    let reporter = {
        let inner = inner.clone();
        tokio::spawn(async move {
            while let Some(p) = rx.recv().await {
                let written = sqlx::query(
                    "UPDATE noderouter_core.job_queue SET progress = $3 \
                     WHERE id = $1 AND attempt = $2 AND status = 'running'",
                )
                .bind(id)
                .bind(attempt)
                .bind(p.percent.clamp(0, 99))
                .execute(&inner.db)
                .await;
                if matches!(written, Ok(r) if r.rows_affected() == 1) {
                    inner
                        .report_progress(id, p.percent.clamp(0, 99), p.message)
                        .await;
                }
            }
        })
    };
    let body = serde_json::to_vec(payload).unwrap_or_else(|_| b"{}".to_vec());
    let limit = host
        .manifest
        .job_timeout_s
        .map(nr_contracts::manifest::Seconds::duration)
        .unwrap_or_else(|| nr_contracts::manifest::duration_or(inner.config.job_timeout_s, 300.0));
    let outcome = host
        .run_job(&body, &id.to_string(), limit, tx, cancel)
        .await;
    let _ = reporter.await;
    match outcome {
        Ok(reply) => {
            let result: serde_json::Value =
                serde_json::from_slice(&reply.body).unwrap_or(serde_json::Value::Null);
            Ok((result, reply.actions, host))
        }
        Err(CallError::Exception { error, traceback }) => {
            tracing::warn!(job = %id, app = %job.app_name, error = %error, traceback = %traceback, "job raised");
            Err(JobFailure::Failed(error))
        }
        Err(CallError::Timeout(limit)) => Err(JobFailure::Failed(format!(
            "job timed out after {} s",
            limit.as_secs_f64()
        ))),
        Err(CallError::Crashed(m)) => Err(JobFailure::Failed(m)),
        Err(CallError::Cancelled) => Err(JobFailure::Cancelled),
        Err(CallError::Unavailable(m)) => Err(JobFailure::Retry(m)),
    }
}

impl Inner {
    fn lease(&self) -> Duration {
        nr_contracts::manifest::duration_or(self.config.job_lease_s.max(1.0), 30.0)
    }

    async fn job_progress(&self, id: Uuid) -> i32 {
        sqlx::query_as::<_, (i32,)>("SELECT progress FROM noderouter_core.job_queue WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.db)
            .await
            .ok()
            .flatten()
            .map(|(p,)| p)
            .unwrap_or(0)
    }

    /// Publishes a running job's progress once per distinct value.
    async fn report_progress(&self, id: Uuid, progress: i32, message: Option<String>) {
        let target = {
            let mut jobs = self.jobs.lock();
            match jobs.get_mut(&id) {
                Some(r) if r.last_progress != progress => {
                    r.last_progress = progress;
                    Some((r.app.clone(), r.submitted_by.clone(), r.attempt))
                }
                _ => None,
            }
        };
        if let Some((app, submitted_by, _)) = target {
            self.publish_progress(
                id,
                &app,
                JobStatus::Running,
                progress,
                message,
                submitted_by,
            )
            .await;
        }
    }

    async fn publish_progress(
        &self,
        id: Uuid,
        app: &str,
        status: JobStatus,
        progress: i32,
        message: Option<String>,
        submitted_by: Option<String>,
    ) {
        let event = Envelope::new(
            JOB_PROGRESS,
            &self.id,
            JobProgress {
                job_id: id.to_string(),
                app_name: app.to_owned(),
                status,
                progress,
                message,
                submitted_by,
            },
        );
        let subject = subjects::job_progress(app, &id.to_string());
        if let Err(e) = nr_infra::bus::publish_event(&self.js, &subject, &event, None).await {
            tracing::warn!(job = %id, error = %e, "cannot publish job progress");
        }
    }
}

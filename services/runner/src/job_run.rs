//! One job's run on this runner: claim, lease renewal, the call on a job worker,
//! and what its outcome does to the row (finish, retry with back-off, hand back).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use nr_contracts::events::{JobStatus, JobSubmitted};
use nr_contracts::manifest::JobRetry;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::host::{CallError, JobError, Progress};
use crate::jobs::Running;
use crate::text::{clean, MAX_LINE, MAX_TRACEBACK};
use crate::{HostError, Inner};

pub(crate) async fn handle(
    inner: Arc<Inner>,
    msg: jetstream::Message,
    job: JobSubmitted,
    id: Uuid,
    slots: (OwnedSemaphorePermit, OwnedSemaphorePermit),
) {
    let lease = inner.lease();
    let claims = inner
        .jobs
        .claims
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let claimed = match claims {
        Some(b) => b.call(id).await,
        None => None,
    };
    let claimed = match claimed {
        Some(Ok(Some(c))) => c,
        Some(Ok(None)) => {
            match nr_jobs::why_unclaimed(&inner.db, id, lease).await {
                Ok(nr_jobs::Unclaimed::Done) => {
                    // A runner may have died between recording the outcome and
                    // publishing it: publish the final event again; its id is derived
                    // from the job and attempt, so JetStream drops it if it was sent.
                    let published = match nr_jobs::get(&inner.db, id, nr_jobs::Viewer::All).await {
                        Ok(Some(row)) => match nr_jobs::parse_status(&row.status)
                            .filter(|s| matches!(s, JobStatus::Completed | JobStatus::Failed))
                        {
                            Some(status) => {
                                inner
                                    .publish_final(
                                        id,
                                        &row.app_name,
                                        (status, row.progress),
                                        row.error_message,
                                        row.submitted_by,
                                        row.attempt,
                                    )
                                    .await
                            }
                            None => true,
                        },
                        Ok(None) => true,
                        Err(_) => false,
                    };
                    // Until the final event is in the stream, the work item comes back.
                    let _ = if published {
                        msg.ack().await
                    } else {
                        msg.ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                            .await
                    };
                }
                Ok(nr_jobs::Unclaimed::Later(d)) => {
                    let _ = msg.ack_with(AckKind::Nak(Some(d))).await;
                }
                Err(e) => {
                    tracing::error!(job = %id, error = %e, "cannot read job");
                    let _ = msg
                        .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                        .await;
                }
            }
            return;
        }
        Some(Err(e)) => {
            tracing::error!(job = %id, error = %e, "cannot claim job");
            let _ = msg
                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
            return;
        }
        None => {
            let _ = msg
                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
            return;
        }
    };
    let attempt = claimed.attempt;
    let submitted_by = claimed.submitted_by.clone();
    let cancel = CancellationToken::new();
    inner.jobs.lock().insert(
        id,
        Running {
            app: job.app_name.clone(),
            attempt,
            cancel: cancel.clone(),
            last_progress: 0,
            last_message: None,
            submitted_by: submitted_by.clone(),
            progress_tokens: crate::job_progress::PROGRESS_BURST,
            progress_at: std::time::Instant::now(),
            progress_held: None,
            flushing: false,
            log_tokens: crate::job_progress::LOG_BURST,
            logs_at: std::time::Instant::now(),
            logs_dropped: 0,
        },
    );
    if inner
        .jobs
        .draining
        .load(std::sync::atomic::Ordering::SeqCst)
    {
        cancel.cancel();
    }
    inner
        .publish_running(id, &job.app_name, submitted_by.clone())
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
                match nr_jobs::renew(&inner.db, id, attempt, lease).await {
                    Ok(false) => {
                        cancel.cancel();
                        break;
                    }
                    Ok(true) => {
                        let _ = msg_ack.ack_with(AckKind::Progress).await;
                    }
                    Err(e) => tracing::warn!(job = %id, error = %e, "lease renewal failed"),
                }
            }
        })
    };

    let (outcome, retry) = run(&inner, &job, id, &claimed, cancel).await;
    // The worker is free (back in the pool or replaced): the app's and the runner's
    // slots go to the next job while this one's outcome is written.
    drop(slots);
    renew.abort();
    inner.jobs.lock().remove(&id);
    let retry = retry.unwrap_or_default();
    let app = job.app_name.clone();
    let finish = |status: JobStatus,
                  result: Option<serde_json::Value>,
                  error: Option<String>,
                  logs: Option<String>| {
        let inner = inner.clone();
        let app = app.clone();
        let submitted_by = submitted_by.clone();
        async move {
            let batcher = inner
                .jobs
                .finishes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            // As the row keeps it (cut to its limit), so the event fits the bus.
            let message = error.clone().map(nr_jobs::error_text);
            let outcome = nr_jobs::Outcome {
                id,
                attempt,
                status,
                result,
                error,
                logs,
            };
            let done = match batcher {
                Some(b) => b.call(outcome).await,
                None => None,
            };
            match done {
                Some(Ok(Some(progress))) => {
                    nr_telemetry::metrics().job(&app, status.as_str());
                    if inner
                        .publish_final(id, &app, (status, progress), message, submitted_by, attempt)
                        .await
                    {
                        Recorded::Yes
                    } else {
                        Recorded::Unpublished
                    }
                }
                // Fenced out: another attempt owns the row now.
                Some(Ok(None)) => Recorded::Fenced,
                Some(Err(e)) => {
                    tracing::error!(job = %id, error = %e, "cannot record job outcome");
                    Recorded::Failed
                }
                None => Recorded::Failed,
            }
        }
    };
    let attempts_left = attempt < claimed.max_attempts;
    // The runs that count against the job's attempts (the retry back-off and the
    // dead letter's message use them).
    let counted = attempt - claimed.uncounted;
    match outcome {
        Ok((reply, host)) => {
            // The host checks what a job's result may hold; one that still cannot be
            // read fails the job, saying so, rather than completing with no result.
            // An empty body (a reply frame an app wrote itself) has no result, as before.
            let parsed = if reply.body.is_empty() {
                Ok(serde_json::Value::Null)
            } else {
                serde_json::from_slice(&reply.body)
            };
            let result: serde_json::Value = match parsed {
                Ok(v) => v,
                Err(e) => {
                    let error = format!(
                        "execute() returned a result the job queue cannot keep: it does not read back as JSON ({e})"
                    );
                    let recorded = finish(JobStatus::Failed, None, Some(error), reply.logs).await;
                    ack_recorded(&msg, recorded).await;
                    return;
                }
            };
            let recorded = finish(JobStatus::Completed, Some(result), None, reply.logs).await;
            if recorded == Recorded::Failed {
                // Postgres is away: the lease runs out and the job is claimed again.
                let _ = msg
                    .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                    .await;
                return;
            }
            if matches!(recorded, Recorded::Yes | Recorded::Unpublished)
                && !reply.actions.is_empty()
            {
                crate::exec::publish_actions(
                    &inner,
                    &job.app_name,
                    &host.manifest,
                    reply.actions,
                    None,
                    Some(id.to_string()),
                )
                .await;
            }
            ack_recorded(&msg, recorded).await;
        }
        Err(Failure {
            kind: Kind::Cancelled,
            ..
        }) => {
            if inner
                .jobs
                .draining
                .load(std::sync::atomic::Ordering::SeqCst)
            {
                // Handed back at once: not counted, any runner may take it now.
                if matches!(nr_jobs::hand_back(&inner.db, id, attempt).await, Ok(true)) {
                    inner
                        .publish_progress(
                            id,
                            &app,
                            JobStatus::Pending,
                            0,
                            None,
                            submitted_by.clone(),
                        )
                        .await;
                    let _ = msg.ack_with(AckKind::Nak(None)).await;
                    return;
                }
            }
            // Cancelled by a user (the row says so) or the lease was lost to another
            // runner, whose delivery of the message will be acked.
            let state = nr_jobs::state(&inner.db, id).await.ok().flatten();
            if matches!(state, Some((Some(JobStatus::Cancelled), a)) if a == attempt)
                || state.is_none()
            {
                let _ = msg.ack().await;
            }
        }
        Err(Failure { kind, error, logs }) => {
            let retries = match kind {
                Kind::Lost | Kind::Unavailable => true,
                Kind::Raised => retry.on_exception(),
                Kind::Final | Kind::Cancelled => false,
            };
            // The platform could not start the job (its bundle unreadable, a worker
            // that could not be started or open the app's database connection): the
            // app's code did not run, so the run is not counted and the job waits for
            // the platform. Up to MAX_UNCOUNTED such runs: an app can claim the
            // platform's trouble in a reply frame it writes itself, and some troubles
            // need the operator.
            let uncounted = matches!(kind, Kind::Unavailable) && claimed.uncounted < MAX_UNCOUNTED;
            if uncounted || (retries && attempts_left) {
                let delay = match kind {
                    Kind::Unavailable if uncounted => platform_delay(claimed.uncounted),
                    _ => retry.delay(counted),
                };
                tracing::warn!(job = %id, attempt, delay_s = delay.as_secs_f64(), counted = !uncounted, reason = %error, "job will be retried");
                let again = nr_jobs::Retry {
                    attempt,
                    delay,
                    counted: !uncounted,
                };
                if matches!(
                    nr_jobs::retry_later(&inner.db, id, again, &error, logs.as_deref()).await,
                    Ok(true)
                ) {
                    let note =
                        nr_jobs::error_text(format!("retry in {} s: {error}", delay.as_secs_f64()));
                    inner
                        .publish_progress(
                            id,
                            &app,
                            JobStatus::Pending,
                            0,
                            Some(note),
                            submitted_by.clone(),
                        )
                        .await;
                }
                let _ = msg.ack_with(AckKind::Nak(Some(delay))).await;
                return;
            }
            let error = if retries {
                format!("{error} (gave up after {counted} attempts)")
            } else {
                error
            };
            let recorded = finish(JobStatus::Failed, None, Some(error), logs).await;
            ack_recorded(&msg, recorded).await;
        }
    }
}

/// Acks the work item once the outcome is recorded and its final event published;
/// otherwise it comes back in a second and the redelivery publishes the event again
/// (deduplicated by its id) or records the outcome.
async fn ack_recorded(msg: &jetstream::Message, recorded: Recorded) {
    let _ = match recorded {
        Recorded::Yes | Recorded::Fenced => msg.ack().await,
        Recorded::Unpublished | Recorded::Failed => {
            msg.ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await
        }
    };
}

/// What recording a job's outcome came to.
#[derive(PartialEq, Eq)]
enum Recorded {
    Yes,
    /// Recorded, but the final event could not be published (NATS moving leaders).
    Unpublished,
    /// Another attempt owns the row: nothing to do.
    Fenced,
    /// The database did not take it: the work item must come back.
    Failed,
}

/// The wait before a job the platform could not start is tried again, after
/// `uncounted` such runs: 1 s, doubling to 30 s, so a long outage is not a storm of
/// claims.
fn platform_delay(uncounted: i32) -> Duration {
    let doublings = uncounted.clamp(0, 5) as u32;
    Duration::from_secs((1u64 << doublings).min(30))
}

/// Runs the platform could not start that a job waits through without counting them:
/// about a day at 30 s apart. Past them such runs count, and the job can fail.
const MAX_UNCOUNTED: i32 = 2880;

/// Why a run failed, as far as retrying goes.
enum Kind {
    /// `execute` raised or timed out.
    Raised,
    /// The worker died under the job.
    Lost,
    /// The platform could not start the app's code now (its bundle, database or a
    /// worker unavailable): retried without counting the run.
    Unavailable,
    /// Never worth retrying (the app is not deployed or does not load).
    Final,
    Cancelled,
}

struct Failure {
    kind: Kind,
    error: String,
    logs: Option<String>,
}

type JobOutput = (crate::host::CallReply, Arc<crate::host::AppHost>);

async fn run(
    inner: &Arc<Inner>,
    job: &JobSubmitted,
    id: Uuid,
    claimed: &nr_jobs::Claimed,
    cancel: CancellationToken,
) -> (Result<JobOutput, Failure>, Option<JobRetry>) {
    let payload = &claimed.payload;
    let fail = |kind, error: String| Failure {
        kind,
        error,
        logs: None,
    };
    let host = match inner.host_for_call(&job.app_name, job.app_rev).await {
        Ok(h) => h,
        Err(HostError::NotFound(_)) => {
            let e = format!("app '{}' is not deployed", job.app_name);
            return (Err(fail(Kind::Final, e)), None);
        }
        // The platform's failure is retried (another runner may load it); the app's is
        // final until its next version.
        Err(e @ HostError::LoadFailed { platform: true, .. }) => {
            return (Err(fail(Kind::Unavailable, e.to_string())), None)
        }
        Err(e @ HostError::LoadFailed { .. }) => {
            return (Err(fail(Kind::Final, e.to_string())), None)
        }
        Err(HostError::Internal(e)) => return (Err(fail(Kind::Unavailable, e)), None),
    };
    let retry = host.manifest.job_retry;
    let (tx, mut rx) = mpsc::unbounded_channel::<Progress>();
    let reporter = {
        let inner = inner.clone();
        let app = job.app_name.clone();
        tokio::spawn(async move {
            while let Some(p) = rx.recv().await {
                if let Some(line) = p.log {
                    inner.publish_log(id, &app, line).await;
                    continue;
                }
                // Written to the row when it is published, at the events' rate: an
                // app reporting in a loop does not write its row thousands of times.
                let reported = crate::job_progress::Reported {
                    progress: p.percent.clamp(0, 99),
                    message: p.message,
                    from_sdk: true,
                };
                inner.report_progress(id, reported).await;
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
        .run_job(
            &body,
            &id.to_string(),
            claimed.request_id.as_deref(),
            limit,
            tx,
            cancel,
        )
        .await;
    let _ = reporter.await;
    let max = inner.config.jobs.job_result_bytes;
    let out = match outcome {
        Ok(reply) if reply.body.len() > max => {
            tracing::warn!(job = %id, app = %job.app_name, bytes = reply.body.len(), max, "job result over the limit");
            Err(Failure {
                kind: Kind::Final,
                error: format!(
                    "the job's result is {} bytes of JSON, over the limit of {max} bytes (NR_JOB_RESULT_BYTES): \
                     return less, or return a file (noderouter.download) and its link",
                    reply.body.len()
                ),
                logs: reply.logs,
            })
        }
        Ok(reply) => Ok((reply, host)),
        Err(JobError { error, logs }) => Err(match error {
            CallError::Exception { error, traceback } => {
                tracing::warn!(job = %id, app = %job.app_name, request_id = %claimed.request_id.as_deref().unwrap_or_default(), error = %clean(&error, MAX_LINE), traceback = %clean(&traceback, MAX_TRACEBACK), "job raised");
                Failure {
                    kind: Kind::Raised,
                    error,
                    logs,
                }
            }
            CallError::Timeout(limit) | CallError::TimeoutAfterWait { limit, .. } => Failure {
                kind: Kind::Raised,
                error: format!("job timed out after {} s", limit.as_secs_f64()),
                logs,
            },
            CallError::CpuLimit(error) => Failure {
                kind: Kind::Raised,
                error,
                logs,
            },
            CallError::Crashed(m) => Failure {
                kind: Kind::Lost,
                error: m,
                logs,
            },
            CallError::Cancelled => Failure {
                kind: Kind::Cancelled,
                error: String::new(),
                logs,
            },
            CallError::Unavailable(m) => Failure {
                kind: Kind::Unavailable,
                error: m,
                logs,
            },
            // A job waits for its slot before it runs; a sync call's wait, never here.
            e @ CallError::NoWorker { .. } => Failure {
                kind: Kind::Unavailable,
                error: e.to_string(),
                logs,
            },
        }),
    };
    (out, retry)
}

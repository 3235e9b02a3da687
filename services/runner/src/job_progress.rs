//! A running job's live events from the runner: its log lines (core NATS) and its
//! progress, whether the app wrote it with the SDK or the author guide's direct
//! `UPDATE` (heard through Postgres's notifications), at a bounded rate.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use nr_contracts::events::JobStatus;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::Inner;

pub(crate) async fn listen_progress(
    inner: Arc<Inner>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // The channel's name is the database's secret (migration 20261129000001): an app
    // can neither listen to other apps' progress nor announce progress of their jobs.
    let (channel,): (String,) =
        sqlx::query_as("SELECT channel FROM noderouter_core.job_progress_channel")
            .fetch_one(&inner.db)
            .await
            .context("cannot read the job progress channel")?;
    let mut listener = sqlx::postgres::PgListener::connect_with(&inner.db)
        .await
        .context("cannot listen for job progress")?;
    listener.listen(&channel).await?;
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
            // Already in the row: the app wrote it there.
            let reported = Reported {
                progress: p.clamp(0, 99),
                message: None,
                from_sdk: false,
            };
            inner.report_progress(id, reported).await;
        }
    });
    Ok(())
}

impl Inner {
    /// Sends a live log line to `job.log.<app>.<id>` (core NATS: not stored). The line
    /// comes cut and cleaned from the worker's exchange ([`crate::text::clean_line`]).
    /// At most [`LOG_RATE`] lines a second after a burst of [`LOG_BURST`], whoever sent
    /// them (the SDK's own limit is Python in the app's process); every line is still
    /// kept with the job.
    pub(crate) async fn publish_log(&self, id: Uuid, app: &str, line: String) {
        let submitted_by = {
            let mut jobs = self.jobs.lock();
            let Some(r) = jobs.get_mut(&id) else { return };
            let now = std::time::Instant::now();
            let earned = now.duration_since(r.logs_at).as_secs_f64() * LOG_RATE;
            r.log_tokens = (r.log_tokens + earned).min(LOG_BURST);
            r.logs_at = now;
            if r.log_tokens < 1.0 {
                r.logs_dropped += 1;
                if r.logs_dropped.is_power_of_two() {
                    tracing::warn!(job = %id, app, dropped = r.logs_dropped, "job log lines over the live rate were not sent live (they are kept with the job)");
                }
                return;
            }
            r.log_tokens -= 1.0;
            r.submitted_by.clone()
        };
        let event = nr_contracts::Envelope::new(
            nr_contracts::events::JOB_LOG,
            &self.id,
            nr_contracts::events::JobLog {
                job_id: id.to_string(),
                app_name: app.to_owned(),
                line,
                submitted_by,
            },
        );
        let Ok(payload) = nr_contracts::encode(&event) else {
            return;
        };
        let subject = nr_contracts::subjects::job_log(app, &id.to_string());
        if let Err(e) = self.nats.publish(subject, payload.into()).await {
            tracing::debug!(job = %id, error = %e, "cannot publish a job log line");
        }
    }

    /// Publishes a running job's progress once per change: the first
    /// [`PROGRESS_BURST`] changes at once, then [`PROGRESS_RATE`] a second. A value that
    /// comes sooner is held, and the newest one held is sent as soon as the rate allows.
    /// Each event is kept a day in `NR_JOB_EVENTS`; an app writing its progress in a loop
    /// would otherwise fill JetStream's storage. What the SDK reports is written to the
    /// job's row when it is published, so at the same rate.
    pub(crate) async fn report_progress(self: &Arc<Self>, id: Uuid, mut reported: Reported) {
        // Kept a day in `NR_JOB_EVENTS`: the SDK's bound, whoever sent the frame.
        reported.message = reported
            .message
            .map(|m| crate::text::cut_chars(m, crate::text::MAX_PROGRESS_MESSAGE));
        let target = {
            let mut jobs = self.jobs.lock();
            let Some(r) = jobs.get_mut(&id) else { return };
            let repeat = r.last_progress == reported.progress
                && (!reported.from_sdk || r.last_message == reported.message);
            if repeat && r.progress_held.is_none() {
                return;
            }
            refill(r);
            if r.progress_tokens >= 1.0 {
                r.progress_tokens -= 1.0;
                r.progress_held = None;
                Some(sent(r, reported))
            } else {
                r.progress_held = Some(reported);
                if !r.flushing {
                    r.flushing = true;
                    let this = self.clone();
                    let wait = Duration::from_secs_f64((1.0 - r.progress_tokens) / PROGRESS_RATE);
                    tokio::spawn(async move {
                        tokio::time::sleep(wait).await;
                        this.flush_progress(id).await;
                    });
                }
                None
            }
        };
        self.send_running(id, target).await;
    }

    /// Sends the progress value held back for job `id`, if it is still running.
    async fn flush_progress(&self, id: Uuid) {
        let target = {
            let mut jobs = self.jobs.lock();
            let Some(r) = jobs.get_mut(&id) else { return };
            r.flushing = false;
            refill(r);
            match r.progress_held.take() {
                Some(held)
                    if held.progress != r.last_progress
                        || (held.from_sdk && held.message != r.last_message) =>
                {
                    r.progress_tokens = (r.progress_tokens - 1.0).max(0.0);
                    Some(sent(r, held))
                }
                _ => None,
            }
        };
        self.send_running(id, target).await;
    }

    /// Writes what the SDK reported to job `id`'s row, then publishes it if the attempt
    /// is still the job's and running.
    async fn send_running(&self, id: Uuid, event: Option<RunningEvent>) {
        let Some(e) = event else { return };
        if let Some(attempt) = e.write_for {
            match nr_jobs::set_progress(&self.db, id, attempt, e.reported.progress).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(err) => {
                    tracing::warn!(job = %id, error = %err, "cannot record job progress");
                    return;
                }
            }
        }
        self.publish_progress(
            id,
            &e.app,
            JobStatus::Running,
            e.reported.progress,
            e.reported.message,
            e.submitted_by,
        )
        .await;
    }
}

/// A progress value a running job reported.
pub(crate) struct Reported {
    pub(crate) progress: i32,
    /// The SDK's message (cut to [`crate::text::MAX_PROGRESS_MESSAGE`] characters).
    pub(crate) message: Option<String>,
    /// Reported through the SDK, so not yet in the job's row; otherwise the app wrote
    /// the row itself and Postgres announced it.
    pub(crate) from_sdk: bool,
}

/// Records `reported` as job `r`'s last published progress and makes its event.
fn sent(r: &mut crate::jobs::Running, reported: Reported) -> RunningEvent {
    r.last_progress = reported.progress;
    r.last_message = reported.message.clone();
    RunningEvent {
        write_for: reported.from_sdk.then_some(r.attempt),
        reported,
        app: r.app.clone(),
        submitted_by: r.submitted_by.clone(),
    }
}

/// Live log lines a job may send at once, then [`LOG_RATE`] a second.
pub(crate) const LOG_BURST: f64 = 100.0;
const LOG_RATE: f64 = 50.0;

/// A `running` event to publish, and the attempt whose row it is written to first.
struct RunningEvent {
    reported: Reported,
    write_for: Option<i32>,
    app: String,
    submitted_by: Option<String>,
}

/// Progress events a job may send at once (the author guide's milestones, every 10 %,
/// all go out however fast they come).
pub(crate) const PROGRESS_BURST: f64 = 10.0;
/// Progress events a second a job may send once its burst is spent.
const PROGRESS_RATE: f64 = 5.0;

/// Adds the tokens earned since the job's last progress event.
fn refill(r: &mut crate::jobs::Running) {
    let now = std::time::Instant::now();
    let earned = now.duration_since(r.progress_at).as_secs_f64() * PROGRESS_RATE;
    r.progress_tokens = (r.progress_tokens + earned).min(PROGRESS_BURST);
    r.progress_at = now;
}

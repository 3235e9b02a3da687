//! A job's events on `job.progress.<app>.<id>`, as the runner running it publishes
//! them: progress, `running` (sent before the job starts, unacknowledged), and the
//! final event, whose id makes a second publish of it (after a runner died before it
//! could) a duplicate JetStream drops.

use async_nats::jetstream;
use nr_contracts::events::JobStatus;
use nr_contracts::{subjects, Envelope};
use std::time::Duration;
use uuid::Uuid;

use crate::Inner;

impl Inner {
    pub(crate) fn lease(&self) -> Duration {
        nr_contracts::manifest::duration_or(self.config.job_lease_s.max(1.0), 30.0)
    }

    /// Publishes a job's state on `job.progress.<app>.<id>`.
    pub(crate) async fn publish_progress(
        &self,
        id: Uuid,
        app: &str,
        status: JobStatus,
        progress: i32,
        message: Option<String>,
        submitted_by: Option<String>,
    ) {
        let event = Envelope::new(
            nr_contracts::events::JOB_PROGRESS,
            &self.id,
            nr_contracts::events::JobProgress {
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

    /// Publishes a job's `running` event without waiting for JetStream's ack before the
    /// job starts: the message is on the connection first, so the final event, sent on
    /// the same connection later, is stored after it; a refused publish is logged.
    pub(crate) async fn publish_running(&self, id: Uuid, app: &str, submitted_by: Option<String>) {
        let event = Envelope::new(
            nr_contracts::events::JOB_PROGRESS,
            &self.id,
            nr_contracts::events::JobProgress {
                job_id: id.to_string(),
                app_name: app.to_owned(),
                status: JobStatus::Running,
                progress: 0,
                message: None,
                submitted_by,
            },
        );
        let Ok(payload) = nr_contracts::encode(&event) else {
            return;
        };
        let publish = jetstream::message::PublishMessage::build()
            .payload(payload.into())
            .message_id(&event.id);
        let subject = subjects::job_progress(app, &id.to_string());
        match self.js.send_publish(subject, publish).await {
            Ok(ack) => {
                tokio::spawn(async move {
                    if let Err(e) = ack.await {
                        tracing::warn!(job = %id, error = %e, "job's running event was not acknowledged");
                    }
                });
            }
            Err(e) => tracing::warn!(job = %id, error = %e, "cannot publish job progress"),
        }
    }

    /// A job's final event, with an id derived from the job and its attempt, so that
    /// publishing it again (after a runner died before it could) is deduplicated.
    /// False when it could not be published.
    pub(crate) async fn publish_final(
        &self,
        id: Uuid,
        app: &str,
        (status, progress): (JobStatus, i32),
        error: Option<String>,
        submitted_by: Option<String>,
        attempt: i32,
    ) -> bool {
        let mut event = Envelope::new(
            nr_contracts::events::JOB_PROGRESS,
            &self.id,
            nr_contracts::events::JobProgress {
                job_id: id.to_string(),
                app_name: app.to_owned(),
                status,
                progress,
                // Why a job failed, for systems that only read the bus (as a retry's
                // `pending` says it).
                message: error.filter(|_| status == JobStatus::Failed),
                submitted_by,
            },
        );
        event.id = final_event_id(id, attempt, status).to_string();
        let subject = subjects::job_progress(app, &id.to_string());
        match nr_infra::bus::publish_event(&self.js, &subject, &event, None).await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(job = %id, error = %e, "cannot publish the job's final event");
                false
            }
        }
    }
}

/// The id of a job's final event for one attempt: the job's id with the attempt and the
/// status mixed into its random bits, marked as a custom (version 8) UUID.
fn final_event_id(id: Uuid, attempt: i32, status: JobStatus) -> Uuid {
    let code: u8 = match status {
        JobStatus::Completed => 1,
        JobStatus::Failed => 2,
        _ => 3,
    };
    let mut bytes = *id.as_bytes();
    for (b, x) in bytes[8..12].iter_mut().zip(attempt.to_be_bytes()) {
        *b ^= x;
    }
    bytes[15] ^= code;
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

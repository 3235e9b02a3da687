//! Jobs left `running` with nothing to bring them back. A runner renews its job's lease
//! while it runs; when it dies, the job's work item (unacknowledged) comes back within
//! the lease and another runner takes the job over. A job still `running` long after its
//! lease lapsed has no work item left: a database restored without the `NR_JOBS` backup
//! taken with it, or a stream lost. Such a job goes back to `pending` (the lost attempt
//! counted, so its attempt limit still holds) with a new work item; one past its limit
//! then ends `failed`, as a job whose runner died always does.

use std::sync::{Arc, Weak};
use std::time::Duration;

use nr_contracts::events::{JobSubmitted, JOB_SUBMITTED};
use nr_contracts::Envelope;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::AppState;

/// Jobs put back in one pass at most.
const BATCH: i64 = 100;

/// Every few seconds (a quarter of `NR_JOB_REPAIR_AFTER_S`, at most 30 s).
/// Nothing is looked at in this gateway's first `NR_JOB_REPAIR_AFTER_S`: after the whole
/// platform was down, a running job's lease lapsed long ago, and its work item comes
/// back to a runner on its own.
pub(crate) fn spawn(state: Weak<AppState>, stop: CancellationToken) {
    let started = tokio::time::Instant::now();
    tokio::spawn(async move {
        loop {
            let Some(s) = state.upgrade() else { return };
            let after = s.config.job_repair_after_s.clamp(1.0, 86_400.0);
            if started.elapsed().as_secs_f64() >= after {
                if let Err(e) = once(&s, after).await {
                    tracing::warn!(error = %e, "cannot look for jobs whose work item was lost");
                }
            }
            drop(s);
            let pause = Duration::from_secs_f64((after / 4.0).clamp(0.25, 30.0));
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    });
}

/// One pass: the jobs put back, each with a new work item.
pub(crate) async fn once(state: &Arc<AppState>, after: f64) -> anyhow::Result<usize> {
    let lost: Vec<(Uuid, String, Option<i64>)> = sqlx::query_as(
        "WITH lost AS ( \
             SELECT id FROM noderouter_core.job_queue \
             WHERE status = 'running' AND lease_until < NOW() - make_interval(secs => $1) \
             ORDER BY lease_until LIMIT $2 FOR UPDATE SKIP LOCKED) \
         UPDATE noderouter_core.job_queue j SET status = 'pending', lease_until = NULL, \
                not_before = NULL \
         FROM lost WHERE j.id = lost.id \
         RETURNING j.id, j.app_name, j.app_rev",
    )
    .bind(after)
    .bind(BATCH)
    .fetch_all(&state.db)
    .await?;
    for (id, app, rev) in &lost {
        tracing::warn!(job = %id, app = %app, "a running job had lost its work item (its lease lapsed long ago): queued again");
        let rev = rev
            .and_then(|r| u64::try_from(r).ok())
            .or_else(|| state.apps.get(app).map(|e| e.rev))
            .unwrap_or(0);
        let event = Envelope::new(
            JOB_SUBMITTED,
            &state.node,
            JobSubmitted {
                job_id: id.to_string(),
                app_name: app.clone(),
                app_rev: rev,
            },
        );
        if let Err(e) = super::queue(state, app, &event).await {
            tracing::error!(job = %id, error = %e, "cannot queue a job whose work item was lost; the next pass tries again");
            // Lost again, so that the next pass finds it.
            let _ = sqlx::query(
                "UPDATE noderouter_core.job_queue SET status = 'running', \
                        lease_until = NOW() - make_interval(secs => $2 + 1) \
                 WHERE id = $1 AND status = 'pending'",
            )
            .bind(id)
            .bind(after)
            .execute(&state.db)
            .await;
        }
    }
    Ok(lost.len())
}

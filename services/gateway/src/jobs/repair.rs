//! Jobs left `running` with nothing to bring them back. A runner renews its job's lease
//! while it runs; when it dies, the job's work item (unacknowledged) comes back within
//! the lease and another runner takes the job over. A job still `running` long after its
//! lease lapsed has no work item left: a database restored without the `NR_JOBS` backup
//! taken with it, or a stream lost. Such a job goes back to `pending` (the lost attempt
//! counted, so its attempt limit still holds) with a new work item; one past its limit
//! then ends `failed`, as a job whose runner died always does. Jobs left `pending` with
//! no work item are found by counting ([`pending`]).

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
                if let Err(e) = pending(&s, after).await {
                    tracing::warn!(error = %format!("{e:#}"), "cannot look for waiting jobs whose work item was lost");
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

/// Jobs `pending` with no work item: a gateway killed between recording a job and
/// queueing it, or a dump restored without its `NR_JOBS`. Which pending job lacks its
/// item the stream cannot say cheaply, but a count can: a job waiting, unchanged for
/// `after` seconds, has a work item of its own in the stream (an item is acked only once
/// its job is final, and a job put back to wait keeps its item or gets a new one as it
/// changes). So an app with fewer items than such jobs has lost some; its long-waiting
/// jobs are queued again (at most [`BATCH`] a pass; the claim lets one item run a job).
/// The stream is counted first, so a job that ends meanwhile is not taken for a lost
/// one; the items of running jobs count too, which can only hide a loss until they end.
/// Which waiting jobs lack their item the count cannot say: the oldest are queued again
/// (those that had one run once all the same), and a lost job behind a long backlog
/// runs once the count shows the gap again. One gateway makes the pass at a time.
pub(crate) async fn pending(state: &Arc<AppState>, after: f64) -> anyhow::Result<usize> {
    use futures::TryStreamExt as _;
    let mut pass = state.db.begin().await?;
    let (mine,): (bool,) =
        sqlx::query_as("SELECT pg_try_advisory_xact_lock(hashtext('nr-jobs-repair-pending'))")
            .fetch_one(&mut *pass)
            .await?;
    if !mine {
        return Ok(0);
    }
    let stream = state
        .js
        .get_stream(nr_contracts::subjects::STREAM_JOBS)
        .await?;
    let items: std::collections::HashMap<String, usize> = stream
        .info_with_subjects(nr_contracts::subjects::JOB_SUBMITTED_ALL)
        .await?
        .try_collect()
        .await?;
    let jobs: Vec<(String, i64)> = sqlx::query_as(
        "SELECT app_name, count(*) FROM noderouter_core.job_queue \
         WHERE status = 'pending' AND updated_at < NOW() - make_interval(secs => $1) \
         GROUP BY app_name",
    )
    .bind(after)
    .fetch_all(&state.db)
    .await?;
    let mut queued = 0;
    for (app, count) in jobs {
        let held = items
            .get(&nr_contracts::subjects::job_submitted(&app))
            .copied()
            .unwrap_or(0);
        if usize::try_from(count).unwrap_or(0) <= held {
            continue;
        }
        // Touched (the trigger moves `updated_at`), so the next pass takes the next ones.
        let waiting: Vec<(Uuid, Option<i64>)> = sqlx::query_as(
            "UPDATE noderouter_core.job_queue SET status = status WHERE id IN ( \
                 SELECT id FROM noderouter_core.job_queue \
                 WHERE app_name = $1 AND status = 'pending' \
                   AND updated_at < NOW() - make_interval(secs => $2) \
                 ORDER BY created_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
             RETURNING id, app_rev",
        )
        .bind(&app)
        .bind(after)
        .bind(BATCH)
        .fetch_all(&state.db)
        .await?;
        tracing::warn!(app = %app, jobs = count, work_items = held, queued_again = waiting.len(),
            "waiting jobs had lost their work items (a gateway stopped between recording and queueing them, or a restore): queued again");
        for (id, rev) in waiting {
            if let Err(e) = super::queue(state, &app, &submitted(state, id, &app, rev)).await {
                tracing::error!(job = %id, error = %e, "cannot queue a job whose work item was lost; the next pass tries again");
            } else {
                queued += 1;
            }
        }
    }
    pass.commit().await?;
    Ok(queued)
}

/// The work item of job `id`, for the revision it was submitted to (else the one
/// served now).
fn submitted(state: &AppState, id: Uuid, app: &str, rev: Option<i64>) -> Envelope<JobSubmitted> {
    let rev = rev
        .and_then(|r| u64::try_from(r).ok())
        .or_else(|| state.apps.get(app).map(|e| e.rev))
        .unwrap_or(0);
    Envelope::new(
        JOB_SUBMITTED,
        &state.node,
        JobSubmitted {
            job_id: id.to_string(),
            app_name: app.to_owned(),
            app_rev: rev,
        },
    )
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
        if let Err(e) = super::queue(state, app, &submitted(state, *id, app, *rev)).await {
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

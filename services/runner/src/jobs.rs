//! Async jobs: work items from the `NR_JOBS` work queue, their row in
//! `noderouter_core.job_queue` (owned by `nr-jobs`) fenced by attempt number.
//!
//! The row is the authority. A claim bumps `attempt` and takes a lease that the holder
//! renews; every later write (progress, completion, retry) names the attempt, so a
//! runner that lost its lease changes nothing. A JetStream message is acked only once
//! its job is final. Claims and completions are batched (`nr_jobs::Batcher`): under
//! load many share one statement. Each app has its own concurrency limit, so one
//! app's jobs never hold every slot; a job waiting for its app's slot holds none.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer, AckKind};
use futures::StreamExt;
use nr_contracts::events::JobSubmitted;
use nr_contracts::{decode, subjects, Envelope};
use nr_infra::consume::{consume, Order};
use nr_infra::drain::Drain;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::Inner;

const CONSUMER: &str = "runner-jobs";
/// Claims or completions written in one statement at most.
const BATCH: usize = 256;

/// A job this runner is running.
pub(crate) struct Running {
    pub(crate) app: String,
    /// The attempt this runner holds: progress is written to the row for it only.
    pub(crate) attempt: i32,
    pub(crate) cancel: CancellationToken,
    /// The progress last published, and the SDK's message with it.
    pub(crate) last_progress: i32,
    pub(crate) last_message: Option<String>,
    pub(crate) submitted_by: Option<String>,
    /// Progress events it may still send at once, as of `progress_at` (a token bucket),
    /// and the newest value held back for want of one (sent by the flush already
    /// scheduled when `flushing`).
    pub(crate) progress_tokens: f64,
    pub(crate) progress_at: std::time::Instant,
    pub(crate) progress_held: Option<crate::job_progress::Reported>,
    pub(crate) flushing: bool,
    /// Live log lines it may still send at once, as of `logs_at`, and how many it
    /// dropped for want of one.
    pub(crate) log_tokens: f64,
    pub(crate) logs_at: std::time::Instant,
    pub(crate) logs_dropped: u64,
}

/// One app's job slots on this runner: its limit, the semaphore enforcing it, and how
/// many of its jobs wait here for a slot.
type AppSlots = (usize, Arc<Semaphore>, usize);

pub(crate) type ClaimResult = Result<Option<nr_jobs::Claimed>, String>;
pub(crate) type FinishResult = Result<Option<i32>, String>;

pub(crate) struct JobTable {
    running: Mutex<HashMap<Uuid, Running>>,
    /// Per app: its concurrency limit and the semaphore enforcing it.
    apps: Mutex<HashMap<String, AppSlots>>,
    /// Set on SIGTERM: running jobs are handed back, nothing new is claimed.
    pub(crate) draining: AtomicBool,
    /// Cancelled when the runner stops pulling jobs (at the start of a drain, or at
    /// shutdown): a handed-back job must go to another runner, not back to this one.
    pub(crate) intake: CancellationToken,
    /// Jobs between their claim and their last write.
    pub(crate) active: std::sync::atomic::AtomicUsize,
    pub(crate) claims: Mutex<Option<nr_jobs::Batcher<Uuid, ClaimResult>>>,
    pub(crate) finishes: Mutex<Option<nr_jobs::Batcher<nr_jobs::Outcome, FinishResult>>>,
}

impl Default for JobTable {
    fn default() -> Self {
        JobTable {
            running: Mutex::new(HashMap::new()),
            apps: Mutex::new(HashMap::new()),
            draining: AtomicBool::new(false),
            intake: CancellationToken::new(),
            active: std::sync::atomic::AtomicUsize::new(0),
            claims: Mutex::new(None),
            finishes: Mutex::new(None),
        }
    }
}

impl JobTable {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The semaphore of `app` at `limit` slots (a changed limit starts a new one), and
    /// whether another job may wait for it here.
    fn app_slots(&self, app: &str, limit: usize) -> (Arc<Semaphore>, bool) {
        let mut apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        let entry = apps
            .entry(app.to_owned())
            .or_insert_with(|| (limit, Arc::new(Semaphore::new(limit)), 0));
        if entry.0 != limit {
            *entry = (limit, Arc::new(Semaphore::new(limit)), entry.2);
        }
        (entry.1.clone(), entry.2 < waiting_places(limit))
    }

    fn waiting(&self, app: &str, delta: isize) {
        let mut apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = apps.get_mut(app) {
            e.2 = e.2.saturating_add_signed(delta);
        }
    }

    fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}

/// How many work items of one app may wait here for its slots (holding no runner slot,
/// so other apps' jobs go on). A burst past that goes back to the stream for 500 ms; each
/// such return is a redelivery, so the queue is long enough that a burst of a few
/// thousand jobs from one app mostly waits here instead of bouncing.
fn waiting_places(limit: usize) -> usize {
    limit.saturating_mul(64).saturating_add(512)
}

/// How long a starting runner tries to create the job consumer.
const CONSUMER_PATIENCE: Duration = Duration::from_secs(60);

pub(crate) async fn start(inner: Arc<Inner>, shutdown: CancellationToken) -> anyhow::Result<()> {
    let lease = inner.lease();
    let stream = inner
        .js
        .get_stream(subjects::STREAM_JOBS)
        .await
        .context("cannot open NR_JOBS")?;
    // A cluster that is just forming elects the stream's leader first: creating the
    // consumer may time out for a few seconds (the runner exited at start).
    let patience = tokio::time::Instant::now() + CONSUMER_PATIENCE;
    let consumer = loop {
        let made = stream
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
            .await;
        match made {
            Ok(c) => break c,
            Err(e) if tokio::time::Instant::now() < patience => {
                tracing::warn!(error = %e, "cannot create the job consumer yet (JetStream may be electing leaders); trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(anyhow::Error::from(e).context("cannot create the job consumer")),
        }
    };
    let slots = inner.config.job_concurrency();
    let messages = consumer
        .stream()
        .max_messages_per_batch(slots)
        .messages()
        .await
        .context("cannot read NR_JOBS")?;
    let permits = Arc::new(Semaphore::new(slots));
    start_batchers(&inner);
    listen_cancels(inner.clone(), shutdown.clone()).await?;
    crate::job_progress::listen_progress(inner.clone(), shutdown.clone()).await?;
    tokio::spawn(prune_loop(inner.clone(), shutdown.clone()));

    // A message is pulled only once a slot is free, so at most `slots` jobs are held;
    // each runs on its own task.
    let slotted =
        futures::stream::unfold((messages, permits), |(mut messages, permits)| async move {
            let permit = permits.clone().acquire_owned().await.ok()?;
            loop {
                match messages.next().await? {
                    Ok(msg) => return Some(((msg, permit, permits.clone()), (messages, permits))),
                    Err(e) => {
                        tracing::warn!(error = %e, "job consumer error");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
    let intake = inner.jobs.intake.clone();
    tokio::spawn({
        let intake = intake.clone();
        async move {
            shutdown.cancelled().await;
            intake.cancel();
        }
    });
    let drain = Drain::from_token(intake);
    consume(
        "job-intake",
        slotted,
        &drain,
        Order::Concurrent,
        move |(msg, permit, permits)| {
            let inner = inner.clone();
            async move {
                dispatch(inner, msg, permit, permits).await;
                Ok(())
            }
        },
    );
    Ok(())
}

fn start_batchers(inner: &Arc<Inner>) {
    let (db, node, lease) = (inner.db.clone(), inner.id.clone(), inner.lease());
    let claims = nr_jobs::Batcher::spawn(BATCH, move |ids: Vec<Uuid>| {
        let (db, node) = (db.clone(), node.clone());
        async move {
            match nr_jobs::claim(&db, &ids, &node, lease).await {
                Ok(claimed) => ids
                    .iter()
                    .map(|id| Ok(claimed.iter().find(|c| c.id == *id).cloned()))
                    .collect(),
                Err(e) => ids.iter().map(|_| Err(e.to_string())).collect(),
            }
        }
    });
    let db = inner.db.clone();
    let finishes = nr_jobs::Batcher::spawn(BATCH, move |outcomes: Vec<nr_jobs::Outcome>| {
        let db = db.clone();
        async move { nr_jobs::finish_each(&db, &outcomes).await }
    });
    *inner.jobs.claims.lock().unwrap_or_else(|p| p.into_inner()) = Some(claims);
    *inner
        .jobs
        .finishes
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = Some(finishes);
}

/// Cancellation requests from the gateway.
async fn listen_cancels(inner: Arc<Inner>, stop: CancellationToken) -> anyhow::Result<()> {
    let cancels = inner
        .nats
        .subscribe(subjects::JOB_CANCEL_ALL)
        .await
        .map_err(|e| anyhow::anyhow!("cannot subscribe to job cancellations: {e}"))?;
    let drain = Drain::from_token(stop);
    consume("job-cancels", cancels, &drain, Order::InOrder, move |msg| {
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
        std::future::ready(Ok(()))
    });
    Ok(())
}

/// Takes the app's slot for one work item (waiting without a runner slot while the
/// app is at its limit), then runs it.
async fn dispatch(
    inner: Arc<Inner>,
    msg: jetstream::Message,
    permit: OwnedSemaphorePermit,
    permits: Arc<Semaphore>,
) {
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
    // A manifest may lower its app's share of the slots, never raise it past the
    // operator's: a deployer does not decide how much of a runner one app takes.
    let share = inner.config.job_app_concurrency();
    let limit = match inner.host_for_call(&job.app_name, job.app_rev).await {
        Ok(host) => host
            .manifest
            .job_concurrency
            .map_or(share, |c| c.get().min(share)),
        // The run reports the error on the job.
        Err(_) => 1,
    };
    let (slots, may_wait) = inner.jobs.app_slots(&job.app_name, limit);
    let (app_permit, permit) = match slots.clone().try_acquire_owned() {
        Ok(p) => (p, permit),
        Err(_) if !may_wait => {
            let _ = msg
                .ack_with(AckKind::Nak(Some(Duration::from_millis(500))))
                .await;
            return;
        }
        Err(_) => {
            // Other apps may use the runner slot meanwhile.
            drop(permit);
            inner.jobs.waiting(&job.app_name, 1);
            let got = wait_for_slot(&inner, &msg, slots).await;
            inner.jobs.waiting(&job.app_name, -1);
            let Some(app_permit) = got else {
                let _ = msg.ack_with(AckKind::Nak(None)).await;
                return;
            };
            let Ok(permit) = permits.acquire_owned().await else {
                return;
            };
            (app_permit, permit)
        }
    };
    if inner.jobs.draining() {
        let _ = msg.ack_with(AckKind::Nak(None)).await;
        return;
    }
    inner.jobs.active.fetch_add(1, Ordering::SeqCst);
    // The slots are given back as soon as the job's worker is done with it: writing the
    // outcome, publishing it and acking the work item overlap the next job's run.
    crate::job_run::handle(inner.clone(), msg, job, id, (app_permit, permit)).await;
    inner.jobs.active.fetch_sub(1, Ordering::SeqCst);
}

/// Waits for the app's slot, keeping the work item from being redelivered meanwhile;
/// `None` when the runner drains.
async fn wait_for_slot(
    inner: &Inner,
    msg: &jetstream::Message,
    slots: Arc<Semaphore>,
) -> Option<OwnedSemaphorePermit> {
    let mut tick = tokio::time::interval(inner.lease() / 3);
    tick.tick().await;
    let acquire = slots.acquire_owned();
    tokio::pin!(acquire);
    loop {
        tokio::select! {
            p = &mut acquire => return p.ok(),
            _ = tick.tick() => {
                if inner.jobs.draining() {
                    return None;
                }
                let _ = msg.ack_with(AckKind::Progress).await;
            }
        }
    }
}

/// Deletes finished jobs older than the retention, in small batches, now and then.
async fn prune_loop(inner: Arc<Inner>, stop: CancellationToken) {
    let every = nr_contracts::manifest::duration_or(inner.config.jobs.job_prune_interval_s, 60.0);
    let age = nr_contracts::manifest::duration_or(inner.config.jobs.job_retention_s, 604_800.0);
    let batch = inner.config.jobs.job_prune_batch.max(1);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        match nr_jobs::prune(&inner.db, age, batch).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "pruned finished jobs past their retention"),
            Err(e) => tracing::warn!(error = %e, "cannot prune finished jobs"),
        }
    }
}

/// On SIGTERM: stop claiming, hand every running job back (its lease released, the
/// attempt not counted) and wait, at most `within`, until they are.
pub(crate) async fn drain(inner: &Inner, within: Duration) {
    inner.jobs.draining.store(true, Ordering::SeqCst);
    // Stop pulling first: the intake loop ends and its pull subscription goes, so the
    // work items handed back below are delivered to other runners (or the next start)
    // at once. Pulling on, this runner took each one back, claimed it and handed it back
    // again until it stopped, and the last delivery waited out the ack wait (the lease).
    inner.jobs.intake.cancel();
    let running: Vec<CancellationToken> = inner
        .jobs
        .lock()
        .values()
        .map(|r| r.cancel.clone())
        .collect();
    if running.is_empty() {
        return;
    }
    // Time for the intake's unsubscribe to reach the server before the hand-backs do.
    tokio::time::sleep(Duration::from_millis(100)).await;
    tracing::info!(
        jobs = running.len(),
        "handing running jobs back before stopping"
    );
    for c in running {
        c.cancel();
    }
    let deadline = tokio::time::Instant::now() + within;
    while inner.jobs.active.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

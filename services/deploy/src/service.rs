//! The deploy service on NATS: `deploy.submit`, `deploy.rollback`, `deploy.delete`, each
//! in the `nr-deploy` queue group, each answered with a typed reply.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_nats::jetstream;
use nr_contracts::events::{AppChange, AppUpdated, APP_UPDATED};
use nr_contracts::requests::{
    DeleteReply, DeleteRequest, DeployReply, DeployReport, DeploySubmit, RollbackRequest,
};
use nr_contracts::{subjects, Envelope, RpcError};
use nr_infra::bus::PublishFailure;
use nr_infra::drain::Drain;
use nr_infra::rpc;
use nr_infra::store::Store;
use object_store::path::Path;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

mod app_log;
mod changes;
mod leftovers;
mod loaded;

use crate::check::Checker;
use crate::conflicts::{self, AppFacts, Catalogue};
use crate::findings::{Finding, Refused};
use crate::manifest::is_valid_app_name;
use crate::versions;
use crate::{archive, DeployConfig};

#[derive(Clone)]
pub struct DeployDeps {
    pub nats: async_nats::Client,
    pub store: Store,
}

pub struct Deploy {
    drain: Drain,
    /// Stops what the requests in flight read (the app catalogue, the runners'
    /// heartbeats) once they are answered: a deploy finishing during the drain still
    /// waits for the runners it knows are alive (it reported none). Cancelled when
    /// this is dropped, or when `build` fails half-way.
    _followers: tokio_util::sync::DropGuard,
}

struct Inner {
    id: String,
    config: DeployConfig,
    checker: Checker,
    nats: async_nats::Client,
    js: jetstream::Context,
    store: Store,
    /// The current apps, followed from `NR_APPS`, for cross-app conflicts.
    catalogue: RwLock<Catalogue>,
    /// Highest `NR_APPS` sequence applied to the catalogue.
    applied: watch::Sender<u64>,
    /// The live runners, whose loads of a published version deploy waits for.
    runners: Arc<loaded::Runners>,
}

/// How long a check waits for the catalogue to catch up with the stream.
const CATALOGUE_WAIT: Duration = Duration::from_secs(5);

impl Deploy {
    pub async fn build(config: DeployConfig, deps: DeployDeps) -> anyhow::Result<Deploy> {
        let js = jetstream::new(deps.nats.clone());
        nr_infra::bus::ensure_streams(&js).await?;
        let inner = Arc::new(Inner {
            id: format!("deploy-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
            checker: config.checker()?,
            config,
            nats: deps.nats,
            js: js.clone(),
            store: deps.store,
            catalogue: RwLock::new(Catalogue::default()),
            applied: watch::channel(0).0,
            runners: Arc::default(),
        });
        let drain = Drain::new();
        // App processes this process adopted (a runner of `noderouter up` killed with its
        // children left, an import check's leftovers) or init did (a deploy or runner
        // killed outright) do not wait for the next import check.
        if inner.config.checks.import_check && nr_infra::contain::can_switch_users() {
            let range = &inner.config.checks.contain;
            tokio::spawn(nr_infra::contain::reap_every_second(
                range.app_uid_base,
                range.app_uid_count,
                drain.token().clone(),
            ));
        }
        leftovers::spawn(
            inner.store.clone(),
            inner
                .config
                .checks
                .deploy_dir
                .clone()
                .unwrap_or_else(std::env::temp_dir),
            drain.token().clone(),
        );
        let followers = CancellationToken::new();
        let followers_guard = followers.clone().drop_guard();
        let weak = Arc::downgrade(&inner);
        nr_infra::apps::follow(js, followers.clone(), move |ev| {
            if let Some(inner) = weak.upgrade() {
                inner
                    .catalogue
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .apply(&ev.event.data);
                inner.applied.send_modify(|seq| *seq = (*seq).max(ev.rev));
            }
        })
        .await?;
        loaded::follow_runners(&inner.nats, inner.runners.clone(), followers.clone()).await?;

        // Each operation in the `nr-deploy` queue group, answered the one way
        // (`nr_infra::rpc`): a report, or the refusal as an `RpcError`.
        let i = inner.clone();
        rpc::serve(inner.nats.clone(), &drain, move |req: DeploySubmit| {
            let i = i.clone();
            async move { i.submit(req).await.map(DeployReply::Deployed) }
        })
        .await?;
        let i = inner.clone();
        rpc::serve(inner.nats.clone(), &drain, move |req: RollbackRequest| {
            let i = i.clone();
            async move {
                i.rollback(req)
                    .await
                    .map(DeployReply::Deployed)
                    .map_err(refusal)
            }
        })
        .await?;
        let i = inner.clone();
        rpc::serve(inner.nats.clone(), &drain, move |req: DeleteRequest| {
            let i = i.clone();
            async move {
                i.delete(req)
                    .await
                    .map(DeleteReply::Deleted)
                    .map_err(refusal)
            }
        })
        .await?;
        Ok(Deploy {
            drain,
            _followers: followers_guard,
        })
    }

    /// Stops taking requests when `stop` is cancelled, and returns once the requests in
    /// progress are answered (at most [`DRAIN_LIMIT`]).
    pub async fn run_until_stopped(self, stop: CancellationToken) -> anyhow::Result<()> {
        stop.cancelled().await;
        if !self.drain.finish(DRAIN_LIMIT).await {
            tracing::warn!("deploy requests still running after the drain limit; exiting");
        }
        Ok(())
    }
}

/// Who asked for a change, as the gateway authenticated them.
#[derive(Clone)]
struct Actor {
    name: Option<String>,
    id: Option<String>,
    /// When the caller stops waiting, less a margin for the answer's way back: no change
    /// is published after it, and the wait for the runners ends before it.
    answer_by: Option<tokio::time::Instant>,
}

/// When a caller that waits `deadline_ms` from now must have its answer, less a margin
/// (2 s, or a tenth of a short wait) for the answer's way back.
fn answer_by(deadline_ms: Option<u64>) -> Option<tokio::time::Instant> {
    let wait = Duration::from_millis(deadline_ms?);
    let margin = (wait / 10).min(Duration::from_secs(2));
    Some(tokio::time::Instant::now() + wait.saturating_sub(margin))
}

/// How long a stopping deploy waits for the requests it is answering.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// A refusal as the bus carries it: `refused` (with the findings) for what the author
/// or operator can fix, `internal` for the platform's own failures.
fn refusal(r: Refused) -> RpcError {
    let code = if r.status >= 500 {
        "internal"
    } else {
        "refused"
    };
    RpcError::new(r.status, code, r.error)
        .with_details(r.details)
        .with_warnings(r.warnings)
}

impl Inner {
    #[tracing::instrument(skip_all, fields(file = %req.file_name))]
    async fn submit(&self, req: DeploySubmit) -> Result<DeployReport, RpcError> {
        let staged = Path::from(req.staging_key.as_str());
        let actor = Actor {
            name: req.actor.clone(),
            id: req.actor_id.clone(),
            answer_by: answer_by(req.deadline_ms),
        };
        let reply = match self.submit_staged(&staged, &req.file_name, actor).await {
            Ok(report) => {
                nr_telemetry::metrics().deploy("deployed");
                Ok(report)
            }
            Err(r) => {
                nr_telemetry::metrics().deploy(if r.status < 500 { "refused" } else { "failed" });
                if r.status < 500 {
                    tracing::info!(status = r.status, error = %r.error, actor = req.actor.as_deref().unwrap_or(""), "deploy refused");
                }
                Err(refusal(r))
            }
        };
        if let Err(e) = self.store.delete(&staged).await {
            tracing::debug!(error = %e, "staged upload already gone");
        }
        reply
    }

    async fn submit_staged(
        &self,
        staged: &Path,
        file_name: &str,
        actor: Actor,
    ) -> Result<DeployReport, Refused> {
        let bytes = async { self.store.get(staged).await?.bytes().await }
            .await
            .map_err(|e| match e {
                // The gateway stored it a moment ago: this service looks in another store.
                object_store::Error::NotFound { .. } => {
                    tracing::error!(upload = %staged, "the upload a gateway staged is not in this service's object store: the gateways and deploy must use the same NR_OBJECT_STORE_URL");
                    Refused {
                        status: 503,
                        error: "the deploy service cannot find the upload the gateway stored (already handled, or in another store): the gateways and the deploy service must use the same object store (NR_OBJECT_STORE_URL)".into(),
                        details: vec![],
                        warnings: Vec::new(),
                    }
                }
                e => Refused::internal(format!("cannot read staged upload: {e}")),
            })?;
        if bytes.len() as u64 > self.config.max_bundle_bytes {
            return Err(Refused::one(
                413,
                "bundle.size",
                None,
                None,
                format!(
                    "the bundle is {} bytes; the limit is {} bytes (NR_MAX_BUNDLE_BYTES)",
                    bytes.len(),
                    self.config.max_bundle_bytes
                ),
            ));
        }
        // The state this deploy is based on: whatever lands on the app's subject while
        // the bundle is checked makes this deploy lose with 409 (never last-write-wins).
        // The bundle's name is the app's name once the manifest check passes.
        let name = archive::bundle_name(file_name).to_owned();
        let based_on = if is_valid_app_name(&name) {
            Some(self.last_event(&name).await.map_err(Refused::event_log)?)
        } else {
            None
        };

        let bundle = self.checker.inspect(bytes.clone(), file_name).await?;
        let app = bundle.app_name.clone();
        let mut warnings = bundle.warnings.clone();
        let conflicts = self
            .cross_app(&app, &bundle.facts)
            .await
            .map_err(|r| r.with_warnings(&warnings))?;
        warnings.extend(conflicts);
        self.checker
            .import(&bundle)
            .await
            .map_err(|r| r.with_warnings(&warnings))?;

        let (last_seq, previous) = match based_on {
            Some(b) => b,
            None => self.last_event(&app).await.map_err(Refused::event_log)?,
        };
        let previous_version = previous
            .as_ref()
            .filter(|p| p.change != AppChange::Deleted)
            .map(|p| p.version.clone());
        let sha256 = hex::encode(Sha256::digest(&bytes));
        if let Some(p) = previous.as_ref().filter(|p| p.change != AppChange::Deleted) {
            warnings.extend(versions::warning(
                &p.version,
                &p.sha256,
                &bundle.version,
                &sha256,
            ));
        }
        let bundle_key = format!("bundles/{app}/{sha256}.zip");
        self.store
            .put(&Path::from(bundle_key.as_str()), bytes.into())
            .await
            .map_err(|e| Refused::internal(format!("cannot store bundle {bundle_key}: {e}")))?;
        let event = AppUpdated {
            app_name: app.clone(),
            change: AppChange::Deployed,
            version: bundle.version.clone(),
            sha256: sha256.clone(),
            bundle_key,
            manifest: bundle.manifest.clone(),
            previous_version: previous_version.clone(),
            actor: actor.name.clone(),
            actor_id: actor.id.clone(),
            undoes: None,
        };
        let (rev, loaded_by) = self
            .publish_loaded(event, last_seq, previous, actor, &mut warnings)
            .await
            .map_err(|r| r.with_warnings(&warnings))?;
        tracing::info!(app = %app, version = %bundle.version, rev, "deployed");
        Ok(DeployReport {
            app_name: app,
            version: bundle.version.clone(),
            sha256,
            previous_version,
            rev,
            warnings,
            loaded_by,
        })
    }

    /// Conflicts with the other apps, on a catalogue at least as new as the stream was
    /// when the check started. Errors refuse with 409; warnings come back.
    async fn cross_app(&self, app: &str, facts: &AppFacts) -> Result<Vec<Finding>, Refused> {
        let last = self.stream_last_seq().await.map_err(Refused::event_log)?;
        let mut rx = self.applied.subscribe();
        if tokio::time::timeout(CATALOGUE_WAIT, rx.wait_for(|seq| *seq >= last))
            .await
            .is_err()
        {
            tracing::warn!(
                last,
                "app catalogue behind the stream; checking conflicts on what it has"
            );
        }
        let found = {
            let catalogue = self.catalogue.read().unwrap_or_else(|p| p.into_inner());
            conflicts::check(app, facts, &catalogue)
        };
        if !found.errors.is_empty() {
            return Err(Refused::many(409, found.errors).with_warnings(&found.warnings));
        }
        Ok(found.warnings)
    }

    /// Publishes the event, fenced on the app subject's sequence `last_seq`.
    async fn publish(&self, data: AppUpdated, last_seq: u64) -> Result<u64, Refused> {
        self.publish_until(data, last_seq, None).await
    }

    /// [`Self::publish`], trying no more once `until` (the caller's wait) is past.
    async fn publish_until(
        &self,
        data: AppUpdated,
        last_seq: u64,
        until: Option<tokio::time::Instant>,
    ) -> Result<u64, Refused> {
        let app = data.app_name.clone();
        let subject = subjects::app_updated(&app);
        let event = Envelope::new(APP_UPDATED, &self.id, data);
        match nr_infra::bus::publish_event_until(&self.js, &subject, &event, Some(last_seq), until)
            .await
        {
            Ok(rev) => Ok(rev),
            Err(PublishFailure::Conflict) => Err(Refused::one(
                409,
                "conflict.concurrent",
                None,
                None,
                format!("another change of {app:?} (a deploy, rollback or delete) finished while this one was checked; nothing was changed by this one: look at the current version and try again"),
            )),
            Err(PublishFailure::Other(e)) => {
                tracing::error!(app = %app, error = %format!("{e:#}"), "the change could not be published");
                Err(Refused {
                    status: 503,
                    error: format!("the app event log (NATS JetStream) did not acknowledge this change of {app:?}, as while a NATS node is down: it may or may not have been made; look at the app's versions before trying again"),
                    details: vec![],
                    warnings: Vec::new(),
                })
            }
        }
    }
}

fn not_found(app: &str) -> Refused {
    Refused::one(
        404,
        "app.not_found",
        None,
        None,
        format!("no app named {app:?} is deployed"),
    )
}

//! Deploy: bundle intake. Takes a bundle the gateway staged in the object store, checks
//! it (`bundle`), stores it by content hash and publishes `app.updated.<app>`, fenced on
//! the app subject's last sequence so two concurrent deploys cannot both win.

pub mod bundle;
pub mod config;

use std::sync::Arc;

use async_nats::jetstream;
use futures::StreamExt;
use nr_contracts::events::{AppChange, AppUpdated, APP_UPDATED};
use nr_contracts::requests::{DeployRefusal, DeployReply, DeployReport, DeploySubmit, Finding};
use nr_contracts::{decode, encode, subjects, Envelope};
use nr_infra::bus::PublishFailure;
use nr_infra::store::Store;
use object_store::path::Path;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

pub use config::DeployConfig;

#[derive(Clone)]
pub struct DeployDeps {
    pub nats: async_nats::Client,
    pub store: Store,
}

pub struct Deploy {
    shutdown: CancellationToken,
}

struct Inner {
    id: String,
    config: DeployConfig,
    nats: async_nats::Client,
    js: jetstream::Context,
    store: Store,
}

impl Deploy {
    pub async fn build(config: DeployConfig, deps: DeployDeps) -> anyhow::Result<Deploy> {
        let js = jetstream::new(deps.nats.clone());
        nr_infra::bus::ensure_streams(&js).await?;
        let inner = Arc::new(Inner {
            id: format!("deploy-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
            config,
            nats: deps.nats,
            js,
            store: deps.store,
        });
        let mut sub = inner
            .nats
            .queue_subscribe(subjects::DEPLOY_SUBMIT, subjects::DEPLOY_QUEUE_GROUP.into())
            .await
            .map_err(|e| anyhow::anyhow!("cannot subscribe to {}: {e}", subjects::DEPLOY_SUBMIT))?;
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            loop {
                let msg = tokio::select! {
                    _ = stop.cancelled() => break,
                    m = sub.next() => m,
                };
                let Some(msg) = msg else { break };
                let inner = inner.clone();
                tokio::spawn(async move {
                    let Some(reply_to) = msg.reply.clone() else {
                        return;
                    };
                    let reply = match decode::<DeploySubmit>(&msg.payload) {
                        Ok(req) => inner.submit(req).await,
                        Err(e) => refused(400, format!("malformed deploy request: {e}"), vec![]),
                    };
                    match encode(&reply) {
                        Ok(bytes) => {
                            if let Err(e) = inner.nats.publish(reply_to, bytes.into()).await {
                                tracing::warn!(error = %e, "cannot send deploy reply");
                            }
                        }
                        Err(e) => tracing::error!(error = %e, "cannot encode deploy reply"),
                    }
                });
            }
        });
        Ok(Deploy { shutdown })
    }

    pub async fn run_until_stopped(self, stop: CancellationToken) -> anyhow::Result<()> {
        stop.cancelled().await;
        self.shutdown.cancel();
        Ok(())
    }
}

fn refused(status: u16, error: String, details: Vec<Finding>) -> DeployReply {
    DeployReply::Refused(DeployRefusal {
        status,
        error,
        details,
    })
}

fn internal(error: impl std::fmt::Display) -> DeployReply {
    tracing::error!(error = %error, "deploy failed");
    refused(
        500,
        "deploy failed inside the platform; see the deploy service log".into(),
        vec![],
    )
}

impl Inner {
    #[tracing::instrument(skip_all, fields(file = %req.file_name))]
    async fn submit(&self, req: DeploySubmit) -> DeployReply {
        let staged = Path::from(req.staging_key.as_str());
        let reply = self.submit_staged(&staged, &req.file_name).await;
        if let Err(e) = self.store.delete(&staged).await {
            tracing::debug!(error = %e, "staged upload already gone");
        }
        reply
    }

    async fn submit_staged(&self, staged: &Path, file_name: &str) -> DeployReply {
        let bytes = match self.store.get(staged).await {
            Ok(r) => match r.bytes().await {
                Ok(b) => b,
                Err(e) => return internal(format!("cannot read staged upload: {e}")),
            },
            Err(e) => return internal(format!("cannot read staged upload: {e}")),
        };
        if bytes.len() as u64 > self.config.max_bundle_bytes {
            return refused(
                413,
                format!(
                    "the bundle is {} bytes; the limit is {} bytes",
                    bytes.len(),
                    self.config.max_bundle_bytes
                ),
                vec![],
            );
        }
        let checked = {
            let name = file_name.to_owned();
            let b = bytes.clone();
            match tokio::task::spawn_blocking(move || bundle::check(&b, &name)).await {
                Ok(Ok(c)) => c,
                Ok(Err(r)) => return refused(r.status, r.error, r.details),
                Err(e) => return internal(e),
            }
        };
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let bundle_key = format!("bundles/{}/{sha256}.zip", checked.app_name);
        if let Err(e) = self
            .store
            .put(&Path::from(bundle_key.as_str()), bytes.into())
            .await
        {
            return internal(format!("cannot store bundle {bundle_key}: {e}"));
        }
        let subject = subjects::app_updated(&checked.app_name);
        let (last_seq, previous_version) = match self.last_event(&subject).await {
            Ok(v) => v,
            Err(e) => return internal(e),
        };
        let event = Envelope::new(
            APP_UPDATED,
            &self.id,
            AppUpdated {
                app_name: checked.app_name.clone(),
                change: AppChange::Deployed,
                version: checked.version.clone(),
                sha256: sha256.clone(),
                bundle_key,
                manifest: checked.manifest,
                previous_version: previous_version.clone(),
            },
        );
        match nr_infra::bus::publish_event(&self.js, &subject, &event, Some(last_seq)).await {
            Ok(rev) => {
                tracing::info!(app = %checked.app_name, version = %checked.version, rev, "deployed");
                DeployReply::Deployed(DeployReport {
                    app_name: checked.app_name,
                    version: checked.version,
                    sha256,
                    previous_version,
                    rev,
                    warnings: checked.warnings,
                })
            }
            Err(PublishFailure::Conflict) => refused(
                409,
                format!(
                    "another deploy of '{}' finished first; deploy again to replace it",
                    checked.app_name
                ),
                vec![],
            ),
            Err(PublishFailure::Other(e)) => internal(e),
        }
    }

    /// Sequence and version of the app's current event (0 and none for a new app).
    async fn last_event(&self, subject: &str) -> anyhow::Result<(u64, Option<String>)> {
        let stream = self
            .js
            .get_stream(subjects::STREAM_APPS)
            .await
            .map_err(|e| anyhow::anyhow!("cannot open NR_APPS: {e}"))?;
        match stream.get_last_raw_message_by_subject(subject).await {
            Ok(msg) => {
                let prev: Envelope<AppUpdated> = decode(&msg.payload)?;
                let version = (prev.data.change != AppChange::Deleted).then_some(prev.data.version);
                Ok((msg.sequence, version))
            }
            Err(e)
                if e.kind()
                    == async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound =>
            {
                Ok((0, None))
            }
            Err(e) => Err(anyhow::anyhow!(
                "cannot read the last event of {subject}: {e}"
            )),
        }
    }
}

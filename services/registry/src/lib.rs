//! Registry: projects the app event log into Postgres (`noderouter_core.apps`,
//! `app_versions`) and answers lookups over NATS.
//!
//! The projection records the stream sequence it has applied, in the same transaction as
//! the change, so a redelivered or replayed event changes nothing: replaying `NR_APPS`
//! from the start rebuilds the tables identically.

pub mod projection;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer};
use clap::Args;
use futures::StreamExt;
use nr_contracts::requests::{AppList, AppSummary};
use nr_contracts::{encode, subjects};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Args)]
pub struct RegistryConfig {
    #[command(flatten)]
    pub nats: nr_config::NatsArgs,
    #[command(flatten)]
    pub db: nr_config::DbArgs,
    #[command(flatten)]
    pub health: nr_config::HealthArgs,
}

#[derive(Clone)]
pub struct RegistryDeps {
    pub nats: async_nats::Client,
    pub db: PgPool,
}

pub struct Registry {
    shutdown: CancellationToken,
}

/// Durable consumer shared by every registry instance.
const CONSUMER: &str = "registry-apps";

impl Registry {
    pub async fn build(_config: RegistryConfig, deps: RegistryDeps) -> anyhow::Result<Registry> {
        nr_infra::db::migrate(&deps.db).await?;
        let js = jetstream::new(deps.nats.clone());
        nr_infra::bus::ensure_streams(&js).await?;
        let shutdown = CancellationToken::new();

        let stream = js
            .get_stream(subjects::STREAM_APPS)
            .await
            .context("cannot open NR_APPS")?;
        let consumer = stream
            .get_or_create_consumer(
                CONSUMER,
                consumer::pull::Config {
                    durable_name: Some(CONSUMER.into()),
                    filter_subject: subjects::APP_UPDATED_ALL.into(),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(30),
                    // One event in flight across all instances keeps the projection in order.
                    max_ack_pending: 1,
                    ..Default::default()
                },
            )
            .await
            .context("cannot create the registry consumer")?;
        let mut messages = consumer.messages().await.context("cannot read NR_APPS")?;
        let db = deps.db.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    _ = stop.cancelled() => break,
                    n = messages.next() => n,
                };
                let msg = match next {
                    Some(Ok(m)) => m,
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "registry consumer error");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                    None => break,
                };
                let Ok(info) = msg.info() else { continue };
                let seq = info.stream_sequence;
                match projection::apply(&db, seq, &msg.payload).await {
                    Ok(()) => {
                        if let Err(e) = msg.ack().await {
                            tracing::warn!(seq, error = %e, "ack failed");
                        }
                    }
                    // Not acked: JetStream redelivers after ack_wait.
                    Err(e) => tracing::error!(seq, error = %e, "projection failed"),
                }
            }
        });

        let lookups = Arc::new(deps);
        let mut sub = lookups
            .nats
            .queue_subscribe(
                subjects::REGISTRY_APPS_LIST,
                subjects::REGISTRY_QUEUE_GROUP.into(),
            )
            .await
            .map_err(|e| anyhow::anyhow!("cannot subscribe to registry lookups: {e}"))?;
        let stop = shutdown.clone();
        tokio::spawn(async move {
            loop {
                let msg = tokio::select! {
                    _ = stop.cancelled() => break,
                    m = sub.next() => m,
                };
                let Some(msg) = msg else { break };
                let deps = lookups.clone();
                tokio::spawn(async move {
                    let Some(reply) = msg.reply else { return };
                    let payload = match list_apps(&deps.db).await {
                        Ok(list) => encode(&list).unwrap_or_default(),
                        Err(e) => {
                            tracing::error!(error = %e, "app list failed");
                            Vec::new()
                        }
                    };
                    let _ = deps.nats.publish(reply, payload.into()).await;
                });
            }
        });
        tracing::info!("registry ready");
        Ok(Registry { shutdown })
    }

    pub async fn run_until_stopped(self, stop: CancellationToken) -> anyhow::Result<()> {
        stop.cancelled().await;
        self.shutdown.cancel();
        Ok(())
    }
}

/// Every deployed app with its current version, by name.
pub async fn list_apps(db: &PgPool) -> anyhow::Result<AppList> {
    let rows: Vec<(String, Option<String>, Option<String>, String, String, i64, time::OffsetDateTime)> =
        sqlx::query_as(
            "SELECT app_name, display_name, description, current_version, current_sha256, rev, updated_at \
             FROM noderouter_core.apps WHERE NOT deleted ORDER BY app_name",
        )
        .fetch_all(db)
        .await?;
    let apps = rows
        .into_iter()
        .map(
            |(app_name, display_name, description, version, sha256, rev, updated_at)| AppSummary {
                app_name,
                display_name,
                description,
                version,
                sha256,
                rev: rev.max(0) as u64,
                updated_at: updated_at
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
            },
        )
        .collect();
    Ok(AppList { apps })
}

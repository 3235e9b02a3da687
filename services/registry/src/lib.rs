//! Registry: projects the app event log into Postgres (`noderouter_core.apps`,
//! `app_versions`) and answers lookups over NATS: `registry.apps.list` (current apps)
//! and `registry.apps.versions` (every version of one app, for rollback).
//!
//! The projection records the stream sequence it has applied, in the same transaction as
//! the change, so a redelivered or replayed event changes nothing: replaying `NR_APPS`
//! from the start rebuilds the tables identically.

pub mod projection;
pub mod rbac;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer};
use clap::Args;
use futures::StreamExt;
use nr_contracts::requests::{AppList, AppSummary, AppVersion, AppVersions, AppVersionsRequest};
use nr_contracts::{decode, encode, subjects};
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

        rbac::start(&js, deps.nats.clone(), deps.db.clone(), shutdown.clone()).await?;

        let lookups = Arc::new(Lookups {
            nats: deps.nats.clone(),
            db: deps.db.clone(),
            js,
        });
        for subject in [
            subjects::REGISTRY_APPS_LIST,
            subjects::REGISTRY_APP_VERSIONS,
        ] {
            let mut sub = lookups
                .nats
                .queue_subscribe(subject, subjects::REGISTRY_QUEUE_GROUP.into())
                .await
                .map_err(|e| anyhow::anyhow!("cannot subscribe to {subject}: {e}"))?;
            let stop = shutdown.clone();
            let lookups = lookups.clone();
            tokio::spawn(async move {
                loop {
                    let msg = tokio::select! {
                        _ = stop.cancelled() => break,
                        m = sub.next() => m,
                    };
                    let Some(msg) = msg else { break };
                    let lookups = lookups.clone();
                    tokio::spawn(async move { lookups.answer(msg).await });
                }
            });
        }
        tracing::info!("registry ready");
        Ok(Registry { shutdown })
    }

    pub async fn run_until_stopped(self, stop: CancellationToken) -> anyhow::Result<()> {
        stop.cancelled().await;
        self.shutdown.cancel();
        Ok(())
    }
}

/// What the lookup handlers need.
struct Lookups {
    nats: async_nats::Client,
    db: PgPool,
    js: jetstream::Context,
}

/// How long a versions lookup waits for the projection to reach the app's last event.
const CATCH_UP: Duration = Duration::from_secs(3);

impl Lookups {
    async fn answer(&self, msg: async_nats::Message) {
        let Some(reply) = msg.reply else { return };
        let payload = match msg.subject.as_str() {
            subjects::REGISTRY_APPS_LIST => match list_apps(&self.db).await {
                Ok(list) => encode(&list),
                Err(e) => {
                    // An empty reply fails fast at the caller instead of a timeout.
                    tracing::error!(error = %e, "app list failed");
                    Ok(Vec::new())
                }
            },
            subjects::REGISTRY_APP_VERSIONS => {
                let req: AppVersionsRequest = match decode(&msg.payload) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(error = %e, "malformed versions lookup");
                        let _ = self.nats.publish(reply, Vec::new().into()).await;
                        return;
                    }
                };
                self.catch_up(&req.app_name).await;
                match app_versions(&self.db, &req.app_name).await {
                    Ok(v) => encode(&v),
                    Err(e) => {
                        tracing::error!(error = %e, app = %req.app_name, "versions lookup failed");
                        Ok(Vec::new())
                    }
                }
            }
            _ => return,
        };
        match payload {
            Ok(bytes) => {
                if let Err(e) = self.nats.publish(reply, bytes.into()).await {
                    tracing::warn!(error = %e, "cannot send registry reply");
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot encode registry reply"),
        }
    }

    /// Waits (bounded) until the projection has applied the app's last event, so a
    /// lookup made right after a deploy, rollback or delete returned reflects it.
    async fn catch_up(&self, app: &str) {
        if !subjects::is_subject_token(app) {
            return;
        }
        let last = async {
            let stream = self.js.get_stream(subjects::STREAM_APPS).await.ok()?;
            stream
                .get_last_raw_message_by_subject(&subjects::app_updated(app))
                .await
                .ok()
                .map(|m| m.sequence)
        }
        .await;
        let Some(last) = last else { return };
        let deadline = tokio::time::Instant::now() + CATCH_UP;
        while tokio::time::Instant::now() < deadline {
            match projection::applied(&self.db).await {
                Ok(seq) if seq >= last => return,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the projection offset");
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tracing::warn!(
            app,
            last,
            "projection behind the event log; answering with what it has"
        );
    }
}

/// Every version of one app, newest first.
pub async fn app_versions(db: &PgPool, app: &str) -> anyhow::Result<AppVersions> {
    let current: Option<(String, String, bool)> = sqlx::query_as(
        "SELECT current_version, current_sha256, deleted FROM noderouter_core.apps WHERE app_name = $1",
    )
    .bind(app)
    .fetch_optional(db)
    .await?;
    let rows: Vec<(String, String, time::OffsetDateTime, i64, i64)> = sqlx::query_as(
        "SELECT version, sha256, deployed_at, first_rev, last_rev FROM noderouter_core.app_versions \
         WHERE app_name = $1 ORDER BY first_rev DESC",
    )
    .bind(app)
    .fetch_all(db)
    .await?;
    let (current_version, current_sha, deleted) = match current {
        Some((v, s, d)) => (Some(v), Some(s), d),
        None => (None, None, false),
    };
    let versions = rows
        .into_iter()
        .map(
            |(version, sha256, deployed_at, first_rev, last_rev)| AppVersion {
                current: !deleted && current_sha.as_deref() == Some(sha256.as_str()),
                version,
                sha256,
                deployed_at: deployed_at
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
                first_rev: first_rev.max(0) as u64,
                last_rev: last_rev.max(0) as u64,
            },
        )
        .collect();
    Ok(AppVersions {
        app_name: app.to_owned(),
        found: current_version.is_some(),
        deleted,
        current_version: if deleted { None } else { current_version },
        versions,
    })
}

/// A row of `apps` as the list reads it.
type AppRow = (
    String,
    Option<String>,
    Option<String>,
    String,
    String,
    i64,
    time::OffsetDateTime,
);

/// Every deployed app with its current version, by name.
pub async fn list_apps(db: &PgPool) -> anyhow::Result<AppList> {
    let rows: Vec<AppRow> =
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

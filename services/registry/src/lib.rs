//! Registry: projects the app event log into Postgres (`noderouter_core.apps`,
//! `app_versions`) and answers lookups over NATS: `registry.apps.list` (current apps)
//! and `registry.apps.versions` (every version of one app, for rollback).
//!
//! The projection records the stream sequence it has applied, in the same transaction as
//! the change, and reads its stream from there (an ordered consumer, no durable state in
//! NATS): a fresh or restored database catches up from the log at start, and a replayed
//! event changes nothing. Several registries may run: each applies every event, and the
//! offset row serialises them so each event lands once.

pub mod projection;
pub mod rbac;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use clap::Args;
use nr_contracts::requests::{
    AppList, AppListRequest, AppSummary, AppVersion, AppVersions, AppVersionsRequest,
};
use nr_contracts::{subjects, RpcError};
use nr_infra::drain::Drain;
use nr_infra::rpc;
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
    /// How long start-up waits for the projections to catch up with the event log
    /// (a fresh or restored database), seconds; they go on catching up after it.
    #[arg(long, env = "NR_REGISTRY_CATCH_UP_S", default_value_t = 120)]
    pub catch_up_s: u64,
}

impl RegistryConfig {
    fn catch_up(&self) -> Duration {
        Duration::from_secs(self.catch_up_s)
    }
}

#[derive(Clone)]
pub struct RegistryDeps {
    pub nats: async_nats::Client,
    pub db: PgPool,
}

pub struct Registry {
    drain: Drain,
}

impl Registry {
    pub async fn build(config: RegistryConfig, deps: RegistryDeps) -> anyhow::Result<Registry> {
        nr_infra::db::migrate(&deps.db).await?;
        let js = jetstream::new(deps.nats.clone());
        nr_infra::bus::ensure_streams(&js).await?;
        let drain = Drain::new();
        let shutdown = drain.token().clone();

        // Each projection reads its stream from the offset it stored in Postgres, so a
        // fresh or restored database is caught up from the log before this returns.
        let applied = projection::applied(&deps.db).await?;
        let target = nr_infra::follow::last_sequence(&js, subjects::STREAM_APPS).await?;
        let db = deps.db.clone();
        let replay = nr_infra::follow::Replay::default();
        let offset = Arc::new(nr_infra::offset::Offset::with_replay(
            nr_infra::offset::APPS,
            applied,
            replay.clone(),
        ));
        nr_infra::follow::from_offset(
            &js,
            nr_infra::follow::Follow {
                stream: subjects::STREAM_APPS,
                filter: Some(subjects::APP_UPDATED_ALL),
                applied,
                name: "apps",
                replay: Some(replay),
            },
            shutdown.clone(),
            move |seq, payload| {
                let (db, offset) = (db.clone(), offset.clone());
                async move { projection::apply(&db, &offset, seq, &payload).await }
            },
        )
        .await?;
        let rbac_target =
            rbac::start(&js, deps.nats.clone(), deps.db.clone(), shutdown.clone()).await?;
        let db = deps.db.clone();
        nr_infra::follow::wait_caught_up("apps", target, config.catch_up(), || {
            projection::applied(&db)
        })
        .await;
        let db = deps.db.clone();
        nr_infra::follow::wait_caught_up("rbac", rbac_target, config.catch_up(), || {
            rbac::applied(&db)
        })
        .await;

        let lookups = Arc::new(Lookups {
            db: deps.db.clone(),
            js,
        });
        // Both lookups in the `nr-registry` queue group, answered the one way
        // (`nr_infra::rpc`); a database failure is a 500 `internal` error.
        let l = lookups.clone();
        rpc::serve(deps.nats.clone(), &drain, move |_: AppListRequest| {
            let l = l.clone();
            async move {
                l.catch_up(None).await;
                list_apps(&l.db).await.map_err(|e| {
                    tracing::error!(error = %e, "app list failed");
                    RpcError::internal(format!("cannot read the app list: {e}"))
                })
            }
        })
        .await?;
        let l = lookups.clone();
        rpc::serve(deps.nats.clone(), &drain, move |req: AppVersionsRequest| {
            let l = l.clone();
            async move {
                l.catch_up(Some(&req.app_name)).await;
                app_versions(&l.db, &req.app_name).await.map_err(|e| {
                    tracing::error!(error = %e, app = %req.app_name, "versions lookup failed");
                    RpcError::internal(format!("cannot read the versions of {}: {e}", req.app_name))
                })
            }
        })
        .await?;
        tracing::info!("registry ready");
        Ok(Registry { drain })
    }

    /// Stops taking lookups and events when `stop` is cancelled, and returns once the
    /// lookups in progress are answered (at most 10 s).
    pub async fn run_until_stopped(self, stop: CancellationToken) -> anyhow::Result<()> {
        stop.cancelled().await;
        if !self.drain.finish(Duration::from_secs(10)).await {
            tracing::warn!("registry lookups still running after the drain limit; exiting");
        }
        Ok(())
    }
}

/// What the lookup handlers need.
struct Lookups {
    db: PgPool,
    js: jetstream::Context,
}

/// How long a versions lookup waits for the projection to reach the app's last event.
const CATCH_UP: Duration = Duration::from_secs(3);

impl Lookups {
    /// Waits (bounded) until the projection has applied the app's last event (every
    /// app's, for `None`), so a lookup made right after a deploy, rollback or delete
    /// returned reflects it.
    async fn catch_up(&self, app: Option<&str>) {
        if app.is_some_and(|a| !subjects::is_subject_token(a)) {
            return;
        }
        let last = async {
            let mut stream = self.js.get_stream(subjects::STREAM_APPS).await.ok()?;
            match app {
                Some(app) => stream
                    .get_last_raw_message_by_subject(&subjects::app_updated(app))
                    .await
                    .ok()
                    .map(|m| m.sequence),
                None => stream.info().await.ok().map(|i| i.state.last_sequence),
            }
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
            app = app.unwrap_or("*"),
            last,
            "projection behind the event log; answering with what it has"
        );
    }
}

/// A row of `app_versions` as the versions lookup reads it.
type VersionRow = (
    String,
    String,
    time::OffsetDateTime,
    i64,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// Every version of one app, newest first.
pub async fn app_versions(db: &PgPool, app: &str) -> anyhow::Result<AppVersions> {
    let current: Option<(String, String, bool)> = sqlx::query_as(
        "SELECT current_version, current_sha256, deleted FROM noderouter_core.apps WHERE app_name = $1",
    )
    .bind(app)
    .fetch_optional(db)
    .await?;
    let rows: Vec<VersionRow> = sqlx::query_as(
        "SELECT version, sha256, deployed_at, first_rev, last_rev, deployed_by, deployed_by_id, refused \
         FROM noderouter_core.app_versions \
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
            |(
                version,
                sha256,
                deployed_at,
                first_rev,
                last_rev,
                deployed_by,
                deployed_by_id,
                refused,
            )| {
                AppVersion {
                    current: !deleted && current_sha.as_deref() == Some(sha256.as_str()),
                    version,
                    sha256,
                    deployed_at: deployed_at
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default(),
                    first_rev: first_rev.max(0) as u64,
                    last_rev: last_rev.max(0) as u64,
                    deployed_by,
                    deployed_by_id,
                    refused,
                }
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
    bool,
    Option<String>,
);

/// Every deployed app with its current version, and every deleted one with the version
/// it had, by name.
pub async fn list_apps(db: &PgPool) -> anyhow::Result<AppList> {
    let rows: Vec<AppRow> = sqlx::query_as(
        "SELECT a.app_name, a.display_name, a.description, a.current_version, a.current_sha256, a.rev, a.updated_at, \
             a.deleted, \
             CASE WHEN a.deleted AND NOT EXISTS (SELECT 1 FROM noderouter_core.app_versions v \
                     WHERE v.app_name = a.app_name AND v.refused IS NULL) \
                 THEN (SELECT v.refused FROM noderouter_core.app_versions v \
                     WHERE v.app_name = a.app_name ORDER BY v.last_rev DESC LIMIT 1) END \
         FROM noderouter_core.apps a ORDER BY a.app_name",
    )
    .fetch_all(db)
    .await?;
    let mut list = AppList {
        apps: Vec::new(),
        deleted: Vec::new(),
    };
    for (app_name, display_name, description, version, sha256, rev, updated_at, deleted, refused) in
        rows
    {
        let summary = AppSummary {
            app_name,
            display_name,
            description,
            version,
            sha256,
            rev: rev.max(0) as u64,
            updated_at: updated_at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            refused,
        };
        if deleted {
            list.deleted.push(summary);
        } else {
            list.apps.push(summary);
        }
    }
    Ok(list)
}

//! `nr-registry`: the registry service on its own.

/// mimalloc: the sync path allocates per request in hyper, axum and the NATS client;
/// see docs/adr/0020-mimalloc.md.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use nr_registry::{Registry, RegistryConfig, RegistryDeps};

#[derive(Parser)]
#[command(
    name = "nr-registry",
    about = "NodeRouter registry: projections and lookups"
)]
struct Cli {
    #[command(flatten)]
    config: RegistryConfig,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    nr_telemetry::init();
    let cli = Cli::parse();
    let stop = nr_telemetry::shutdown_on_signal();
    let nats =
        nr_infra::bus::connect_as(&cli.config.nats, nr_config::nats_auth::Role::Registry).await?;
    let db = nr_infra::db::connect(&cli.config.db.database_url, cli.config.db.db_pool).await?;
    let health = cli.config.health.health_addr.clone();
    // /readyz names each dependency that is down.
    let ready = nr_infra::health::Deps {
        nats: Some(nats.clone()),
        db: Some(db.clone()),
        store: None,
    }
    .ready_check();
    let registry = Registry::build(cli.config, RegistryDeps { nats, db }).await?;
    let addr = health.unwrap_or_else(|| "127.0.0.1:3103".into());
    let ops = nr_telemetry::ops_router("registry", ready);
    let (bound, serve) = nr_telemetry::serve(&addr, "NR_HEALTH_ADDR", ops, stop.clone()).await?;
    tracing::info!(%bound, "health, readiness and metrics endpoint");
    tokio::spawn(serve);
    registry.run_until_stopped(stop).await
}

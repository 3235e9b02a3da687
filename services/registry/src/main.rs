//! `nr-registry`: the registry service on its own.

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
    let nats = nr_infra::bus::connect(&cli.config.nats.nats_url, "nr-registry").await?;
    let db = nr_infra::db::connect(&cli.config.db.database_url, cli.config.db.db_pool).await?;
    let health = cli.config.health.health_addr.clone();
    let registry = Registry::build(cli.config, RegistryDeps { nats, db }).await?;
    if let Some(addr) = health {
        let (bound, serve) =
            nr_telemetry::serve(&addr, nr_telemetry::health_router("registry"), stop.clone())
                .await?;
        tracing::info!(%bound, "health endpoint");
        tokio::spawn(serve);
    }
    registry.run_until_stopped(stop).await
}

//! `nr-runner`: the runner service on its own.

use clap::Parser;
use nr_runner::{Runner, RunnerConfig, RunnerDeps};

#[derive(Parser)]
#[command(
    name = "nr-runner",
    about = "NodeRouter runner: executes apps in Python workers"
)]
struct Cli {
    #[command(flatten)]
    config: RunnerConfig,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    nr_telemetry::init();
    let cli = Cli::parse();
    let stop = nr_telemetry::shutdown_on_signal();
    let nats = nr_infra::bus::connect(&cli.config.nats.nats_url, "nr-runner").await?;
    let store = nr_infra::store::open(&cli.config.store.object_store_url)?;
    let db = nr_infra::db::connect(&cli.config.database_url, 4).await?;
    nr_infra::db::migrate(&db).await?;
    let health = cli.config.health.health_addr.clone();
    let runner = Runner::build(cli.config, RunnerDeps { nats, store, db }).await?;
    if let Some(addr) = health {
        let (bound, serve) =
            nr_telemetry::serve(&addr, nr_telemetry::health_router("runner"), stop.clone()).await?;
        tracing::info!(%bound, "health endpoint");
        tokio::spawn(serve);
    }
    runner.run_until_stopped(stop).await
}

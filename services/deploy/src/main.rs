//! `nr-deploy`: the deploy service on its own.

use clap::Parser;
use nr_deploy::{Deploy, DeployConfig, DeployDeps};

#[derive(Parser)]
#[command(
    name = "nr-deploy",
    about = "NodeRouter deploy: bundle intake and checks"
)]
struct Cli {
    #[command(flatten)]
    config: DeployConfig,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    nr_telemetry::init();
    let cli = Cli::parse();
    let stop = nr_telemetry::shutdown_on_signal();
    let nats = nr_infra::bus::connect(&cli.config.nats.nats_url, "nr-deploy").await?;
    let store = nr_infra::store::open(&cli.config.store.object_store_url)?;
    let health = cli.config.health.health_addr.clone();
    let deploy = Deploy::build(cli.config, DeployDeps { nats, store }).await?;
    if let Some(addr) = health {
        let (bound, serve) =
            nr_telemetry::serve(&addr, nr_telemetry::health_router("deploy"), stop.clone()).await?;
        tracing::info!(%bound, "health endpoint");
        tokio::spawn(serve);
    }
    tracing::info!("deploy ready");
    deploy.run_until_stopped(stop).await
}

//! `nr-deploy`: the deploy service on its own.

/// mimalloc: the sync path allocates per request in hyper, axum and the NATS client;
/// see docs/adr/0020-mimalloc.md.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    let nats =
        nr_infra::bus::connect_as(&cli.config.nats, nr_config::nats_auth::Role::Deploy).await?;
    let store = nr_infra::store::open(&cli.config.store.object_store_url)?;
    let health = cli.config.health.health_addr.clone();
    // The import check's database (app identities, variables): checked at start, and by
    // /readyz, which names each dependency that is down.
    let db = match &cli.config.database_url {
        Some(url) => Some(nr_infra::db::connect(url, 1).await?),
        None => None,
    };
    let ready = nr_infra::health::Deps {
        nats: Some(nats.clone()),
        db,
        store: Some(store.clone()),
    }
    .ready_check();
    let deploy = Deploy::build(cli.config, DeployDeps { nats, store }).await?;
    let addr = health.unwrap_or_else(|| "127.0.0.1:3102".into());
    let ops = nr_telemetry::ops_router("deploy", ready);
    let (bound, serve) = nr_telemetry::serve(&addr, "NR_HEALTH_ADDR", ops, stop.clone()).await?;
    tracing::info!(%bound, "health, readiness and metrics endpoint");
    tokio::spawn(serve);
    tracing::info!("deploy ready");
    deploy.run_until_stopped(stop).await
}

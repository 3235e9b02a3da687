//! `nr-gateway`: the gateway service on its own.

/// mimalloc: the sync path allocates per request in hyper, axum and the NATS client;
/// see docs/adr/0020-mimalloc.md.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use nr_gateway::{Gateway, GatewayConfig, GatewayDeps};

#[derive(Parser)]
#[command(name = "nr-gateway", about = "NodeRouter gateway: the public HTTP API")]
struct Cli {
    /// Development only: start without `RUNNER_SECRET`, so runner requests and replies
    /// travel unsigned and anyone on the bus who may publish them is believed.
    #[arg(long, env = "NR_INSECURE_DEV", action = clap::ArgAction::SetTrue, value_parser = clap::builder::BoolishValueParser::new())]
    insecure_dev: bool,
    #[command(flatten)]
    config: GatewayConfig,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    nr_telemetry::init();
    let cli = Cli::parse();
    if nr_auth::signing::Keys::parse(cli.config.runner_secret.as_deref()).is_empty() {
        if !cli.insecure_dev {
            anyhow::bail!(
                "RUNNER_SECRET is not set: runner requests must be signed. Set RUNNER_SECRET \
                 (the same value on every gateway and runner), or pass --insecure-dev \
                 (NR_INSECURE_DEV=1) for development only"
            );
        }
        tracing::warn!("--insecure-dev: runner requests and replies are not signed");
    }
    let stop = nr_telemetry::shutdown_on_signal();
    let (nats, bus_drops) =
        nr_infra::bus::connect_as_watched(&cli.config.nats, nr_config::nats_auth::Role::Gateway)
            .await?;
    let store = nr_infra::store::open(&cli.config.store.object_store_url)?;
    let db = nr_infra::db::connect(&cli.config.db.database_url, cli.config.db.db_pool).await?;
    nr_infra::db::migrate(&db).await?;
    let gateway = Gateway::build(
        cli.config,
        GatewayDeps {
            nats,
            store,
            db,
            extra_routes: axum::Router::new(),
            local_runners: Default::default(),
            bus_drops,
        },
    )
    .await?;
    gateway.run_until_stopped(stop).await
}

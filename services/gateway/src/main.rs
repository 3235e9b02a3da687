//! `nr-gateway`: the gateway service on its own.

use clap::Parser;
use nr_gateway::{Gateway, GatewayConfig, GatewayDeps};

#[derive(Parser)]
#[command(name = "nr-gateway", about = "NodeRouter gateway: the public HTTP API")]
struct Cli {
    #[command(flatten)]
    config: GatewayConfig,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    nr_telemetry::init();
    let cli = Cli::parse();
    let stop = nr_telemetry::shutdown_on_signal();
    let nats = nr_infra::bus::connect(&cli.config.nats.nats_url, "nr-gateway").await?;
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
        },
    )
    .await?;
    gateway.run_until_stopped(stop).await
}

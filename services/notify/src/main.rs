//! `nr-notify`: the notify service on its own.

/// mimalloc: the sync path allocates per request in hyper, axum and the NATS client;
/// see docs/adr/0020-mimalloc.md.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use nr_notify::{Notify, NotifyConfig, NotifyDeps};

#[derive(Parser)]
#[command(name = "nr-notify", about = "NodeRouter notify: the WebSocket hub")]
struct Cli {
    #[command(flatten)]
    config: NotifyConfig,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    nr_telemetry::init();
    let cli = Cli::parse();
    let stop = nr_telemetry::shutdown_on_signal();
    let nats =
        nr_infra::bus::connect_as(&cli.config.nats, nr_config::nats_auth::Role::Notify).await?;
    let db = nr_infra::db::connect(&cli.config.db.database_url, cli.config.db.db_pool).await?;
    let addr = cli.config.http_addr.clone();
    // /readyz names each dependency that is down (NATS, Postgres).
    let ready = nr_infra::health::Deps {
        nats: Some(nats.clone()),
        db: Some(db.clone()),
        store: None,
    }
    .ready_check();
    let notify = Notify::build(cli.config, NotifyDeps { nats, db }).await?;
    let router = notify
        .router()
        .merge(nr_telemetry::ops_router("notify", ready));
    let (bound, serve) = nr_telemetry::serve(&addr, "NR_NOTIFY_ADDR", router, stop.clone()).await?;
    tracing::info!(%bound, "notify listening");
    tokio::spawn(serve);
    notify.run_until_stopped(stop).await
}

//! `nr-runner`: the runner service on its own.

/// mimalloc: the sync path allocates per request in hyper, axum and the NATS client;
/// see docs/adr/0020-mimalloc.md.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use nr_runner::{Runner, RunnerConfig, RunnerDeps};

#[derive(Parser)]
#[command(
    name = "nr-runner",
    about = "NodeRouter runner: executes apps in Python workers"
)]
struct Cli {
    /// Development only: start without `RUNNER_SECRET`, so runner requests and replies
    /// travel unsigned and anyone on the bus who may publish them is believed.
    #[arg(long, env = "NR_INSECURE_DEV", action = clap::ArgAction::SetTrue, value_parser = clap::builder::BoolishValueParser::new())]
    insecure_dev: bool,
    #[command(flatten)]
    config: RunnerConfig,
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
    let nats =
        nr_infra::bus::connect_as(&cli.config.nats, nr_config::nats_auth::Role::Runner).await?;
    let store = nr_infra::store::open(&cli.config.store.object_store_url)?;
    let db = nr_infra::db::connect(&cli.config.database_url, 4).await?;
    nr_infra::db::migrate(&db).await?;
    let health = cli.config.health.health_addr.clone();
    let jobs_nats = nr_infra::bus::connect_runner_jobs(&cli.config.nats).await?;
    let deps = RunnerDeps {
        nats,
        jobs_nats,
        store,
        db,
    };
    let runner = Runner::build(cli.config, deps).await?;
    let addr = health.unwrap_or_else(|| "127.0.0.1:3104".into());
    let ops = nr_telemetry::ops_router("runner", runner.ready_check());
    let (bound, serve) = nr_telemetry::serve(&addr, "NR_HEALTH_ADDR", ops, stop.clone()).await?;
    tracing::info!(%bound, "health, readiness and metrics endpoint");
    tokio::spawn(serve);
    runner.run_until_stopped(stop).await
}

//! Typed configuration shared by the services, read from the environment (or flags).
//!
//! Each service composes the pieces it needs with `#[command(flatten)]`. Defaults are
//! the embedded single-machine setup: NATS and Postgres on loopback, bundles in a local
//! directory.

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct NatsArgs {
    /// NATS server URL (JetStream enabled).
    #[arg(long, env = "NR_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
}

#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// Postgres URL. Apps receive the same value as `DATABASE_URL`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/noderouter"
    )]
    pub database_url: String,
    /// Connections in the platform's own pool.
    #[arg(long, env = "NR_DB_POOL", default_value_t = 8)]
    pub db_pool: u32,
}

#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Object store for bundles: `s3://bucket[/prefix]` (settings from the `AWS_*`
    /// variables), a directory path, `file:///abs/path`, or `memory://`.
    #[arg(long, env = "NR_OBJECT_STORE_URL", default_value = ".data/objects")]
    pub object_store_url: String,
}

#[derive(Debug, Clone, Args)]
pub struct HealthArgs {
    /// Address of the `/healthz` listener for services that have no public HTTP port.
    #[arg(long, env = "NR_HEALTH_ADDR")]
    pub health_addr: Option<String>,
}

/// Number of CPU cores, the default size of worker pools.
pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

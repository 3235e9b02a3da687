//! Deploy configuration.

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct DeployConfig {
    #[command(flatten)]
    pub nats: nr_config::NatsArgs,
    #[command(flatten)]
    pub store: nr_config::StoreArgs,
    #[command(flatten)]
    pub health: nr_config::HealthArgs,
    /// Largest bundle accepted, bytes (the gateway answers 413 above it).
    #[arg(long, env = "NR_MAX_BUNDLE_BYTES", default_value_t = 50 * 1024 * 1024)]
    pub max_bundle_bytes: u64,
}

//! Deploy configuration: flags, each with an environment variable. `docs/deploy.md`
//! lists them with their defaults.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args};

use crate::archive::Limits;
use crate::check::Checker;
use crate::import::ImportCheck;

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
    #[command(flatten)]
    pub checks: CheckArgs,
    /// Python interpreter for the import check: the runner's, with the same packages.
    #[arg(long, env = "NR_PYTHON", default_value = "python3")]
    pub python: String,
    /// Postgres URL handed to the app as `DATABASE_URL` during the import check, as the
    /// runner does (module-level migrations run against it).
    #[arg(long = "database-url", env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Key that opens app secrets for the import check (the gateways' and runners'
    /// `NR_SECRETS_KEY`), so module-level code reads them as it will on the runner.
    /// Unset: the check runs with the app's variables only.
    #[arg(long, env = "NR_SECRETS_KEY", hide_env_values = true)]
    pub secrets_key: Option<String>,
}

/// Limits and switches of the bundle checks.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// Most entries (files and folders) in a bundle zip.
    #[arg(long, env = "NR_DEPLOY_MAX_ENTRIES", default_value_t = Limits::default().max_entries)]
    pub max_bundle_entries: usize,
    /// Largest inflated size of one file of a bundle, bytes.
    #[arg(long, env = "NR_DEPLOY_MAX_ENTRY_BYTES", default_value_t = Limits::default().max_entry_bytes)]
    pub max_entry_bytes: u64,
    /// Largest inflated size of all files of a bundle together, bytes.
    #[arg(long, env = "NR_DEPLOY_MAX_UNPACKED_BYTES", default_value_t = Limits::default().max_total_bytes)]
    pub max_unpacked_bytes: u64,
    /// Largest inflated/compressed ratio of one file (zip bomb guard).
    #[arg(long, env = "NR_DEPLOY_MAX_RATIO", default_value_t = Limits::default().max_ratio)]
    pub max_compression_ratio: u64,
    /// Files inflating to less than this many bytes are exempt from the ratio limit.
    #[arg(long, env = "NR_DEPLOY_RATIO_MIN_BYTES", default_value_t = Limits::default().ratio_min_bytes)]
    pub ratio_min_bytes: u64,
    /// Time limit of the import check (compiling and importing main.py), seconds.
    #[arg(long, env = "NR_DEPLOY_IMPORT_TIMEOUT_S", default_value_t = 60.0)]
    pub deploy_import_timeout_s: f64,
    /// Run the import check (`false` only where deploy has no Python; the runner still
    /// refuses to serve a version that does not import).
    #[arg(long, env = "NR_DEPLOY_IMPORT_CHECK", default_value_t = true, action = ArgAction::Set)]
    pub import_check: bool,
    /// How long a deploy or rollback waits for the live runners to load the version it
    /// published, seconds; a version a runner cannot load is undone (0: do not wait).
    #[arg(long, env = "NR_DEPLOY_LOAD_WAIT_S", default_value_t = 60.0)]
    pub load_wait_s: f64,
    /// Where bundles are unpacked while they are checked (the system temp dir if unset).
    #[arg(long, env = "NR_DEPLOY_DIR")]
    pub deploy_dir: Option<PathBuf>,
    /// App users, uid range and process limits (shared with the runner).
    #[command(flatten)]
    pub contain: nr_infra::appid::ContainArgs,
}

impl Default for CheckArgs {
    fn default() -> Self {
        let l = Limits::default();
        CheckArgs {
            max_bundle_entries: l.max_entries,
            max_entry_bytes: l.max_entry_bytes,
            max_unpacked_bytes: l.max_total_bytes,
            max_compression_ratio: l.max_ratio,
            ratio_min_bytes: l.ratio_min_bytes,
            deploy_import_timeout_s: 60.0,
            import_check: true,
            load_wait_s: 60.0,
            deploy_dir: None,
            contain: Default::default(),
        }
    }
}

impl CheckArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            max_entries: self.max_bundle_entries,
            max_entry_bytes: self.max_entry_bytes,
            max_total_bytes: self.max_unpacked_bytes,
            max_ratio: self.max_compression_ratio.max(1),
            ratio_min_bytes: self.ratio_min_bytes,
        }
    }
}

impl DeployConfig {
    /// How long to wait for the runners' loads ([`Self::checker`] refuses a bad value).
    pub fn load_wait(&self) -> Duration {
        Duration::try_from_secs_f64(self.checks.load_wait_s).unwrap_or(Duration::ZERO)
    }

    /// The checker this configuration describes; fails on a malformed secrets key or a
    /// load wait out of range.
    pub fn checker(&self) -> anyhow::Result<Checker> {
        if !(self.checks.load_wait_s.is_finite()
            && (0.0..=3600.0).contains(&self.checks.load_wait_s))
        {
            anyhow::bail!(
                "NR_DEPLOY_LOAD_WAIT_S must be a number of seconds from 0 to 3600 (got {})",
                self.checks.load_wait_s
            );
        }
        let secrets = nr_infra::appenv::SecretsKey::from_setting(self.secrets_key.as_deref())?;
        let timeout = if self.checks.deploy_import_timeout_s.is_finite()
            && self.checks.deploy_import_timeout_s > 0.0
        {
            self.checks.deploy_import_timeout_s
        } else {
            60.0
        };
        Ok(Checker {
            limits: self.checks.limits(),
            contain: self.checks.contain.clone(),
            import: self.checks.import_check.then(|| ImportCheck {
                env: Vec::new(),
                python: self.python.clone(),
                database_url: self.database_url.clone(),
                timeout: Duration::from_secs_f64(timeout),
                contain: self.checks.contain.clone(),
                secrets,
            }),
            work_dir: self.checks.deploy_dir.clone(),
        })
    }
}

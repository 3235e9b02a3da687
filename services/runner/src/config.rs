//! Runner configuration.

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct RunnerConfig {
    #[command(flatten)]
    pub nats: nr_config::NatsArgs,
    #[command(flatten)]
    pub store: nr_config::StoreArgs,
    #[command(flatten)]
    pub health: nr_config::HealthArgs,
    /// `DATABASE_URL` handed to apps (module code, injected `conn`).
    #[arg(
        long = "app-database-url",
        env = "DATABASE_URL",
        hide_env_values = true,
        default_value = "postgres://postgres@127.0.0.1:5432/noderouter"
    )]
    pub database_url: String,
    /// Python interpreter that runs apps (needs psycopg2 for `conn` injection).
    #[arg(long, env = "NR_PYTHON", default_value = "python3")]
    pub python: String,
    /// Most workers per app; 0 means the number of cores.
    #[arg(long, env = "NR_RUNNER_POOL", default_value_t = 0)]
    pub pool_size: usize,
    /// Time limit of a sync call when the manifest sets no `timeout_s`, seconds.
    #[arg(long, env = "NR_SYNC_TIMEOUT_S", default_value_t = 30.0)]
    pub sync_timeout_s: f64,
    /// Time limit for importing an app (module-level code included), seconds.
    #[arg(long, env = "NR_IMPORT_TIMEOUT_S", default_value_t = 120.0)]
    pub import_timeout_s: f64,
    /// Time limit of an async job when the manifest sets no `job_timeout_s`, seconds.
    #[arg(long, env = "NR_JOB_TIMEOUT_S", default_value_t = 300.0)]
    pub job_timeout_s: f64,
    /// Lease a runner holds on a running job, seconds: a job whose runner died is run
    /// again this long after the runner's last renewal.
    #[arg(long, env = "NR_JOB_LEASE_S", default_value_t = 30.0)]
    pub job_lease_s: f64,
    /// Job slots, per-app limits, job workers, logs and retention.
    #[command(flatten)]
    pub jobs: JobArgs,
    /// Keys that sign runner requests (comma-separated; any verifies; 16 characters at
    /// least). Required: unset, the runner refuses to start unless `--insecure-dev`.
    #[arg(long, env = "RUNNER_SECRET", hide_env_values = true)]
    pub runner_secret: Option<String>,
    /// Key that opens app secrets (the gateway's `NR_SECRETS_KEY`; several,
    /// comma-separated, during a rotation). Unset: an app with secrets does not load.
    #[arg(long, env = "NR_SECRETS_KEY", hide_env_values = true)]
    pub secrets_key: Option<String>,
    /// App users, uid range and process limits (shared with deploy's import check).
    #[command(flatten)]
    pub contain: nr_infra::appid::ContainArgs,
    /// Working directory for unpacked bundles and the worker socket. Run as root, its
    /// parents must be traversable by other users (mode o+x): app uids reach their
    /// bundles and the worker socket through it.
    #[arg(long, env = "NR_RUNNER_DIR", default_value = ".data/runner")]
    pub work_dir: PathBuf,
    /// Lifetimes and size limit of files apps return (`noderouter.download`).
    #[command(flatten)]
    pub files: nr_infra::files::FileArgs,
}

/// How a runner schedules and keeps jobs (shared by the all-in-one process).
#[derive(Debug, Clone, Args)]
pub struct JobArgs {
    /// Jobs one runner runs at once; 0 means eight per core.
    #[arg(long, env = "NR_JOB_CONCURRENCY", default_value_t = 0)]
    pub job_concurrency: usize,
    /// Jobs of one app one runner runs at once, when its manifest sets no
    /// `job_concurrency`; 0 means half of the runner's job slots.
    #[arg(long, env = "NR_JOB_APP_CONCURRENCY", default_value_t = 0)]
    pub job_app_concurrency: usize,
    /// Jobs a job worker serves before it is replaced.
    #[arg(long, env = "NR_JOB_WORKER_MAX_JOBS", default_value_t = 1000)]
    pub job_worker_max_jobs: u32,
    /// Resident memory (MiB) past which a job worker is replaced after its job (0: never).
    #[arg(long, env = "NR_JOB_WORKER_MAX_RSS_MB", default_value_t = 256)]
    pub job_worker_max_rss_mb: u64,
    /// Bytes of stdout, stderr and `logging` output kept per job, and logged per sync
    /// call (the rest is left out, with a marker line saying how much).
    #[arg(long, env = "NR_JOB_LOG_BYTES", default_value_t = 65_536)]
    pub job_log_bytes: usize,
    /// Largest result a job may return, in bytes of JSON (it is stored with the job and
    /// answered whole); a larger one fails the job with an error naming both sizes.
    #[arg(long, env = "NR_JOB_RESULT_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub job_result_bytes: usize,
    /// Finished jobs (and their results and logs) are deleted this long after they
    /// finished, seconds (default 7 days).
    #[arg(long, env = "NR_JOB_RETENTION_S", default_value_t = 604_800.0)]
    pub job_retention_s: f64,
    /// How often finished jobs past their retention are pruned, seconds.
    #[arg(long, env = "NR_JOB_PRUNE_INTERVAL_S", default_value_t = 60.0)]
    pub job_prune_interval_s: f64,
    /// Rows deleted per prune statement.
    #[arg(long, env = "NR_JOB_PRUNE_BATCH", default_value_t = 500)]
    pub job_prune_batch: i64,
}

impl RunnerConfig {
    pub fn job_concurrency(&self) -> usize {
        if self.jobs.job_concurrency == 0 {
            8 * nr_config::cores()
        } else {
            self.jobs.job_concurrency
        }
    }

    pub fn job_app_concurrency(&self) -> usize {
        if self.jobs.job_app_concurrency == 0 {
            (self.job_concurrency() / 2).max(1)
        } else {
            self.jobs.job_app_concurrency
        }
    }

    pub fn job_pool(&self) -> crate::host::JobPoolSpec {
        crate::host::JobPoolSpec {
            max_jobs: self.jobs.job_worker_max_jobs.max(1),
            max_rss_mb: self.jobs.job_worker_max_rss_mb,
            idle: self.job_app_concurrency().max(1),
            log_bytes: self.jobs.job_log_bytes,
        }
    }

    pub fn pool(&self) -> usize {
        if self.pool_size == 0 {
            nr_config::cores()
        } else {
            self.pool_size
        }
    }
}

impl RunnerConfig {
    /// Refuses, before any app process starts, settings the runner cannot run with:
    /// each one named with what it must be.
    pub fn check(&self) -> anyhow::Result<()> {
        let mut wrong = Vec::new();
        for (setting, value, min, max) in [
            ("NR_SYNC_TIMEOUT_S", self.sync_timeout_s, 1.0, 86_400.0),
            ("NR_IMPORT_TIMEOUT_S", self.import_timeout_s, 1.0, 86_400.0),
            ("NR_JOB_TIMEOUT_S", self.job_timeout_s, 1.0, 86_400.0),
            ("NR_JOB_LEASE_S", self.job_lease_s, 1.0, 3_600.0),
        ] {
            wrong.extend(nr_config::seconds_in(setting, value, min, max).err());
        }
        wrong.extend(nr_auth::signing::Keys::check_lengths(self.runner_secret.as_deref()).err());
        if self.contain.app_uid_count == 0 {
            wrong.push("NR_APP_UID_COUNT must be at least 1 (got 0)".into());
        }
        // A job's result travels in one frame of the worker's socket (64 MiB at most).
        let result_max = crate::frame::MAX_FRAME - 1024 * 1024;
        if !(1024..=result_max).contains(&self.jobs.job_result_bytes) {
            wrong.push(format!(
                "NR_JOB_RESULT_BYTES must be from 1024 to {result_max} (got {})",
                self.jobs.job_result_bytes
            ));
        }
        nr_config::refused(wrong).map_err(anyhow::Error::msg)
    }
}

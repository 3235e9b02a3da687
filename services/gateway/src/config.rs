//! Gateway configuration.

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct GatewayConfig {
    /// Public HTTP address.
    #[arg(long, env = "NR_HTTP_ADDR", default_value = "127.0.0.1:3000")]
    pub http_addr: String,
    #[command(flatten)]
    pub nats: nr_config::NatsArgs,
    #[command(flatten)]
    pub store: nr_config::StoreArgs,
    #[command(flatten)]
    pub db: nr_config::DbArgs,
    #[command(flatten)]
    pub auth: nr_auth::AuthArgs,
    /// Largest JSON body of a sync or async call, bytes.
    #[arg(long, env = "NR_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Largest bundle upload, bytes.
    #[arg(long, env = "NR_MAX_BUNDLE_BYTES", default_value_t = 50 * 1024 * 1024)]
    pub max_bundle_bytes: usize,
    /// Time limit of a sync call when the manifest sets no `timeout_s`, seconds. The
    /// runner enforces it; the gateway waits this long plus a small margin.
    #[arg(long, env = "NR_SYNC_TIMEOUT_S", default_value_t = 30.0)]
    pub sync_timeout_s: f64,
    /// Keys signing runner requests (comma-separated; the first signs; 16 characters
    /// at least). Required: unset, the gateway refuses to start unless `--insecure-dev`.
    #[arg(long, env = "RUNNER_SECRET", hide_env_values = true)]
    pub runner_secret: Option<String>,
    /// Key sealing app secrets at rest: 32 bytes as 64 hex digits or base64; several,
    /// comma-separated, during a rotation (the first seals, any opens). Unset: secrets
    /// cannot be set (variables can).
    #[arg(long, env = "NR_SECRETS_KEY", hide_env_values = true)]
    pub secrets_key: Option<String>,
    /// Runs of an async job in all when its manifest sets no `job_retry.attempts` (the
    /// first run included; see the manifest's `job_retry` for what is retried).
    #[arg(long, env = "NR_JOB_MAX_ATTEMPTS", default_value_t = 3)]
    pub job_max_attempts: i32,
    /// How long a deploy (checks included) may take, seconds.
    #[arg(long, env = "NR_DEPLOY_TIMEOUT_S", default_value_t = 180.0)]
    pub deploy_timeout_s: f64,
    /// Seconds a client may take to send its request head; slower ones are cut off.
    #[arg(long, env = "NR_HEADER_TIMEOUT_S", default_value_t = 10.0)]
    pub header_timeout_s: f64,
    /// Seconds a request body may take to arrive in full (from the request's start);
    /// later, the request answers 408 and the connection closes.
    #[arg(long, env = "NR_BODY_TIMEOUT_S", default_value_t = 60.0)]
    pub body_timeout_s: f64,
    /// Open HTTP connections at most; past it new connections are closed at once.
    #[arg(long, env = "NR_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,
    /// Open HTTP connections from one client address at most (IPv6: one /64); past it,
    /// that address's new connections are closed at once while others still get in.
    /// Unset: half of the connection cap. 0: no cap per address (one proxy in front).
    #[arg(long, env = "NR_MAX_CONNECTIONS_PER_ADDRESS")]
    pub max_connections_per_address: Option<usize>,
    /// Serve `/metrics` on this internal address only (e.g. `127.0.0.1:9100`, no
    /// credential asked). Unset: `/metrics` on the public address needs a credential
    /// holding `metrics:read` (or admin).
    #[arg(long, env = "NR_METRICS_ADDR")]
    pub metrics_addr: Option<String>,
    /// Seconds between two passes of this gateway's scheduler over the apps' schedules.
    #[arg(long, env = "NR_SCHEDULER_POLL_S", default_value_t = 10.0)]
    pub scheduler_poll_s: f64,
    /// A tick decided more than this many seconds after its time was missed (no
    /// scheduler ran): the schedule's `catch_up` says whether it runs.
    #[arg(long, env = "NR_SCHEDULER_GRACE_S", default_value_t = 120.0)]
    pub scheduler_grace_s: f64,
    /// A job still `running` this many seconds after its lease lapsed has lost its work
    /// item (a runner that died under it gets the item back within the lease): it goes
    /// back to `pending` with a new one.
    #[arg(long, env = "NR_JOB_REPAIR_AFTER_S", default_value_t = 120.0)]
    pub job_repair_after_s: f64,
    /// Run no scheduler in this gateway (another process runs it).
    #[arg(long, env = "NR_SCHEDULER_OFF")]
    pub scheduler_off: bool,
    /// Seconds a webhook delivery id is remembered: the same id again within them is
    /// refused as a replay.
    #[arg(long, env = "NR_WEBHOOK_REPLAY_WINDOW_S", default_value_t = 86_400)]
    pub webhook_replay_window_s: u64,
    /// Lifetimes of uploads and returned files (`/files/<token>` links).
    #[command(flatten)]
    pub files: nr_infra::files::FileArgs,
}

impl GatewayConfig {
    /// Refuses, before anything starts, settings the gateway cannot run with: each one
    /// named with what it must be.
    pub fn check(&self) -> anyhow::Result<()> {
        let mut wrong = Vec::new();
        for (setting, value, min, max) in [
            ("NR_SYNC_TIMEOUT_S", self.sync_timeout_s, 1.0, 86_400.0),
            ("NR_DEPLOY_TIMEOUT_S", self.deploy_timeout_s, 1.0, 86_400.0),
            ("NR_HEADER_TIMEOUT_S", self.header_timeout_s, 0.1, 3_600.0),
            ("NR_BODY_TIMEOUT_S", self.body_timeout_s, 0.1, 86_400.0),
            ("NR_SCHEDULER_POLL_S", self.scheduler_poll_s, 0.05, 3_600.0),
            (
                "NR_JOB_REPAIR_AFTER_S",
                self.job_repair_after_s,
                1.0,
                86_400.0,
            ),
            (
                "NR_SCHEDULER_GRACE_S",
                self.scheduler_grace_s,
                0.0,
                86_400.0,
            ),
        ] {
            wrong.extend(nr_config::seconds_in(setting, value, min, max).err());
        }
        wrong.extend(nr_auth::signing::Keys::check_lengths(self.runner_secret.as_deref()).err());
        if self.job_max_attempts < 1 {
            wrong.push(format!(
                "NR_JOB_MAX_ATTEMPTS must be at least 1 (got {})",
                self.job_max_attempts
            ));
        }
        for (setting, value, min) in [
            ("NR_DB_POOL", u64::from(self.db.db_pool), 1),
            ("NR_MAX_BODY_BYTES", self.max_body_bytes as u64, 1),
            ("NR_MAX_BUNDLE_BYTES", self.max_bundle_bytes as u64, 1),
            ("NR_SESSION_TTL_S", self.auth.session_ttl_s, 60),
            (
                "NR_PASSWORD_MIN_LENGTH",
                self.auth.password_min_length as u64,
                8,
            ),
        ] {
            if value < min {
                wrong.push(format!("{setting} must be at least {min} (got {value})"));
            }
        }
        if self.auth.jwt_leeway_s > 120 {
            wrong.push(format!(
                "NR_JWT_LEEWAY_S must be at most 120 (got {})",
                self.auth.jwt_leeway_s
            ));
        }
        if let Err(e) = nr_auth::jwt::Jwt::from_args(&self.auth) {
            wrong.push(format!("{e:#}"));
        }
        nr_config::refused(wrong).map_err(anyhow::Error::msg)
    }
}

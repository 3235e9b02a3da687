//! The five services in one process: the embedded default for a laptop or a test.
//! `start` connects to Postgres and the object store once and hands the same clients to
//! gateway, deploy, registry, runner and notify; each service connects to NATS as its own
//! user (`nr_config::nats_auth`), with the permissions of its role. The gateway hands
//! sync calls to the runners of this process in memory (`nr_infra::local_call`) unless
//! `NR_BUS_CALLS` asks for the bus.

pub mod bundle;
pub mod embedded;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use nr_config::nats_auth::Role;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Settings of the all-in-one process (each service's own binary has its own flags).
#[derive(Debug, Clone, clap::Args)]
pub struct PlatformConfig {
    #[command(flatten)]
    pub gateway: nr_gateway::GatewayConfig,
    /// Python interpreter that runs apps (needs psycopg2 for `conn` injection).
    #[arg(long, env = "NR_PYTHON", default_value = "python3")]
    pub python: String,
    /// Most workers per app; 0 means the number of cores.
    #[arg(long, env = "NR_RUNNER_POOL", default_value_t = 0)]
    pub pool_size: usize,
    /// Time limit of an async job when the manifest sets none, seconds.
    #[arg(long, env = "NR_JOB_TIMEOUT_S", default_value_t = 300.0)]
    pub job_timeout_s: f64,
    /// Lease on a running job, seconds (a job whose runner died reruns after it).
    #[arg(long, env = "NR_JOB_LEASE_S", default_value_t = 30.0)]
    pub job_lease_s: f64,
    /// Job slots, per-app limits, job workers, logs and retention.
    #[command(flatten)]
    pub jobs: nr_runner::JobArgs,
    /// Runners started in this process (0 leaves execution to runners elsewhere).
    #[arg(long, env = "NR_RUNNERS", default_value_t = 1)]
    pub runners: usize,
    /// Send sync calls over NATS even to the runners of this process (as separate
    /// services do); by default they take them in memory.
    #[arg(long, env = "NR_BUS_CALLS", default_value_t = false)]
    pub bus_calls: bool,
    /// Working directory for unpacked bundles and worker sockets.
    #[arg(long, env = "NR_RUNNER_DIR", default_value = ".data/runner")]
    pub runner_dir: PathBuf,
    /// Deploy's bundle limits and import check (docs/deploy.md).
    #[command(flatten)]
    pub deploy_checks: nr_deploy::CheckArgs,
    /// The WebSocket hub's per-connection limits (docs/events.md).
    #[command(flatten)]
    pub notify_limits: nr_notify::HubLimits,
    /// The embedded default's private NATS and state directory.
    #[command(flatten)]
    pub embedded: embedded::EmbeddedArgs,
}

impl PlatformConfig {
    pub fn runner(&self) -> nr_runner::RunnerConfig {
        nr_runner::RunnerConfig {
            nats: self.gateway.nats.clone(),
            store: self.gateway.store.clone(),
            health: nr_config::HealthArgs { health_addr: None },
            database_url: self.gateway.db.database_url.clone(),
            python: self.python.clone(),
            pool_size: self.pool_size,
            sync_timeout_s: self.gateway.sync_timeout_s,
            import_timeout_s: 120.0,
            job_timeout_s: self.job_timeout_s,
            job_lease_s: self.job_lease_s,
            jobs: self.jobs.clone(),
            runner_secret: self.gateway.runner_secret.clone(),
            secrets_key: self.gateway.secrets_key.clone(),
            work_dir: self.runner_dir.clone(),
            contain: self.deploy_checks.contain.clone(),
            files: self.gateway.files.clone(),
        }
    }
}

/// Stops runners at once (nothing of theirs is in flight yet), and with them their
/// apps' processes.
async fn stop_runners(runners: Vec<nr_runner::Runner>) {
    for runner in runners {
        let stopped = CancellationToken::new();
        stopped.cancel();
        if let Err(e) = runner.run_until_stopped(stopped).await {
            tracing::warn!(error = %format!("{e:#}"), "a runner did not stop cleanly");
        }
    }
}

type Services = JoinSet<(&'static str, anyhow::Result<()>)>;

/// A running platform.
///
/// Stopping drains in two steps (docs/operations.md, "Drain"): the front (gateway and
/// notify) stops taking requests, closes WebSockets with 1001 and finishes the sync
/// calls in flight; only then the back (runners, deploy, registry) stops, so every
/// call the front still waits for has a runner to answer it.
pub struct Platform {
    addr: SocketAddr,
    admin_token: String,
    stop: CancellationToken,
    front_stop: CancellationToken,
    back_stop: CancellationToken,
    front: Services,
    back: Services,
}

impl Platform {
    /// Starts all five services; returns once the gateway accepts requests.
    pub async fn start(mut config: PlatformConfig) -> anyhow::Result<Platform> {
        if config.gateway.auth.jwt_secret.is_none() {
            // Gateway and hub must verify the same sessions: share one random key.
            tracing::warn!("NR_JWT_SECRET is not set: sessions use a random key and end when this process stops");
            config.gateway.auth.jwt_secret = Some(format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            ));
        }
        if config.gateway.secrets_key.is_none() {
            // Gateway and runners must share the key that seals app secrets: keep one
            // beside the runner directory (.data/secrets.key), readable by us only.
            let path = config
                .runner_dir
                .parent()
                .unwrap_or(std::path::Path::new("."))
                .join("secrets.key");
            config.gateway.secrets_key = Some(nr_infra::appenv::load_or_create_file(&path)?);
            tracing::info!(path = %path.display(), "NR_SECRETS_KEY is not set: app secrets are sealed with the key in this file");
        }
        // Settings no service can run with are refused before any of them starts (and
        // before any app process does).
        config.gateway.check()?;
        config.runner().check()?;
        let deploy_takes =
            config.deploy_checks.deploy_import_timeout_s + config.deploy_checks.load_wait_s;
        if deploy_takes >= config.gateway.deploy_timeout_s {
            tracing::warn!(
                import_s = config.deploy_checks.deploy_import_timeout_s,
                load_wait_s = config.deploy_checks.load_wait_s,
                deploy_timeout_s = config.gateway.deploy_timeout_s,
                "NR_DEPLOY_IMPORT_TIMEOUT_S + NR_DEPLOY_LOAD_WAIT_S is not under NR_DEPLOY_TIMEOUT_S: a slow deploy can be answered 504 (and then changes nothing)"
            );
        }
        let nats_args = config.gateway.nats.clone();
        let connect = |role| {
            let args = nats_args.clone();
            async move { nr_infra::bus::connect_as(&args, role).await }
        };
        let store = nr_infra::store::open(&config.gateway.store.object_store_url)?;
        let db = nr_infra::db::connect(&config.gateway.db.database_url, config.gateway.db.db_pool)
            .await
            .context("Postgres is required (set DATABASE_URL)")?;
        let stop = CancellationToken::new();

        let registry = nr_registry::Registry::build(
            nr_registry::RegistryConfig {
                nats: config.gateway.nats.clone(),
                db: config.gateway.db.clone(),
                health: nr_config::HealthArgs { health_addr: None },
                catch_up_s: 120,
            },
            nr_registry::RegistryDeps {
                nats: connect(Role::Registry).await?,
                db: db.clone(),
            },
        )
        .await?;
        let deploy = nr_deploy::Deploy::build(
            nr_deploy::DeployConfig {
                nats: config.gateway.nats.clone(),
                store: config.gateway.store.clone(),
                health: nr_config::HealthArgs { health_addr: None },
                max_bundle_bytes: config.gateway.max_bundle_bytes as u64,
                checks: config.deploy_checks.clone(),
                python: config.python.clone(),
                database_url: Some(config.gateway.db.database_url.clone()),
                secrets_key: config.gateway.secrets_key.clone(),
            },
            nr_deploy::DeployDeps {
                nats: connect(Role::Deploy).await?,
                store: store.clone(),
            },
        )
        .await?;
        // A runner starts the deployed apps' processes as it is built: a start that fails
        // from here on stops the runners built so far rather than leave their apps'
        // processes for the next start to sweep.
        let mut runners = Vec::new();
        for _ in 0..config.runners {
            let built = async {
                nr_runner::Runner::build(
                    config.runner(),
                    nr_runner::RunnerDeps {
                        nats: connect(Role::Runner).await?,
                        jobs_nats: nr_infra::bus::connect_runner_jobs(&nats_args).await?,
                        store: store.clone(),
                        db: db.clone(),
                    },
                )
                .await
            }
            .await;
            match built {
                Ok(runner) => runners.push(runner),
                Err(e) => {
                    stop_runners(runners).await;
                    return Err(e);
                }
            }
        }
        let rest = async {
            let notify = nr_notify::Notify::build(
                nr_notify::NotifyConfig {
                    http_addr: String::new(),
                    nats: config.gateway.nats.clone(),
                    db: config.gateway.db.clone(),
                    auth: config.gateway.auth.clone(),
                    limits: config.notify_limits.clone(),
                },
                nr_notify::NotifyDeps {
                    nats: connect(Role::Notify).await?,
                    db: db.clone(),
                },
            )
            .await?;
            let (gateway_nats, bus_drops) =
                nr_infra::bus::connect_as_watched(&nats_args, Role::Gateway).await?;
            let gateway = nr_gateway::Gateway::build(
                config.gateway.clone(),
                nr_gateway::GatewayDeps {
                    nats: gateway_nats,
                    bus_drops,
                    store,
                    db: db.clone(),
                    extra_routes: notify.router(),
                    local_runners: if config.bus_calls {
                        Default::default()
                    } else {
                        nr_infra::local_call::LocalRunners::new(
                            runners.iter().map(|r| r.local()).collect(),
                        )
                    },
                },
            )
            .await?;
            let addr = gateway.addr();
            let admin_token = gateway.admin_token().await?;
            anyhow::Ok((notify, gateway, addr, admin_token))
        }
        .await;
        let (notify, gateway, addr, admin_token) = match rest {
            Ok(parts) => parts,
            Err(e) => {
                stop_runners(runners).await;
                return Err(e);
            }
        };

        let (front_stop, back_stop) = (CancellationToken::new(), CancellationToken::new());
        let (mut front, mut back) = (JoinSet::new(), JoinSet::new());
        let s = back_stop.clone();
        back.spawn(async move { ("registry", registry.run_until_stopped(s).await) });
        let s = back_stop.clone();
        back.spawn(async move { ("deploy", deploy.run_until_stopped(s).await) });
        for runner in runners {
            let s = back_stop.clone();
            back.spawn(async move { ("runner", runner.run_until_stopped(s).await) });
        }
        let s = front_stop.clone();
        front.spawn(async move { ("notify", notify.run_until_stopped(s).await) });
        let s = front_stop.clone();
        front.spawn(async move { ("gateway", gateway.run_until_stopped(s).await) });
        Ok(Platform {
            addr,
            admin_token,
            stop,
            front_stop,
            back_stop,
            front,
            back,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A session token of the `admin` user, for deploying the examples and for tests.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A token that stops the platform when cancelled.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Runs until the stop token is cancelled or a service ends; then drains the front
    /// (gateway, notify) and after it the back (runners, deploy, registry), and
    /// reports which service ended and why.
    pub async fn wait(mut self) -> anyhow::Result<()> {
        let mut first_error = None;
        tokio::select! {
            _ = self.stop.cancelled() => {}
            Some(joined) = self.front.join_next() => record(joined, &mut first_error),
            Some(joined) = self.back.join_next() => record(joined, &mut first_error),
        }
        tracing::info!("draining: the gateway stops taking requests and finishes those in flight");
        self.front_stop.cancel();
        while let Some(joined) = self.front.join_next().await {
            record(joined, &mut first_error);
        }
        tracing::info!("draining: runners, deploy and registry stop");
        self.back_stop.cancel();
        while let Some(joined) = self.back.join_next().await {
            record(joined, &mut first_error);
        }
        self.stop.cancel();
        first_error.map_or(Ok(()), Err)
    }

    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.wait().await
    }
}

fn record(
    joined: Result<(&'static str, anyhow::Result<()>), tokio::task::JoinError>,
    first_error: &mut Option<anyhow::Error>,
) {
    match joined {
        Ok((name, Ok(()))) => tracing::info!(service = name, "stopped"),
        Ok((name, Err(e))) => {
            tracing::error!(service = name, error = %e, "service failed");
            first_error.get_or_insert(e.context(format!("{name} failed")));
        }
        Err(e) => {
            first_error.get_or_insert(anyhow::anyhow!("a service task panicked: {e}"));
        }
    }
}

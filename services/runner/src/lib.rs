//! The runner: executes apps in long-lived Python worker processes.
//!
//! - `host`: one app revision = one Python host process that imported the app once,
//!   plus a pool of workers forked from it.
//! - `catalog`: which revision of each app is current, kept from the `NR_APPS`
//!   stream; a request that names a newer revision loads it first (hot reload).
//! - `exec`: the `runner.exec.<app>` queue-group handler.
//! - `alive`: heartbeats naming the calls in flight, so gateways notice a runner dying.
//! - `frame`: the runner–worker pipe protocol.
//! - `env_watch`: follows `app.env.>` and reloads an app whose variables changed.
//! - `spawner`: starts hosts as the app's own user with an allow-listed environment, and
//!   accepts workers' connections (fork token and peer uid checked).
//! - `unpack`: bundles on disk.
//!
//! Containment (one uid and Postgres role per app, process trees killed whole) is in
//! `nr_infra::appid` and `nr_infra::contain`; docs/security.md says what each holds.

mod alive;
mod catalog;
pub mod config;
mod env_watch;
mod exec;
pub mod frame;
pub mod host;
mod job_events;
mod job_progress;
mod job_run;
mod jobs;
pub mod output;
mod spawner;
mod text;
mod unpack;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use anyhow::Context as _;
use async_nats::jetstream;
use nr_infra::apps::AppEvent;
use nr_infra::store::Store;
use tokio_util::sync::CancellationToken;

pub use config::{JobArgs, RunnerConfig};
use host::{AppHost, Spawner};

const HOST_SCRIPT: &str = include_str!("../python/nr_host.py");
const CONTAIN_SCRIPT: &str = include_str!("../python/nr_contain.py");
const OUTPUT_SCRIPT: &str = include_str!("../python/nr_output.py");
const JSON_SCRIPT: &str = include_str!("../python/nr_json.py");
const SDK_INIT: &str = include_str!("../python/noderouter/__init__.py");

/// Shared connections a runner uses; built by the caller so several services in one
/// process can share them.
#[derive(Clone)]
pub struct RunnerDeps {
    /// Answers sync calls and cancels (the `runner` NATS user).
    pub nats: async_nats::Client,
    /// Reads the job, app and variable streams and publishes events (the `runner_jobs`
    /// user, which answers no requests: see `nr_config::nats_auth`). `None`: `nats`
    /// does both.
    pub jobs_nats: Option<async_nats::Client>,
    pub store: Store,
    /// The platform's database (the job queue).
    pub db: sqlx::PgPool,
}

pub struct Runner {
    inner: Arc<Inner>,
    /// Stops everything: subscriptions, followers, the worker socket.
    shutdown: CancellationToken,
    /// Stops taking sync calls (a child of `shutdown`, cancelled first on drain).
    intake: CancellationToken,
    /// This runner's directory, held while it lives: a later start removes it if this
    /// runner never could.
    _dir: nr_infra::leftovers::Held,
}

pub(crate) struct Inner {
    pub(crate) id: String,
    pub(crate) config: RunnerConfig,
    pub(crate) nats: async_nats::Client,
    pub(crate) js: jetstream::Context,
    pub(crate) db: sqlx::PgPool,
    pub(crate) jobs: jobs::JobTable,
    pub(crate) signatures: nr_auth::signing::Verifier,
    /// Every sync call in flight: a stopping runner waits for them (up to their time
    /// limit) before it stops its workers and removes its work directory.
    pub(crate) calls: tokio_util::task::TaskTracker,
    /// The bus calls in flight, named in this runner's heartbeats.
    pub(crate) held: alive::Held,
    store: Store,
    spawner: Arc<Spawner>,
    bundles_dir: PathBuf,
    hosts: RwLock<HashMap<String, Arc<AppHost>>>,
    known: Mutex<HashMap<String, AppEvent>>,
    failed: Mutex<HashMap<String, catalog::Failed>>,
    load_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    live: AtomicBool,
    /// Opens app secrets (`NR_SECRETS_KEY`).
    secrets: Option<Arc<nr_infra::appenv::SecretsKey>>,
    /// Per app: the env generation asked for and the one the current host was loaded
    /// with, so a changed env forces a new host even at the same revision.
    env_gens: Mutex<HashMap<String, env_watch::EnvGen>>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum HostError {
    #[error("app '{0}' is not deployed")]
    NotFound(String),
    #[error("app '{app}' version {version} failed to load: {error}")]
    LoadFailed {
        app: String,
        version: String,
        error: String,
        /// The platform's failure (the bundle could not be read, the host not started),
        /// not the app's: another runner, or this one shortly, may load it.
        platform: bool,
    },
    #[error("{0}")]
    Internal(String),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Runner {
    /// Prepares the work directory and the worker socket, loads every deployed app,
    /// and subscribes to `runner.exec.*`.
    pub async fn build(config: RunnerConfig, deps: RunnerDeps) -> anyhow::Result<Runner> {
        config.check()?;
        let id = format!("runner-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let switch_users = nr_infra::contain::can_switch_users();
        if !switch_users {
            tracing::error!(
                "APP PROCESSES ARE NOT CONTAINED: {}",
                nr_infra::contain::NO_SWITCH_WARNING
            );
        }
        match nr_infra::appid::postgres_trusts_anyone(&config.database_url).await {
            Ok(true) => tracing::error!("{}", nr_infra::appid::TRUST_WARNING),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "cannot tell whether Postgres checks passwords")
            }
        }
        let work_dir = std::path::absolute(&config.work_dir)
            .with_context(|| format!("bad runner directory {}", config.work_dir.display()))?;
        let created = !work_dir.exists();
        std::fs::create_dir_all(&work_dir)
            .with_context(|| format!("cannot create {}", work_dir.display()))?;
        if created && switch_users {
            nr_infra::contain::traversable(&work_dir)?;
        }
        if switch_users {
            if let Some(dir) = nr_infra::contain::untraversable_ancestor(&work_dir) {
                anyhow::bail!(
                    "the runner directory {} is not reachable by app users: {} lacks the o+x bit (chmod o+x {}, or set NR_RUNNER_DIR under a traversable path)",
                    work_dir.display(),
                    dir.display(),
                    dir.display()
                );
            }
        }
        if switch_users {
            nr_infra::contain::check_interpreter(&config.python).map_err(anyhow::Error::msg)?;
        }
        let root = work_dir.join(&id);
        std::fs::create_dir_all(&root)
            .with_context(|| format!("cannot create {}", root.display()))?;
        let held = nr_infra::leftovers::hold(&root)
            .with_context(|| format!("cannot lock {}", root.display()))?;
        // What runners killed outright left here (their unpacked bundles and app homes).
        {
            let (work_dir, root) = (work_dir.clone(), root.clone());
            let _ = tokio::task::spawn_blocking(move || {
                nr_infra::leftovers::sweep(&work_dir, "runner-", Some(&root))
            })
            .await;
        }
        let py_dir = root.join("py");
        std::fs::create_dir_all(py_dir.join("noderouter"))
            .with_context(|| format!("cannot create {}", py_dir.display()))?;
        std::fs::write(py_dir.join("nr_host.py"), HOST_SCRIPT)?;
        std::fs::write(py_dir.join("nr_contain.py"), CONTAIN_SCRIPT)?;
        std::fs::write(py_dir.join("nr_output.py"), OUTPUT_SCRIPT)?;
        std::fs::write(py_dir.join("nr_json.py"), JSON_SCRIPT)?;
        std::fs::write(py_dir.join("noderouter").join("__init__.py"), SDK_INIT)?;
        let bundles_dir = root.join("apps");
        // What a runner killed outright left unpacked; no host of this one uses it yet.
        if bundles_dir.exists() {
            std::fs::remove_dir_all(&bundles_dir)
                .with_context(|| format!("cannot clear {}", bundles_dir.display()))?;
        }
        std::fs::create_dir_all(&bundles_dir)?;
        std::fs::create_dir_all(root.join("home"))?;
        // App users pass through (0711) to their own bundle, home and the socket; the
        // host script and SDK are readable by all and writable by none of them.
        for dir in [&root, &bundles_dir, &root.join("home")] {
            nr_infra::contain::traversable(dir)
                .with_context(|| format!("cannot set the mode of {}", dir.display()))?;
        }
        nr_infra::contain::public_read_only(&py_dir)
            .with_context(|| format!("cannot set the mode of {}", py_dir.display()))?;
        let sock_path = root.join("workers.sock");
        let listener = tokio::net::UnixListener::bind(&sock_path)
            .with_context(|| format!("cannot listen on {}", sock_path.display()))?;
        {
            use std::os::unix::fs::PermissionsExt as _;
            // Any app uid may connect; the fork token and SO_PEERCRED decide who is heard.
            std::fs::set_permissions(&sock_path, std::fs::Permissions::from_mode(0o666))?;
        }
        let mut spawner = Spawner::new(
            id.clone(),
            config.python.clone(),
            config.database_url.clone(),
            py_dir,
            sock_path,
        );
        spawner.contain = config.contain.clone();
        spawner.switch_users = switch_users;
        spawner.files = Some(Arc::new(host::FileIo {
            db: deps.db.clone(),
            store: deps.store.clone(),
            args: config.files.clone(),
        }));
        let spawner = Arc::new(spawner);
        if switch_users {
            nr_infra::contain::adopt_orphans();
        }
        let shutdown = CancellationToken::new();
        // A descriptor per worker, pipe and connection: the soft default of 1024 is
        // few for a runner with many apps.
        nr_infra::open_files::raise();
        tokio::spawn(spawner.clone().accept_loop(listener, shutdown.clone()));

        let js = jetstream::new(deps.jobs_nats.clone().unwrap_or_else(|| deps.nats.clone()));
        nr_infra::bus::ensure_streams(&js).await?;
        let signatures = nr_auth::signing::Verifier::new(nr_auth::signing::Keys::parse(
            config.runner_secret.as_deref(),
        ));
        let secrets = nr_infra::appenv::SecretsKey::from_setting(config.secrets_key.as_deref())?;
        let inner = Arc::new(Inner {
            secrets,
            env_gens: Mutex::new(HashMap::new()),
            id,
            config,
            nats: deps.nats,
            js: js.clone(),
            db: deps.db,
            jobs: jobs::JobTable::default(),
            signatures,
            calls: tokio_util::task::TaskTracker::new(),
            held: alive::Held::default(),
            store: deps.store,
            spawner,
            bundles_dir,
            hosts: RwLock::new(HashMap::new()),
            known: Mutex::new(HashMap::new()),
            failed: Mutex::new(HashMap::new()),
            load_locks: Mutex::new(HashMap::new()),
            live: AtomicBool::new(false),
        });
        env_watch::start(inner.clone(), shutdown.clone()).await?;
        let weak = Arc::downgrade(&inner);
        nr_infra::apps::follow(js, shutdown.clone(), move |ev| {
            let Some(inner) = weak.upgrade() else { return };
            let app = ev.event.data.app_name.clone();
            let rev = ev.rev;
            lock(&inner.known).insert(app.clone(), ev);
            if inner.live.load(Ordering::Acquire) {
                tokio::spawn(async move {
                    if let Err(e) = inner.host_for(&app, rev).await {
                        if !matches!(e, HostError::NotFound(_)) {
                            tracing::warn!(app = %app, rev, error = %text::clean(&e.to_string(), text::MAX_TRACEBACK), "hot reload failed; previous version keeps serving");
                        }
                    }
                });
            }
        })
        .await?;
        inner.live.store(true, Ordering::Release);
        let initial: Vec<(String, u64)> = lock(&inner.known)
            .iter()
            .map(|(app, ev)| (app.clone(), ev.rev))
            .collect();
        for (app, rev) in initial {
            if let Err(e) = inner.host_for(&app, rev).await {
                if !matches!(e, HostError::NotFound(_)) {
                    tracing::warn!(app = %app, error = %text::clean(&e.to_string(), text::MAX_TRACEBACK), "app failed to load at start");
                }
            }
        }
        tokio::spawn(catalog::sweep(Arc::downgrade(&inner), shutdown.clone()));
        let intake = shutdown.child_token();
        exec::start(inner.clone(), intake.clone()).await?;
        alive::start(inner.clone(), shutdown.clone());
        jobs::start(inner.clone(), shutdown.clone()).await?;
        if !inner.signatures.enabled() {
            tracing::warn!("RUNNER_SECRET is not set: unsigned runner requests are accepted (development mode)");
        }
        tracing::info!(runner = %inner.id, pool = inner.config.pool(), "runner ready");
        Ok(Runner {
            inner,
            shutdown,
            intake,
            _dir: held,
        })
    }

    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// This runner for a gateway in the same process: sync calls handed to it in
    /// memory (see `nr_infra::local_call`).
    pub fn local(&self) -> Arc<dyn nr_infra::local_call::LocalRunner> {
        Arc::new(exec::Local {
            inner: self.inner.clone(),
            intake: self.intake.clone(),
        })
    }

    /// Whether app processes run as users of their own (the runner is root). When
    /// false, apps run as the runner's user: see `readiness`.
    pub fn contained(&self) -> bool {
        self.inner.spawner.switch_users
    }

    /// The runner's readiness: NATS connected, Postgres and the object store answering
    /// (each named when down), and app processes contained. A runner that cannot
    /// switch users reports it here ("not contained"), loudly, so an operator's probe
    /// sees it.
    pub fn ready_check(&self) -> nr_telemetry::ReadyCheck {
        let deps = nr_infra::health::Deps {
            nats: Some(self.inner.nats.clone()),
            db: Some(self.inner.db.clone()),
            store: Some(self.inner.store.clone()),
        };
        let contained = self.contained();
        std::sync::Arc::new(move || {
            let deps = deps.clone();
            Box::pin(async move {
                let mut down = deps.check().await.err().into_iter().collect::<Vec<_>>();
                if !contained {
                    down.push(format!(
                        "not contained: {}",
                        nr_infra::contain::NO_SWITCH_WARNING
                    ));
                }
                if down.is_empty() {
                    Ok(())
                } else {
                    Err(down.join("; "))
                }
            })
        })
    }

    /// Serves until `stop` is cancelled, then drains: stops taking sync calls, lets the
    /// calls in flight finish (up to the sync time limit and a margin), and only then
    /// stops the workers and removes the work directory.
    pub async fn run_until_stopped(self, stop: CancellationToken) -> anyhow::Result<()> {
        stop.cancelled().await;
        self.intake.cancel();
        self.inner.calls.close();
        let open = self.inner.calls.len();
        if open > 0 {
            tracing::info!(runner = %self.inner.id, calls = open, "draining: waiting for calls in flight");
        }
        let deadline = std::time::Duration::from_secs_f64(
            self.inner.config.sync_timeout_s.clamp(0.0, 3600.0) + 5.0,
        );
        let calls = async {
            if tokio::time::timeout(deadline, self.inner.calls.wait())
                .await
                .is_err()
            {
                tracing::warn!(runner = %self.inner.id, calls = self.inner.calls.len(), "drain deadline passed: stopping calls still running");
            }
        };
        // Running jobs are handed back at once (another runner may start them now, and
        // no new one is claimed), while the sync calls finish and everything the jobs
        // need (worker sockets, the connections, the outcome writers) still runs; only
        // then does the rest stop. They waited for the sync calls, claiming meanwhile.
        tokio::join!(
            jobs::drain(&self.inner, std::time::Duration::from_secs(5)),
            calls
        );
        self.shutdown.cancel();
        let hosts: Vec<Arc<AppHost>> = self
            .inner
            .hosts
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, h)| h)
            .collect();
        drop(hosts);
        if let Some(root) = self.inner.bundles_dir.parent() {
            let _ = std::fs::remove_dir_all(root);
        }
        tracing::info!(runner = %self.inner.id, "runner stopped");
        Ok(())
    }
}

//! Keeps the private NATS server running while the platform runs: one that exits (a
//! crash, the OOM killer, an operator's `kill`) is started again on the same port,
//! configuration and store, and the services' NATS clients reconnect by themselves.
//! Without it the platform stayed up answering 503 to everything until restarted.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

/// How to start the server.
#[derive(Clone)]
pub(super) struct Launch {
    pub binary: String,
    pub conf: PathBuf,
    pub log: PathBuf,
    pub port: u16,
    /// The JetStream store directory (`store_dir`).
    pub store: PathBuf,
}

impl Launch {
    /// Starts the server and waits (10 s at most) until it listens. `append` keeps the
    /// log of the server it replaces.
    pub(super) async fn start(&self, append: bool) -> anyhow::Result<Child> {
        move_global_store(&self.store)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(&self.log)
            .with_context(|| format!("cannot open {}", self.log.display()))?;
        let mut child = Command::new(&self.binary)
            .arg("-c")
            .arg(&self.conf)
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| {
                format!(
                    "cannot start {} (install nats-server, or set NR_NATS_URL to a NATS server you run)",
                    self.binary
                )
            })?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(child);
            }
            if let Ok(Some(status)) = child.try_wait() {
                anyhow::bail!(
                    "the embedded nats-server exited ({status}); see {}",
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!(
            "the embedded nats-server did not listen on port {} within 10 s; see {}",
            self.port,
            self.log.display()
        )
    }
}

/// The server being watched.
pub(super) enum Server {
    /// Started by this platform.
    Child(Child),
    /// Found running from an earlier start: its pid, when its pid file named it.
    Adopted(Option<i32>),
}

/// The watch over the server; [`Supervisor::stop`] ends it and stops the server.
pub(super) struct Supervisor {
    stop: CancellationToken,
    detach: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Supervisor {
    pub(super) fn start(server: Server, launch: Launch) -> Supervisor {
        let (stop, detach) = (CancellationToken::new(), CancellationToken::new());
        let task = tokio::spawn(watch(server, launch, stop.clone(), detach.clone()));
        Supervisor { stop, detach, task }
    }

    /// Stops watching and leaves the server running, as a platform killed outright
    /// does (the next start finds it and reuses it).
    pub(super) fn detach(self) {
        self.detach.cancel();
    }

    /// Stops the server (SIGTERM, so JetStream closes its files; SIGKILL after 5 s) and
    /// waits until it is gone.
    pub(super) async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

async fn watch(
    mut server: Server,
    launch: Launch,
    stop: CancellationToken,
    detach: CancellationToken,
) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let ran_since = Instant::now();
        let ended = match &mut server {
            Server::Child(child) => tokio::select! {
                biased;
                _ = detach.cancelled() => {
                    // Dropped, the child would be killed (`kill_on_drop`).
                    if let Server::Child(child) = server {
                        std::mem::forget(child);
                    }
                    return;
                }
                _ = stop.cancelled() => None,
                status = child.wait() => Some(match status {
                    Ok(s) => s.to_string(),
                    Err(e) => e.to_string(),
                }),
            },
            Server::Adopted(Some(pid)) => tokio::select! {
                biased;
                _ = detach.cancelled() => return,
                _ = stop.cancelled() => None,
                _ = gone(*pid) => Some("the process is gone".to_owned()),
            },
            // Nothing to watch: a server from a release that wrote no pid file.
            Server::Adopted(None) => {
                tokio::select! {
                    _ = detach.cancelled() => return,
                    _ = stop.cancelled() => None,
                }
            }
        };
        let Some(how) = ended else {
            terminate(server).await;
            return;
        };
        if ran_since.elapsed() > Duration::from_secs(60) {
            backoff = Duration::from_secs(1);
        }
        tracing::error!(exit = %how, log = %launch.log.display(), "the embedded NATS server stopped; starting it again (the services reconnect by themselves)");
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
            match launch.start(true).await {
                Ok(child) => {
                    tracing::info!(port = launch.port, "the embedded NATS server runs again");
                    server = Server::Child(child);
                    break;
                }
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "the embedded NATS server did not start again; trying again");
                }
            }
        }
    }
}

/// Returns once `pid` is no longer a process (it is not our child: signal 0 tells).
async fn gone(pid: i32) {
    while kill(Pid::from_raw(pid), None).is_ok() {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn terminate(server: Server) {
    match server {
        Server::Child(mut child) => {
            if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
                if tokio::time::timeout(Duration::from_secs(5), child.wait())
                    .await
                    .is_ok()
                {
                    return;
                }
            }
            let _ = child.kill().await;
        }
        Server::Adopted(Some(pid)) => {
            let pid = Pid::from_raw(pid);
            let _ = kill(pid, Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while kill(pid, None).is_ok() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if kill(pid, None).is_ok() {
                let _ = kill(pid, Signal::SIGKILL);
            }
        }
        Server::Adopted(None) => {}
    }
}

/// Streams an earlier release kept in NATS's global account (`$G`, before the reader
/// had an account of its own) move to the platform's account: a server on a single
/// store keeps each account's streams in `<store_dir>/jetstream/<account>`. Done with
/// no server running on the store.
pub(super) fn move_global_store(store: &std::path::Path) -> anyhow::Result<()> {
    let accounts = store.join("jetstream");
    let global = accounts.join("$G");
    let platform = accounts.join(nr_config::nats_auth::PLATFORM_ACCOUNT);
    if holds_global_store(store) && platform.exists() {
        tracing::error!(
            earlier = %global.display(),
            now = %platform.display(),
            "streams an earlier release kept are not used: the platform's account has streams of its own already; stop the platform, and move the earlier ones over (or remove them) by hand"
        );
    }
    if global.is_dir() && !platform.exists() {
        std::fs::rename(&global, &platform).with_context(|| {
            format!(
                "cannot move the streams in {} to {}",
                global.display(),
                platform.display()
            )
        })?;
        tracing::info!(from = %global.display(), to = %platform.display(), "moved the platform's streams into its NATS account");
    }
    Ok(())
}

/// Whether `store` holds streams in NATS's global account (an earlier release's).
pub(super) fn holds_global_store(store: &std::path::Path) -> bool {
    std::fs::read_dir(store.join("jetstream").join("$G").join("streams"))
        .is_ok_and(|mut entries| entries.next().is_some())
}

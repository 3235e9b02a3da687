//! The embedded default's private NATS and runner key: what `noderouter up` starts when
//! no `NR_NATS_URL` is given, so the bus is never open to other processes.
//!
//! Under `<data dir>/nats/` (mode 0700; the data directory keeps its own mode): `passwords.json` (one generated password per
//! role, kept across restarts), `nats.conf` (listen on loopback, JetStream, the
//! authorization block of [`nr_config::nats_auth`]), the server's store and log, and
//! `reader.env`, the read-only credentials for outside consumers. The runner key is
//! `<data dir>/runner.secret`. Every file is mode 0600.

use std::io::Write as _;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use nr_config::nats_auth::{self, Passwords, Role};
use nr_config::NatsArgs;

mod supervise;

/// Settings of the private NATS server `noderouter up` starts.
#[derive(Debug, Clone, clap::Args)]
pub struct EmbeddedArgs {
    /// Where `noderouter up` keeps everything on disk: the private NATS's store and
    /// credentials, the runner key, the secrets key, the admin token, and (unless set
    /// otherwise) the bundles and the runner directory.
    #[arg(long, env = "NR_DATA_DIR", default_value = ".data")]
    pub data_dir: PathBuf,
    /// Port of the private NATS server started when `NR_NATS_URL` is not given.
    #[arg(long, env = "NR_EMBEDDED_NATS_PORT", default_value_t = 4223)]
    pub embedded_nats_port: u16,
    /// The nats-server binary for the private server.
    #[arg(long, env = "NR_NATS_SERVER", default_value = "nats-server")]
    pub nats_server: String,
}

/// Writes `contents` to `path` readable by this user only.
pub fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    // `mode` applies only when the file is created: tighten an older one too.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(contents.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn private_dir(path: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(path).with_context(|| format!("cannot create {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot restrict {}", path.display()))
}

/// The runner key in `<data dir>/runner.secret`, generated on first use.
pub fn runner_secret(data_dir: &Path) -> anyhow::Result<String> {
    // The data directory itself keeps its mode: app users traverse it to their bundles
    // under the runner's directory; the key file is private on its own.
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let path = data_dir.join("runner.secret");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim();
        if !existing.is_empty() {
            return Ok(existing.to_owned());
        }
    }
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    write_private(&path, &secret)?;
    Ok(secret)
}

/// The private NATS server, watched and started again should it stop (see
/// [`supervise`]) until [`EmbeddedNats::stop`].
pub struct EmbeddedNats {
    supervisor: supervise::Supervisor,
    pub url: String,
    pub passwords_file: PathBuf,
    /// `NATS_URL`, `NATS_USER`, `NATS_PASSWORD` and `NATS_INBOX_PREFIX` of the read-only
    /// `reader` user.
    pub reader_file: PathBuf,
}

impl EmbeddedNats {
    /// Stops the server (SIGTERM, so JetStream closes its files; SIGKILL after 5 s) and
    /// waits until it is gone, whether this start ran it or found it running from an
    /// earlier one.
    pub async fn stop(self) {
        self.supervisor.stop().await;
    }

    /// Leaves the server running and unwatched, as a platform killed outright does.
    pub fn detach(self) {
        self.supervisor.detach();
    }

    /// Connection settings that give each service its own user.
    pub fn args(&self) -> NatsArgs {
        NatsArgs {
            nats_passwords_file: Some(self.passwords_file.clone()),
            ..NatsArgs::anonymous(self.url.clone())
        }
    }
}

fn load_or_create_passwords(path: &Path) -> anyhow::Result<Passwords> {
    if path.exists() {
        let mut p = Passwords::load(path).map_err(|e| anyhow::anyhow!(e))?;
        // Roles added since the file was written get a password now.
        let fresh = Passwords::generate();
        let mut added = false;
        for (role, pw) in fresh.0 {
            if let std::collections::btree_map::Entry::Vacant(e) = p.0.entry(role) {
                e.insert(pw);
                added = true;
            }
        }
        if added {
            write_private(path, &p.to_json())?;
        }
        return Ok(p);
    }
    let p = Passwords::generate();
    write_private(path, &p.to_json())?;
    Ok(p)
}

/// The pid of the server of `pid_file` if it still runs with `conf` (a pid file left by
/// a server that died may name another process by now).
fn running_server(pid_file: &Path, conf: &Path) -> Option<i32> {
    let runs_conf = |pid: &i32| {
        std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmd| {
            cmd.split(|b| *b == 0)
                .any(|arg| Path::new(std::ffi::OsStr::from_bytes(arg)) == conf)
        })
    };
    std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
        .filter(runs_conf)
}

/// Has a server found running from an earlier start (`pid`, see [`running_server`]) read
/// the configuration just written (SIGHUP: its permission table may be older than this
/// release's). A server that wrote no pid file (started by a release before it did)
/// keeps its configuration until it is restarted, and a warning says so.
fn reload(pid: Option<i32>) {
    let sent = pid.is_some_and(|pid| {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGHUP,
        )
        .is_ok()
    });
    if sent {
        tracing::info!("the embedded NATS server reloads its configuration");
    } else {
        tracing::warn!(
            "cannot have the embedded NATS server left running reload its configuration (no pid file); \
             stop it (and this platform) and start again if a service reports a permissions violation"
        );
    }
}

/// `nats-server` from `PATH`, else where Debian and the release archives put it
/// (`/usr/sbin` is not on every user's `PATH`).
fn server_binary(configured: &str) -> String {
    if configured != "nats-server" {
        return configured.to_owned();
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(configured).is_file()))
        .unwrap_or(false);
    if on_path {
        return configured.to_owned();
    }
    ["/usr/sbin/nats-server", "/usr/local/bin/nats-server"]
        .into_iter()
        .find(|c| Path::new(c).is_file())
        .unwrap_or(configured)
        .to_owned()
}

/// Starts (or finds still running from an earlier start) the private NATS server.
pub async fn start(args: &EmbeddedArgs) -> anyhow::Result<EmbeddedNats> {
    let dir = std::path::absolute(args.data_dir.join("nats"))?;
    private_dir(&dir)?;
    let passwords_file = dir.join("passwords.json");
    let passwords = load_or_create_passwords(&passwords_file)?;
    let port = args.embedded_nats_port;
    let url = format!("nats://127.0.0.1:{port}");
    let conf = format!(
        "# Generated by `noderouter up`; rewritten at each start.\n\
         listen: \"127.0.0.1:{port}\"\n\
         pid_file: {pid:?}\n\
         jetstream {{ store_dir: {store:?} }}\n\
         {auth}",
        pid = dir.join("nats.pid"),
        store = dir.join("js"),
        auth = nats_auth::render_with_passwords(&passwords)
    );
    let conf_path = dir.join("nats.conf");
    write_private(&conf_path, &conf)?;
    let reader_file = dir.join("reader.env");
    write_private(
        &reader_file,
        &format!(
            "# Read-only NATS credentials for outside consumers of action.triggered.> and job.progress.>\n\
             # Set NATS_INBOX_PREFIX as the client's inbox prefix: replies (JetStream's included)\n\
             # reach this user there only.\n\
             NATS_URL={url}\nNATS_USER={}\nNATS_PASSWORD={}\nNATS_INBOX_PREFIX={}\n",
            Role::Reader.user(),
            passwords.get(Role::Reader).unwrap_or_default(),
            Role::Reader.inbox_prefix()
        ),
    )?;
    let launch = supervise::Launch {
        binary: server_binary(&args.nats_server),
        conf: conf_path.clone(),
        log: dir.join("nats.log"),
        port,
        store: dir.join("js"),
    };
    let embedded = |server| EmbeddedNats {
        supervisor: supervise::Supervisor::start(server, launch.clone()),
        url: url.clone(),
        passwords_file: passwords_file.clone(),
        reader_file: reader_file.clone(),
    };
    let listening = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
    if !listening {
        // A server an earlier start of this data directory left running (killed
        // outright) on another port holds the same store: two servers on one store would
        // each write it. The data directory's lock says no live platform owns it.
        if let Some(pid) = running_server(&dir.join("nats.pid"), &conf_path) {
            tracing::warn!(pid, "stopping the embedded NATS server an earlier start left running on another port (it holds this data directory's store)");
            stop_orphan(pid).await;
        }
    }
    if listening {
        // A server from an earlier start (this process was killed without stopping it)?
        // Ours accepts our admin password; anything else on the port is refused.
        let admin = async_nats::ConnectOptions::with_user_and_password(
            Role::Admin.user().into(),
            passwords.get(Role::Admin).unwrap_or_default().into(),
        )
        .connection_timeout(Duration::from_secs(2))
        .connect(url.as_str())
        .await;
        let pid = running_server(&dir.join("nats.pid"), &conf_path);
        match (admin, pid) {
            // A server of an earlier release keeps its streams where this one's
            // configuration does not look: stopped, so that they move (below).
            (Ok(_), Some(pid)) if supervise::holds_global_store(&launch.store) => {
                tracing::warn!(%url, pid, "stopping the embedded NATS server an earlier release left running, to move its streams into the platform's account");
                stop_orphan(pid).await;
            }
            (Ok(_), pid) => {
                tracing::warn!(%url, "reusing the embedded NATS server left running by an earlier start");
                reload(pid);
                return Ok(embedded(supervise::Server::Adopted(pid)));
            }
            (Err(_), _) => {
                return Err(anyhow::anyhow!(
                    "port {port} is taken by another process: set NR_EMBEDDED_NATS_PORT to a free port, \
                     or NR_NATS_URL to use a NATS server you run"
                ))
            }
        }
    }
    let child = launch.start(false).await?;
    tracing::info!(%url, "embedded NATS server started with authorization");
    Ok(embedded(supervise::Server::Child(child)))
}

/// Stops a server left running by an earlier start: SIGTERM, then SIGKILL after 10 s.
async fn stop_orphan(pid: i32) {
    let pid = nix::unistd::Pid::from_raw(pid);
    // Gone, or ended and waiting to be reaped by its parent.
    let running = |pid: nix::unistd::Pid| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().next())
                .is_some_and(|state| state != "Z" && state != "X")
        })
    };
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    for _ in 0..100 {
        if !running(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
}

/// Holds the data directory for this process (`<dir>/lock`, released when the process
/// ends, however it ends): a second `noderouter up` on the same directory would share
/// its private NATS server and store, remove its token file and stop its server when it
/// stopped.
pub fn lock_data_dir(dir: &Path) -> anyhow::Result<nix::fcntl::Flock<std::fs::File>> {
    use std::io::Write as _;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(mut held) => {
            held.set_len(0)?;
            writeln!(held, "{}", std::process::id())?;
            Ok(held)
        }
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
            let pid = std::fs::read_to_string(&path).unwrap_or_default();
            anyhow::bail!(
                "another `noderouter up` (pid {}) runs on the data directory {}: stop it first, or give this one a directory of its own (NR_DATA_DIR)",
                pid.trim(),
                dir.display()
            )
        }
        Err((_, e)) => Err(anyhow::anyhow!("cannot lock {}: {e}", path.display())),
    }
}

/// `path`, unless it does not exist and one of `older` (where an earlier release or
/// setting kept the same thing) does: then that one, with a warning naming the move.
pub fn kept_in(path: PathBuf, older: &[PathBuf]) -> PathBuf {
    if path.exists() {
        return path;
    }
    match older.iter().find(|p| p.exists()) {
        Some(old) => {
            tracing::warn!(
                kept = %old.display(),
                expected = %path.display(),
                "still using {} (outside the data directory); stop the platform and move it to {} to keep everything under NR_DATA_DIR",
                old.display(),
                path.display()
            );
            old.clone()
        }
        None => path,
    }
}

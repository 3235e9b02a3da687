//! Test harness: real infrastructure, isolated per test.
//!
//! - [`TestNats`]: a private `nats-server` with JetStream on a free port with its own
//!   store, so tests never share streams, and the platform's authorization (a user per
//!   role, fresh passwords), so tests run against the same locks as production.
//! - [`TestDb`]: a fresh Postgres database on the local server, dropped afterwards.
//! - [`python`]: the interpreter the runner uses (the project's `.venv` when present).
//! - [`zip_files`]: builds a bundle zip in memory.
//! - [`runner_secret`]: the start-up check of services that sign runner requests.

pub mod runner_secret;
pub mod s3;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use nr_config::nats_auth::{self, Passwords, Role};
use nr_config::NatsArgs;

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `NR_PYTHON`, else the project's `.venv`, else `python3`.
pub fn python() -> String {
    if let Ok(p) = std::env::var("NR_PYTHON") {
        if !p.is_empty() {
            return p;
        }
    }
    let venv = workspace_root().join(".venv/bin/python");
    if venv.exists() {
        return venv.to_string_lossy().into_owned();
    }
    "python3".into()
}

/// A TCP port free on 127.0.0.1 at the time of asking.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The `nats-server` the tests run.
pub fn nats_server_bin() -> String {
    for candidate in [
        "/usr/sbin/nats-server",
        "/usr/bin/nats-server",
        "/usr/local/bin/nats-server",
    ] {
        if Path::new(candidate).exists() {
            return candidate.into();
        }
    }
    "nats-server".into()
}

/// Whether a NATS server answers on `port` (its first line is `INFO {...}`).
fn is_nats(port: u16) -> bool {
    use std::io::Read as _;
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut first = [0u8; 4];
    stream.read_exact(&mut first).is_ok() && &first == b"INFO"
}

/// A private NATS server with JetStream, killed on drop. It runs with the platform's
/// authorization ([`nr_config::nats_auth`]) and fresh passwords: connect as a role with
/// [`TestNats::client`], [`TestNats::url_as`] or [`TestNats::args`].
pub struct TestNats {
    child: Child,
    pub url: String,
    pub port: u16,
    /// nats-server's monitoring endpoint (`/connz`, `/varz`), e.g. `http://127.0.0.1:1234`.
    pub monitor_url: String,
    pub passwords: Passwords,
    passwords_file: PathBuf,
    dir: tempfile::TempDir,
}

impl TestNats {
    pub async fn start() -> anyhow::Result<TestNats> {
        let dir = tempfile::tempdir()?;
        let passwords = Passwords::generate();
        let passwords_file = dir.path().join("nats-passwords.json");
        std::fs::write(&passwords_file, passwords.to_json())?;
        let store = dir.path().join("js");
        for _ in 0..5 {
            let port = free_port()?;
            let monitor = free_port()?;
            let conf = dir.path().join("nats.conf");
            std::fs::write(
                &conf,
                format!(
                    "listen: \"127.0.0.1:{port}\"\nhttp: \"127.0.0.1:{monitor}\"\n\
                     jetstream {{ store_dir: {store:?} }}\n{}",
                    nats_auth::render_with_passwords(&passwords)
                ),
            )?;
            let log = std::fs::File::create(dir.path().join("nats.log"))?;
            let mut child = Command::new(nats_server_bin())
                .arg("-c")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .context("cannot start nats-server (scripts/test installs it)")?;
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                // Ours only when it says INFO and our child still runs: another test's
                // listener may have taken the port between `free_port` and the start.
                if is_nats(port) && matches!(child.try_wait(), Ok(None)) {
                    return Ok(TestNats {
                        child,
                        url: format!("nats://127.0.0.1:{port}"),
                        port,
                        monitor_url: format!("http://127.0.0.1:{monitor}"),
                        passwords,
                        passwords_file,
                        dir,
                    });
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break; // the port was taken in the meantime: try another
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        anyhow::bail!("nats-server did not start")
    }

    /// The server's process id (to pause it with SIGSTOP, say).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server (SIGKILL, as a crash or a cut network looks to clients). Its
    /// JetStream store stays on disk for [`TestNats::restart`].
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same port with the same store and passwords;
    /// returns once it accepts connections (at most 10 s).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        let conf = self.dir.path().join("nats.conf");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let log = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(self.dir.path().join("nats.log"))?;
            self.child = Command::new(nats_server_bin())
                .arg("-c")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .context("cannot start nats-server again")?;
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(3) {
                if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                    return Ok(());
                }
                if let Ok(Some(_)) = self.child.try_wait() {
                    break; // the port is not free yet: try again
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!("nats-server did not start again on port {}", self.port)
    }

    /// The JSON file of role -> password (`--nats-passwords-file`).
    pub fn passwords_file(&self) -> &Path {
        &self.passwords_file
    }

    pub fn password(&self, role: Role) -> String {
        self.passwords.get(role).unwrap_or_default().to_owned()
    }

    /// The server's URL with `role`'s user and password in it (for other languages' clients).
    pub fn url_as(&self, role: Role) -> String {
        format!(
            "nats://{}:{}@127.0.0.1:{}",
            role.user(),
            self.password(role),
            self.port
        )
    }

    /// Connection settings that give every service its own user.
    pub fn args(&self) -> NatsArgs {
        NatsArgs {
            nats_passwords_file: Some(self.passwords_file.clone()),
            ..NatsArgs::anonymous(self.url.clone())
        }
    }

    /// A client connected as `role` (its own inbox prefix, as the services connect).
    pub async fn client(&self, role: Role) -> anyhow::Result<async_nats::Client> {
        self.options(role)
            .connect(self.url.as_str())
            .await
            .with_context(|| format!("cannot connect to the test NATS as {role}"))
    }

    /// Waits until the server has registered `client`'s subscription to `subject` (as
    /// subscribed, wildcards included). `flush` only writes the SUB to the socket: a
    /// message another connection publishes right after may still find no interest.
    pub async fn subscribed(&self, client: &async_nats::Client, subject: &str) {
        let cid = client.server_info().client_id;
        let url = format!("{}/connz?cid={cid}&subs=1", self.monitor_url);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let listed = async {
                let connz: serde_json::Value = reqwest::get(&url).await.ok()?.json().await.ok()?;
                let subs = connz["connections"][0]["subscriptions_list"].as_array()?;
                Some(subs.iter().any(|s| s.as_str() == Some(subject)))
            }
            .await;
            if listed == Some(true) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not register the subscription to {subject} within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Connect options for `role`, to add an event callback before connecting.
    pub fn options(&self, role: Role) -> async_nats::ConnectOptions {
        async_nats::ConnectOptions::with_user_and_password(
            role.user().to_owned(),
            self.password(role),
        )
        .custom_inbox_prefix(role.inbox_prefix())
    }

    /// What the server logged so far (permission violations, refused logins).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nats.log")).unwrap_or_default()
    }
}

impl Drop for TestNats {
    fn drop(&mut self) {
        // A permission the platform lacks shows up here first: name it in the test output.
        for line in self.log().lines().filter(|l| l.contains("Violation")) {
            eprintln!("nats-server: {line}");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the local Postgres server is (`NR_TEST_PG`, default trust auth on loopback).
pub fn pg_admin_url() -> String {
    std::env::var("NR_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A fresh database, dropped (with its connections) on drop.
pub struct TestDb {
    pub url: String,
    pub name: String,
}

impl TestDb {
    pub async fn create() -> anyhow::Result<TestDb> {
        use sqlx::Connection as _;
        let name = format!("nr_test_{}", uuid::Uuid::new_v4().simple());
        let admin = pg_admin_url();
        let mut conn = sqlx::PgConnection::connect(&format!("{admin}/postgres"))
            .await
            .context("cannot reach Postgres (scripts/test starts it)")?;
        sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE \"{name}\"").as_str()).await?;
        conn.close().await?;
        Ok(TestDb {
            url: format!("{admin}/{name}"),
            name,
        })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin = pg_admin_url();
        let _ = Command::new("psql")
            .arg(format!("{admin}/postgres"))
            .args([
                "-qc",
                &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A zip holding `files` (path, content) in order.
pub fn zip_files(files: &[(&str, &str)]) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut buf);
        for (name, body) in files {
            let opts = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated);
            if w.start_file(*name, opts).is_ok() {
                let _ = w.write_all(body.as_bytes());
            }
        }
        let _ = w.finish();
    }
    buf.into_inner()
}

/// A manifest for tests: `{"app_name": name, "version": version}` plus `extra` fields.
pub fn manifest(name: &str, version: &str, extra: serde_json::Value) -> String {
    let mut m = serde_json::json!({"app_name": name, "version": version});
    if let (Some(obj), Some(more)) = (m.as_object_mut(), extra.as_object()) {
        for (k, v) in more {
            obj.insert(k.clone(), v.clone());
        }
    }
    m.to_string()
}

/// A unique app name for a test.
pub fn app_name(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

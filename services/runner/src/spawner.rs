//! How the runner starts Python hosts and receives their workers' connections on its
//! Unix socket.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nr_infra::appid::ContainArgs;
use serde::Deserialize;
use std::process::Stdio;

use nr_infra::contain;
use tokio::net::{UnixListener, UnixStream};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::frame::read_frame_within;
use crate::host::{LoadError, LoadSpec};

/// Bytes a worker's hello may take (a token and a pid).
const HELLO_MAX: usize = 4096;

/// How the runner starts Python hosts and receives their workers' connections.
pub struct Spawner {
    pub runner_id: String,
    pub python: String,
    pub database_url: String,
    pub py_dir: PathBuf,
    pub sock_path: PathBuf,
    /// Where each app's private writable directory (`HOME`, `TMPDIR`) is made.
    pub home_root: PathBuf,
    /// Process limits and the uid range.
    pub contain: ContainArgs,
    /// Apps run as users of their own (the runner is root); otherwise as the runner's.
    pub switch_users: bool,
    /// The object store and database behind `noderouter.read_upload` and `download`.
    pub files: Option<Arc<crate::host::FileIo>>,
    /// Fork token -> the worker's announced connection and the uid it must come from.
    pending: Mutex<HashMap<String, Pending>>,
}

pub(crate) struct Pending {
    pub(crate) tx: oneshot::Sender<UnixStream>,
    pub(crate) uid: Option<u32>,
}

#[derive(Deserialize)]
struct Hello {
    hello: String,
}

impl Spawner {
    pub fn new(
        runner_id: String,
        python: String,
        database_url: String,
        py_dir: PathBuf,
        sock_path: PathBuf,
    ) -> Self {
        Self {
            runner_id,
            python,
            database_url,
            home_root: py_dir.with_file_name("home"),
            py_dir,
            sock_path,
            contain: ContainArgs::default(),
            switch_users: false,
            files: None,
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// Accepts worker connections and hands each to the fork request that announced its
    /// token. A connection with an unknown token, or from another uid than the app's
    /// (SO_PEERCRED), is dropped.
    pub async fn accept_loop(self: Arc<Self>, listener: UnixListener, shutdown: CancellationToken) {
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => return,
                a = listener.accept() => a,
            };
            let Ok((mut stream, _)) = accepted else {
                continue;
            };
            let this = self.clone();
            tokio::spawn(async move {
                // Any app process can connect: until its hello names a pending fork,
                // it gets a small frame and a few seconds, not a call's 64 MiB.
                let hello = tokio::time::timeout(
                    Duration::from_secs(10),
                    read_frame_within::<_, Hello>(&mut stream, HELLO_MAX),
                )
                .await;
                if let Ok(Ok((hello, _))) = hello {
                    let peer = stream.peer_cred().ok().map(|c| c.uid());
                    let waiter = this.lock_pending().remove(&hello.hello);
                    if let Some(p) = waiter {
                        if p.uid.is_some() && p.uid != peer {
                            tracing::warn!(
                                expected = ?p.uid,
                                peer = ?peer,
                                "worker connection from the wrong uid refused"
                            );
                            return;
                        }
                        let _ = p.tx.send(stream);
                    }
                }
            });
        }
    }

    pub(crate) fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the app's host process: its own uid and process group, its files made
    /// readable to it alone, an environment from the allow-list. Returns the child and
    /// the uid it runs as (none where the runner cannot switch users).
    pub(crate) async fn start_host(
        &self,
        spec: &LoadSpec,
    ) -> Result<(Child, Option<u32>), LoadError> {
        let uid = self.switch_users.then_some(spec.identity.uid);
        let home = self.home_root.join(&spec.app);
        let files = (spec.dir.clone(), home.clone());
        tokio::task::spawn_blocking(move || {
            contain::share_read_only(&files.0, uid)?;
            contain::private_dir(&files.1, uid)
        })
        .await
        .map_err(|e| LoadError::Host(format!("file setup task failed: {e}")))?
        .map_err(|e| LoadError::Host(format!("cannot set up the app's files: {e}")))?;
        let database_url = spec
            .identity
            .database_url(&self.database_url)
            .map_err(|e| LoadError::Host(format!("{e:#}")))?;
        let mut platform = vec![
            ("NR_APP_NAME".to_owned(), spec.app.clone()),
            ("NR_APP_VERSION".to_owned(), spec.version.clone()),
            ("NR_RUNNER_ID".to_owned(), self.runner_id.clone()),
        ];
        // The platform's limits, lowered where the app's manifest asks.
        let mut limits = self.contain.for_app(spec.manifest.limits.as_ref());
        if uid.is_none() {
            // RLIMIT_NPROC counts every process of the user: the runner's own, here.
            limits.app_max_procs = 0;
        }
        platform.extend(limits.limit_env());
        let mut cmd = Command::new(&self.python);
        cmd.arg("-u")
            .arg(self.py_dir.join("nr_host.py"))
            .arg(&spec.app)
            .arg(&spec.dir)
            .arg(&self.sock_path);
        contain::launch(
            &mut cmd,
            &contain::Launch {
                uid,
                home: &home,
                python_path: &self.py_dir,
                database_url: Some(&database_url),
                platform,
                app: &spec.env,
            },
        );
        cmd.current_dir(&spec.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = contain::spawn_root(&mut cmd)
            .map_err(|e| LoadError::Host(format!("cannot start {}: {e}", self.python)))?;
        Ok((child, uid))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use std::os::unix::fs::MetadataExt as _;

    use super::*;
    use crate::frame::write_frame;

    async fn hello(sock: &std::path::Path, token: &str) -> UnixStream {
        let mut s = UnixStream::connect(sock).await.unwrap();
        write_frame(&mut s, &serde_json::json!({"hello": token}), b"")
            .await
            .unwrap();
        s
    }

    #[tokio::test]
    async fn a_worker_connection_from_another_uid_than_the_apps_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("workers.sock");
        let listener = UnixListener::bind(&sock).unwrap();
        let spawner = Arc::new(Spawner::new(
            "runner-test".into(),
            "python3".into(),
            String::new(),
            dir.path().join("py"),
            sock.clone(),
        ));
        let stop = CancellationToken::new();
        tokio::spawn(spawner.clone().accept_loop(listener, stop.clone()));
        let me = std::fs::metadata("/proc/self").unwrap().uid();

        // The right token from the wrong uid (this process is not the app's user).
        let (tx, rx) = oneshot::channel();
        spawner.lock_pending().insert(
            "stolen".into(),
            Pending {
                tx,
                uid: Some(me.wrapping_add(1)),
            },
        );
        let _s = hello(&sock, "stolen").await;
        let got = tokio::time::timeout(Duration::from_secs(5), rx).await;
        assert!(
            matches!(got, Ok(Err(_))),
            "a connection from uid {me} was handed to a worker of another uid"
        );

        // The same from the app's own uid is accepted.
        let (tx, rx) = oneshot::channel();
        spawner
            .lock_pending()
            .insert("own".into(), Pending { tx, uid: Some(me) });
        let _s = hello(&sock, "own").await;
        let got = tokio::time::timeout(Duration::from_secs(5), rx).await;
        assert!(matches!(got, Ok(Ok(_))));

        // An unknown token is dropped.
        let mut s = hello(&sock, "guessed").await;
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::io::AsyncReadExt::read(&mut s, &mut buf),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(n, 0, "the runner kept a connection with an unknown token");
        stop.cancel();
    }
}

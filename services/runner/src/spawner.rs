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
/// How long a connection may take to send its hello.
const HELLO_WAIT: Duration = Duration::from_secs(10);
/// Connections of one uid that may wait for their hello at the same time. A worker
/// sends its hello as soon as it connects, so only a flood holds more: past this, the
/// uid's new connections are closed at once. Without it one app's code could hold the
/// runner's file descriptors (every service's, in `noderouter up`) until nothing else
/// could open a connection or a file.
const HELLO_WAITING_PER_UID: usize = 64;
/// The pause after a failed accept (out of file descriptors, say), so the loop does not
/// spin on the same error.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

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
    /// Peer uid -> its connections waiting for their hello.
    waiting: Arc<Mutex<HashMap<u32, usize>>>,
}

/// One connection's place among its uid's connections waiting for a hello.
struct Waiting {
    uid: u32,
    counts: Arc<Mutex<HashMap<u32, usize>>>,
}

impl Waiting {
    /// A place for a connection from `uid`, or none when the uid holds the most already.
    fn take(counts: &Arc<Mutex<HashMap<u32, usize>>>, uid: u32) -> Option<Waiting> {
        let mut map = counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(uid).or_insert(0);
        if *n >= HELLO_WAITING_PER_UID {
            return None;
        }
        *n += 1;
        Some(Waiting {
            uid,
            counts: counts.clone(),
        })
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let mut map = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.uid) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.uid);
            }
        }
    }
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
            waiting: Arc::default(),
        }
    }

    /// Accepts worker connections and hands each to the fork request that announced its
    /// token. A connection with an unknown token, or from another uid than the app's
    /// (SO_PEERCRED), is dropped, and so is one from a uid that already has
    /// [`HELLO_WAITING_PER_UID`] connections waiting for their hello.
    pub async fn accept_loop(self: Arc<Self>, listener: UnixListener, shutdown: CancellationToken) {
        let mut flooding = std::collections::HashSet::new();
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => return,
                a = listener.accept() => a,
            };
            let mut stream = match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a worker connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            let Ok(peer) = stream.peer_cred().map(|c| c.uid()) else {
                continue;
            };
            // Any app process can connect: until its hello names a pending fork, it
            // gets a small frame, a few seconds and one of a few places for its uid.
            let Some(place) = Waiting::take(&self.waiting, peer) else {
                if flooding.insert(peer) {
                    tracing::warn!(
                        uid = peer,
                        limit = HELLO_WAITING_PER_UID,
                        "too many worker connections without a hello from one uid: closing its new ones"
                    );
                }
                continue;
            };
            flooding.remove(&peer);
            let this = self.clone();
            tokio::spawn(async move {
                let hello = tokio::time::timeout(
                    HELLO_WAIT,
                    read_frame_within::<_, Hello>(&mut stream, HELLO_MAX),
                )
                .await;
                drop(place);
                let Ok(Ok((hello, _))) = hello else { return };
                let waiter = {
                    let mut pending = this.lock_pending();
                    match pending.get(&hello.hello) {
                        Some(p) if p.uid.is_some_and(|uid| uid != peer) => {
                            tracing::warn!(
                                expected = ?p.uid,
                                peer,
                                "worker connection from the wrong uid refused"
                            );
                            None
                        }
                        Some(_) => pending.remove(&hello.hello),
                        None => None,
                    }
                };
                if let Some(p) = waiter {
                    let _ = p.tx.send(stream);
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

    /// A spawner accepting on a socket of its own.
    fn listening() -> (
        tempfile::TempDir,
        std::path::PathBuf,
        Arc<Spawner>,
        CancellationToken,
    ) {
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
        (dir, sock, spawner, stop)
    }

    /// Whether the runner closed `s` within five seconds.
    async fn closed(s: &mut UnixStream) -> bool {
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::io::AsyncReadExt::read(s, &mut buf),
        )
        .await;
        matches!(read, Ok(Ok(0)) | Ok(Err(_)))
    }

    #[tokio::test]
    async fn a_worker_connection_from_another_uid_than_the_apps_is_refused() {
        let (_dir, sock, spawner, stop) = listening();
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
        let mut s = hello(&sock, "stolen").await;
        assert!(
            closed(&mut s).await,
            "the runner kept a connection from the wrong uid"
        );
        let got = tokio::time::timeout(Duration::from_millis(200), rx).await;
        assert!(
            got.is_err(),
            "a connection from uid {me} was handed to a worker of another uid"
        );
        // The fork still waits for its own worker.
        assert!(spawner.lock_pending().contains_key("stolen"));

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
        assert!(
            closed(&mut s).await,
            "the runner kept a connection with an unknown token"
        );
        stop.cancel();
    }

    #[tokio::test]
    async fn connections_without_a_hello_hold_a_few_places_per_uid_and_no_more() {
        let (_dir, sock, spawner, stop) = listening();
        let me = std::fs::metadata("/proc/self").unwrap().uid();
        // A flood of connections that never say hello.
        let mut held = Vec::new();
        for _ in 0..HELLO_WAITING_PER_UID {
            held.push(UnixStream::connect(&sock).await.unwrap());
        }
        // Wait until the runner holds them all.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while spawner
            .waiting
            .lock()
            .unwrap()
            .get(&me)
            .copied()
            .unwrap_or(0)
            < HELLO_WAITING_PER_UID
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the runner did not take the connections"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The next ones are closed at once, a worker's hello included.
        let mut extra = UnixStream::connect(&sock).await.unwrap();
        assert!(
            closed(&mut extra).await,
            "a connection past the uid's places was kept"
        );
        let (tx, rx) = oneshot::channel();
        spawner
            .lock_pending()
            .insert("late".into(), Pending { tx, uid: Some(me) });
        let mut late = UnixStream::connect(&sock).await.unwrap();
        // The write may already find the connection closed.
        let _ = write_frame(&mut late, &serde_json::json!({"hello": "late"}), b"").await;
        assert!(
            closed(&mut late).await,
            "a hello past the uid's places was taken"
        );
        // Once the flood lets go, its places come back.
        drop(held);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while spawner.waiting.lock().unwrap().contains_key(&me) {
            assert!(
                std::time::Instant::now() < deadline,
                "the places did not come back"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ok = hello(&sock, "late").await;
        let got = tokio::time::timeout(Duration::from_secs(5), rx).await;
        assert!(
            matches!(got, Ok(Ok(_))),
            "a worker's hello after the flood was refused"
        );
        stop.cancel();
    }
}

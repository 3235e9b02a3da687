//! One app revision loaded in the runner: its Python host process (which imported the
//! app once) and the pool of workers forked from it.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nr_contracts::manifest::RuntimeManifest;
use nr_infra::appid::AppIdentity;
use nr_infra::contain;
use serde::Deserialize;
use tokio::io::BufReader;
use tokio::net::UnixStream;
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::Semaphore;

use crate::output;
pub use crate::spawner::Spawner;
pub use job_pool::{JobError, JobPoolSpec};

mod control;
mod cpu_watch;
mod exchange;
mod files;
mod fork;
mod job_pool;
mod wire;

pub use control::MAX_CONTROL_LINE;
use control::{ControlError, ControlLines};
pub use files::FileIo;
use wire::LoadReply;

/// What to load.
pub struct LoadSpec {
    pub app: String,
    pub rev: u64,
    pub sha256: String,
    pub version: String,
    pub dir: PathBuf,
    pub manifest: RuntimeManifest,
    pub timeout: Duration,
    pub pool: usize,
    pub import_timeout: Duration,
    /// Who the app is: its uid and its Postgres role.
    pub identity: AppIdentity,
    /// The app's own variables and secrets, set after the platform's allow-list (a
    /// name the platform sets is not overridden).
    pub env: Vec<(String, String)>,
    /// How job workers are reused.
    pub jobs: JobPoolSpec,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{error}")]
    Import { error: String, traceback: String },
    #[error("{0}")]
    Host(String),
    /// The app's processes broke the runner's protocol while loading (app code writing
    /// to the control channel), or its host could not fork its first worker.
    #[error("{0}")]
    Misbehaved(String),
}

impl LoadError {
    /// Whose the failure is: the app's code, or the platform's.
    pub fn fault(&self) -> nr_contracts::events::LoadFault {
        match self {
            LoadError::Import { .. } | LoadError::Misbehaved(_) => {
                nr_contracts::events::LoadFault::App
            }
            LoadError::Host(_) => nr_contracts::events::LoadFault::Platform,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{error}")]
    Exception { error: String, traceback: String },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// A sync call stopped at its time limit after waiting this long for a free worker.
    #[error("no answer within {limit:?}, {waited:?} of it waiting for a worker")]
    TimeoutAfterWait { limit: Duration, waited: Duration },
    /// No worker came free within the call's time limit (`starting`: one was being
    /// started for it): the call never ran.
    #[error("no free worker within {limit:?}")]
    NoWorker {
        limit: Duration,
        workers: usize,
        starting: bool,
    },
    #[error("{0}")]
    Crashed(String),
    /// The call went on past its CPU limit in code that never returned to Python: its
    /// worker was stopped. The app's failure, as an exception is.
    #[error("{0}")]
    CpuLimit(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("cancelled")]
    Cancelled,
}

/// A progress report sent by the app during a call (`noderouter.progress`).
#[derive(Debug, Clone)]
pub struct Progress {
    pub percent: i32,
    pub message: Option<String>,
    /// A live log line of a job instead of a progress report.
    pub log: Option<String>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct FiredAction {
    pub name: String,
    #[serde(default)]
    pub payload: serde_json::Value,
}

pub struct CallReply {
    pub body: Vec<u8>,
    pub actions: Vec<FiredAction>,
    /// Captured stdout, stderr and `logging` output (jobs only; a sync call's lines
    /// go to the platform's log as they come).
    pub logs: Option<String>,
}

struct Control {
    stdin: ChildStdin,
    stdout: ControlLines<ChildStdout>,
    child: Child,
}

struct Worker {
    /// Read through a buffer: a reply frame (lengths, header, body) is one `recv`, not
    /// three. Writes go straight to the socket.
    stream: BufReader<UnixStream>,
    pid: i32,
    uid: Option<u32>,
    /// Sync calls served, for the CPU watch.
    served: u64,
}

impl Worker {
    /// Kills the worker and everything it started, `setsid` and double forks included
    /// (the worker is a child subreaper, so orphans stay under it).
    fn kill(&self) {
        contain::kill_tree(self.pid, self.uid);
    }
}

pub struct AppHost {
    pub app: String,
    pub rev: u64,
    pub sha256: String,
    pub version: String,
    pub manifest: RuntimeManifest,
    timeout: Duration,
    /// How many sync calls run at once (the pool's workers).
    pool: usize,
    control: tokio::sync::Mutex<Control>,
    idle: Mutex<Vec<Worker>>,
    slots: Arc<Semaphore>,
    spawner: Arc<Spawner>,
    dir: PathBuf,
    next_id: AtomicU64,
    /// The host process and the uid its processes run as (when switching users).
    host_pid: Option<i32>,
    uid: Option<u32>,
    /// Every worker forked and not yet killed: the host's other children are strays.
    workers: Mutex<HashSet<i32>>,
    /// Idle job workers (never used for sync calls) and how many jobs each served.
    job_idle: Mutex<Vec<(Worker, u32)>>,
    jobs: JobPoolSpec,
    /// The platform log's rate for this app's output, its calls' lines included.
    log_rate: output::SharedRate,
    cpu_watch: Mutex<cpu_watch::CpuWatch>,
    /// CPU seconds of one call or job (0: none).
    cpu_s: u64,
}

const STDERR_TAIL: usize = 40;

/// The read buffer of a worker's socket: a typical reply frame fits; a larger body is
/// read straight into its own allocation.
const WORKER_READ_BUFFER: usize = 16 * 1024;

impl AppHost {
    /// Starts the host process, waits for the import to finish, and warms one worker.
    pub async fn load(spawner: Arc<Spawner>, spec: LoadSpec) -> Result<Arc<AppHost>, LoadError> {
        let (mut child, uid) = spawner.start_host(&spec).await?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(LoadError::Host("host process has no pipes".into()));
        };
        let log_rate = output::SharedRate::default();
        let tail = output::log_app_output(stderr, spec.app.clone(), STDERR_TAIL, log_rate.clone());
        let mut stdout = ControlLines::new(stdout);
        let first = tokio::time::timeout(spec.import_timeout, stdout.next_line()).await;
        let line = match first {
            Err(_) => {
                return Err(LoadError::Import {
                    error: format!(
                        "importing main.py took longer than {:?}",
                        spec.import_timeout
                    ),
                    traceback: String::new(),
                })
            }
            Ok(Ok(Some(line))) => line,
            Ok(Err(ControlError::TooLong)) => {
                if let Some(pid) = control::stop_host(&mut child, uid) {
                    contain::forget_root(pid);
                }
                return Err(LoadError::Misbehaved(control::too_long(&spec.app)));
            }
            Ok(_) => {
                let status = child.wait().await.ok();
                // Give the stderr reader a moment to drain.
                tokio::time::sleep(Duration::from_millis(50)).await;
                let tail: Vec<String> = tail
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                    .cloned()
                    .collect();
                return Err(LoadError::Import {
                    error: format!(
                        "the Python process exited while importing main.py ({})",
                        status
                            .map(|s| s.to_string())
                            .unwrap_or_else(|| "unknown status".into())
                    ),
                    traceback: tail.join("\n"),
                });
            }
        };
        let reply: LoadReply = serde_json::from_str(&line)
            .map_err(|e| LoadError::Misbehaved(control::unreadable(&spec.app, &line, &e)))?;
        if !reply.ok {
            return Err(LoadError::Import {
                error: reply.error.unwrap_or_else(|| "import failed".into()),
                traceback: reply.traceback.unwrap_or_default(),
            });
        }
        let host_pid = child.id().and_then(|p| i32::try_from(p).ok());
        let cpu_s = spawner
            .contain
            .for_app(spec.manifest.limits.as_ref())
            .app_cpu_s;
        let host = Arc::new(AppHost {
            cpu_s,
            app: spec.app,
            rev: spec.rev,
            sha256: spec.sha256,
            version: spec.version,
            manifest: spec.manifest,
            timeout: spec.timeout,
            pool: spec.pool.max(1),
            control: tokio::sync::Mutex::new(Control {
                stdin,
                stdout,
                child,
            }),
            idle: Mutex::new(Vec::new()),
            slots: Arc::new(Semaphore::new(spec.pool.max(1))),
            spawner,
            dir: spec.dir,
            next_id: AtomicU64::new(1),
            host_pid,
            uid,
            workers: Mutex::new(HashSet::new()),
            job_idle: Mutex::new(Vec::new()),
            cpu_watch: Mutex::new(Default::default()),
            jobs: spec.jobs,
            log_rate,
        });
        // The first worker is forked by the host that has just imported the app: what
        // stops it (the host exiting, writing over its control channel) is the app's.
        let warm = host
            .fork_worker()
            .await
            .map_err(|e| LoadError::Misbehaved(e.to_string()))?;
        host.lock_idle().push(warm);
        Ok(host)
    }

    /// True once the host process has exited (killed by one of its workers, the OOM
    /// killer, ...): it can fork no more workers, so the runner loads the app again.
    /// A host busy forking (its control channel locked) counts as alive.
    pub fn is_dead(&self) -> bool {
        match self.control.try_lock() {
            Ok(mut ctl) => !matches!(ctl.child.try_wait(), Ok(None)),
            Err(_) => false,
        }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Worker>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_workers(&self) -> std::sync::MutexGuard<'_, HashSet<i32>> {
        self.workers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn kill_worker(&self, worker: &Worker) {
        self.lock_workers().remove(&worker.pid);
        worker.kill();
    }

    /// Kills every worker this host forked, busy or idle, with whatever each started.
    /// Once the host is dead its workers are orphans that nothing else would reach (they
    /// are re-parented away from it), so the runner calls this before loading the app
    /// again; `Drop` does it too.
    pub fn kill_workers(&self) {
        let pids: Vec<i32> = self.lock_workers().drain().collect();
        for pid in pids {
            contain::kill_tree(pid, self.uid);
        }
    }

    /// Kills whatever runs under the host that is not one of its workers: children that
    /// module-level code left, and orphans of dead workers re-parented to the host (a
    /// subreaper). Skipped while a fork is in flight, so a new worker is never mistaken.
    pub fn sweep(&self) {
        self.sweep_idle_workers();
        let Some(host) = self.host_pid else { return };
        let Ok(_ctl) = self.control.try_lock() else {
            return;
        };
        let workers = self.lock_workers().clone();
        for pid in contain::live_children(host) {
            if !workers.contains(&pid) {
                tracing::info!(app = %self.app, pid, "killing a process left behind by the app");
                contain::kill_tree(pid, self.uid);
            }
        }
    }

    /// Kills what idle workers still run: an idle worker is between calls, so any child
    /// of it outlived the call (or job) that started it, or was started by a thread the
    /// app left running. The worker cleans up after each call itself, but that is
    /// Python in the app's process, which app code can switch off; this is not.
    fn sweep_idle_workers(&self) {
        let stray = |w: &Worker| {
            for pid in contain::live_children(w.pid) {
                tracing::info!(app = %self.app, worker = w.pid, pid, "killing a process an idle worker still runs (it outlived its call)");
                contain::kill_tree(pid, self.uid);
            }
        };
        // Under the locks: a worker is taken for a call only once this pass let go.
        self.lock_idle().iter().for_each(stray);
        self.lock_job_idle().iter().for_each(|(w, _)| stray(w));
    }

    /// Runs `execute` on a free pooled worker. One deadline covers waiting for a worker
    /// and the call itself, so a call never outlives the gateway's wait; a call that
    /// never got a worker says so (it did not run), and one stopped after a wait says
    /// how long it waited.
    pub async fn call(&self, body: &[u8], request_id: &str) -> Result<CallReply, CallError> {
        let arrived = tokio::time::Instant::now();
        let deadline = arrived + self.timeout;
        // Set once the call has a slot: how long it waited for the others' calls.
        let mut slot_waited = None;
        let waited = tokio::time::timeout_at(deadline, async {
            let permit = self
                .slots
                .acquire()
                .await
                .map_err(|_| CallError::Unavailable("worker pool closed".into()))?;
            slot_waited = Some(arrived.elapsed());
            let idle = self.lock_idle().pop();
            let worker = match idle {
                Some(w) => w,
                None => self.fork_worker().await?,
            };
            Ok::<_, CallError>((permit, worker))
        })
        .await;
        let (_permit, mut worker) = match waited {
            Ok(r) => r?,
            Err(_) => {
                return Err(CallError::NoWorker {
                    limit: self.timeout,
                    workers: self.pool,
                    starting: slot_waited.is_some(),
                })
            }
        };
        // Time in the queue, not starting a worker: that is what more workers shorten.
        let waited = slot_waited.unwrap_or_default();
        let header = serde_json::json!({
            "id": self.next_id.fetch_add(1, Ordering::Relaxed),
            "rid": request_id,
            "cap": self.jobs.log_bytes,
        });
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let result = self
            .exchange(&mut worker, &header, body, remaining, None, None)
            .await
            .map_err(|e| e.error)
            .map_err(|e| match e {
                // A wait under 0.1 s is not worth a word.
                CallError::Timeout(_) if waited >= Duration::from_millis(100) => {
                    CallError::TimeoutAfterWait {
                        limit: self.timeout,
                        waited,
                    }
                }
                CallError::Timeout(_) => CallError::Timeout(self.timeout),
                other => other,
            });
        match &result {
            Ok(_) | Err(CallError::Exception { .. }) => {
                worker.served += 1;
                self.lock_idle().push(worker)
            }
            Err(_) => self.kill_worker(&worker),
        }
        result
    }
}

impl Drop for AppHost {
    fn drop(&mut self) {
        for w in self.lock_idle().drain(..) {
            w.kill();
        }
        for (w, _) in self.lock_job_idle().drain(..) {
            w.kill();
        }
        self.kill_workers();
        // The host, its workers and anything re-parented to it.
        if let Some(pid) = self.host_pid {
            contain::kill_tree(pid, self.uid);
            contain::forget_root(pid);
        }
        if let Ok(mut ctl) = self.control.try_lock() {
            let _ = ctl.child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

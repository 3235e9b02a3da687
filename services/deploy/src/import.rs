//! The import check: `main.py` must compile and import (module-level code included) and
//! expose a callable `execute(data, ...)`. It runs the way the runner loads an app, in a
//! fresh Python process on the unpacked bundle, under a time limit; a failure refuses
//! the deploy with the traceback, and the running version is never touched.
//!
//! It is contained as the runner contains apps: the app's own uid (from
//! `noderouter_core.app_identities`, created here on first deploy with its Postgres role
//! and schema), an environment from the allow-list with the app's own `DATABASE_URL`,
//! the runner's process limits, its files readable by it alone, and killed whole.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::AsyncReadExt;

use nr_infra::appid::ContainArgs;
use nr_infra::contain;

use crate::findings::{finding, Refused};

const CHECKER: &str = include_str!("../python/nr_check.py");
/// The containment helpers the checker shares with the runner's app host.
const CONTAIN: &str = include_str!("../../runner/python/nr_contain.py");
/// The app SDK the runner puts on `PYTHONPATH` (`from noderouter import progress`), so
/// an app importing it passes here as it loads there.
const SDK_INIT: &str = include_str!("../../runner/python/noderouter/__init__.py");

/// Most bytes of the app's own output kept for the refusal.
const OUTPUT_LIMIT: usize = 16 * 1024;
/// Most bytes of the checker's result channel kept: its one JSON line is a message and
/// a traceback. App code can find the channel in `/proc/self/fd` and write to it; past
/// this, what arrives is read and dropped, so the deploy service's memory stays bounded.
const RESULT_LIMIT: u64 = 1024 * 1024;

/// Reads `pipe` to its end, keeping its first `limit` bytes in `buf` and dropping the
/// rest (a writer left blocked would only turn into the timeout). Chunk by chunk, so
/// what was read stays in `buf` if the reading is cut short.
async fn keep<R: tokio::io::AsyncRead + Unpin>(
    pipe: Option<&mut R>,
    buf: &mut Vec<u8>,
    limit: usize,
) {
    let Some(pipe) = pipe else { return };
    let mut chunk = [0u8; 8192];
    while let Ok(n @ 1..) = pipe.read(&mut chunk).await {
        let room = limit.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..n.min(room)]);
    }
}

#[derive(Debug, Clone)]
pub struct ImportCheck {
    /// Python interpreter (the runner's: it needs the same packages, psycopg2 included).
    pub python: String,
    /// `DATABASE_URL` handed to the app, as the runner does; module-level migrations run.
    pub database_url: Option<String>,
    pub timeout: Duration,
    /// The uid range and process limits shared with the runner.
    pub contain: ContainArgs,
    /// Opens the app's secrets, so module-level code reads them here as it will on the
    /// runner (`NR_SECRETS_KEY`). Without it the check runs with the app's variables
    /// only, and a refusal names the secrets it lacked.
    pub secrets: Option<std::sync::Arc<nr_infra::appenv::SecretsKey>>,
    /// The app's variables where no database holds them (the author's
    /// `app lint --env NAME=value`).
    pub env: Vec<(String, String)>,
}

/// Where no database records app uids (the author's `lint` without `DATABASE_URL`), a
/// root deploy still drops privileges, to `nobody`.
const NOBODY: u32 = 65534;

#[derive(Debug, Deserialize)]
struct Outcome {
    ok: bool,
    #[serde(default)]
    rule: Option<String>,
    #[serde(default)]
    line: Option<u32>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    traceback: Option<String>,
}

impl ImportCheck {
    /// The app's identity (created on its first deploy, with its Postgres role and
    /// schema), its variables and the secrets this check can open, and the names of
    /// those it cannot, over one short-lived connection (deploy keeps no pool).
    async fn identity_and_env(
        &self,
        url: &str,
        app: &str,
    ) -> Result<(nr_infra::appid::AppIdentity, nr_infra::appenv::CheckEnv), Refused> {
        let pool = nr_infra::db::connect(url, 1)
            .await
            .map_err(|e| Refused::internal(format!("{e:#}")))?;
        let id = nr_infra::appid::ensure(&pool, app, &self.contain).await;
        let env = nr_infra::appenv::load_for_check(&pool, self.secrets.as_deref(), app).await;
        pool.close().await;
        let id = id.map_err(|e| {
            Refused::internal(format!("cannot set up the identity of app {app}: {e:#}"))
        })?;
        let env = env.map_err(|e| {
            Refused::internal(format!("cannot read the variables of app {app}: {e}"))
        })?;
        Ok((id, env))
    }

    /// The values of `app`'s secrets this check can open, to mask in what is shown of
    /// the app's output elsewhere (none without a database, or when it cannot be read).
    pub async fn secret_values(&self, app: &str) -> Vec<String> {
        let Some(url) = &self.database_url else {
            return Vec::new();
        };
        let Ok(pool) = nr_infra::db::connect(url, 1).await else {
            return Vec::new();
        };
        let env = nr_infra::appenv::load_for_check(&pool, self.secrets.as_deref(), app).await;
        pool.close().await;
        env.map(|e| e.secret_values).unwrap_or_default()
    }

    /// Imports the app unpacked in `app_dir`; `scratch` is a private directory for the
    /// checker script.
    #[tracing::instrument(skip_all, fields(app = app))]
    pub async fn run(
        &self,
        app: &str,
        version: &str,
        app_limits: Option<&nr_contracts::manifest::Limits>,
        app_dir: &Path,
        scratch: &Path,
    ) -> Result<(), Refused> {
        let py_dir = scratch.join("py");
        let sdk_dir = py_dir.join("noderouter");
        tokio::fs::create_dir_all(&sdk_dir)
            .await
            .map_err(|e| Refused::internal(format!("cannot create {}: {e}", sdk_dir.display())))?;
        let script = py_dir.join("nr_check.py");
        tokio::fs::write(&script, CHECKER)
            .await
            .map_err(|e| Refused::internal(format!("cannot write the import checker: {e}")))?;
        tokio::fs::write(py_dir.join("nr_contain.py"), CONTAIN)
            .await
            .map_err(|e| Refused::internal(format!("cannot write the containment helpers: {e}")))?;
        tokio::fs::write(sdk_dir.join("__init__.py"), SDK_INIT)
            .await
            .map_err(|e| Refused::internal(format!("cannot write the app SDK: {e}")))?;

        // The child runs in the app's folder: a relative interpreter path (`.venv/bin/python`)
        // must not be looked up from there.
        let python = if self.python.contains('/') {
            std::path::absolute(&self.python)
                .map_err(|e| Refused::internal(format!("cannot resolve {}: {e}", self.python)))?
        } else {
            std::path::PathBuf::from(&self.python)
        };
        let switch = contain::can_switch_users();
        let (uid, database_url, app_env) = match &self.database_url {
            Some(url) => {
                let (id, env) = self.identity_and_env(url, app).await?;
                let app_url = id
                    .database_url(url)
                    .map_err(|e| Refused::internal(format!("{e:#}")))?;
                (switch.then_some(id.uid), Some(app_url), env)
            }
            None => (
                switch.then_some(NOBODY),
                None,
                nr_infra::appenv::CheckEnv {
                    env: self.env.clone(),
                    ..Default::default()
                },
            ),
        };
        let home = scratch.join("home");
        let (s, a, p, h) = (
            scratch.to_path_buf(),
            app_dir.to_path_buf(),
            py_dir.clone(),
            home.clone(),
        );
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            // The bundle is closed to others before the scratch dir opens for passage.
            contain::share_read_only(&a, uid)?;
            contain::public_read_only(&p)?;
            contain::private_dir(&h, uid)?;
            if uid.is_some() {
                contain::traversable(&s)?;
            }
            Ok(())
        })
        .await
        .map_err(|e| Refused::internal(format!("file setup task failed: {e}")))?
        .map_err(|e| Refused::internal(format!("cannot set up the import check's files: {e}")))?;
        if uid.is_some() {
            // The app's own folder is 0750 to its group; everything above must let it pass.
            let above = app_dir.parent().unwrap_or(app_dir);
            if let Some(dir) = contain::untraversable_ancestor(above) {
                return Err(Refused::internal(format!(
                    "the import check cannot reach {}: {} lacks the o+x bit (NR_DEPLOY_DIR must be under traversable directories)",
                    app_dir.display(),
                    dir.display()
                )));
            }
        }
        let mut limits = self.contain.for_app(app_limits);
        if uid.is_none() {
            // RLIMIT_NPROC counts every process of the user: deploy's own, here.
            limits.app_max_procs = 0;
        }
        let mut platform = vec![
            ("NR_APP_NAME".to_owned(), app.to_owned()),
            ("NR_APP_VERSION".to_owned(), version.to_owned()),
            ("NR_DEPLOY_CHECK".to_owned(), "1".to_owned()),
        ];
        platform.extend(limits.limit_env());
        let mut cmd = tokio::process::Command::new(&python);
        cmd.arg("-B").arg(&script).arg(app).arg(app_dir);
        contain::launch(
            &mut cmd,
            &contain::Launch {
                uid,
                home: &home,
                python_path: &py_dir,
                database_url: database_url.as_deref(),
                platform,
                app: &app_env.env,
            },
        );
        cmd.current_dir(app_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if uid.is_some() {
            contain::adopt_orphans();
        }
        // Module code runs once at a time per app, across runners and deploy checks.
        let import = match &self.database_url {
            Some(url) => nr_infra::import_lock::ImportLock::take(url, app).await,
            None => None,
        };
        let result = self
            .check(cmd, uid, &app_env.closed, app_dir, scratch)
            .await
            .map_err(|r| masked(r, &app_env.secret_values));
        if let Some(import) = import {
            import.release().await;
        }
        result
    }

    /// Runs the prepared checker and reads its verdict.
    async fn check(
        &self,
        mut cmd: tokio::process::Command,
        uid: Option<u32>,
        closed: &[String],
        app_dir: &Path,
        scratch: &Path,
    ) -> Result<(), Refused> {
        let mut child = contain::spawn_root(&mut cmd).map_err(|e| {
            Refused::internal(format!(
                "cannot start {} for the import check: {e}",
                self.python
            ))
        })?;
        let pid = child.id();
        let mut stdout = child.stdout.take();
        let mut stderr = child.stderr.take();
        // Filled as the pipes are read, so what the import printed before a timeout is
        // still here to show.
        let mut out = Vec::new();
        let mut err = Vec::new();
        let read_all = async {
            tokio::join!(
                keep(stdout.as_mut(), &mut out, RESULT_LIMIT as usize),
                keep(stderr.as_mut(), &mut err, 4 * OUTPUT_LIMIT),
            );
            child.wait().await
        };
        let finished = tokio::time::timeout(self.timeout, read_all).await;
        let roots = [app_dir, scratch];
        let stderr_text = scrub_paths(&tail(&String::from_utf8_lossy(&err), OUTPUT_LIMIT), &roots);
        let status = match finished {
            Ok(status) => status,
            Err(_) => {
                kill_tree(pid, uid, &self.contain);
                let printed = if stderr_text.trim().is_empty() {
                    String::new()
                } else {
                    format!(
                        "; what it printed before it was stopped:\n{}",
                        stderr_text.trim_end()
                    )
                };
                return Err(Refused::one(
                    422,
                    "main.timeout",
                    Some("main.py"),
                    None,
                    format!(
                        "importing main.py took longer than {}s (NR_DEPLOY_IMPORT_TIMEOUT_S): module-level code must finish quickly; move long work into execute(){printed}",
                        self.timeout.as_secs_f64()
                    ),
                ));
            }
        };
        // Whatever the app left running under the checker goes with it.
        kill_tree(pid, uid, &self.contain);
        let line = String::from_utf8_lossy(&out);
        let outcome = line
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str::<Outcome>(l).ok());
        match outcome {
            Some(o) if o.ok => Ok(()),
            Some(o) => {
                let message = scrub_paths(
                    &o.message
                        .unwrap_or_else(|| "main.py failed the import check".into()),
                    &roots,
                );
                let mut text = message.clone();
                let tb = scrub_paths(&o.traceback.unwrap_or_default(), &roots);
                if !tb.trim().is_empty() {
                    text = format!("{message}\n{}", tb.trim_end());
                }
                let mut details = vec![finding(
                    o.rule.as_deref().unwrap_or("main.import"),
                    Some("main.py"),
                    o.line,
                    text,
                )];
                // The output is shown once: not when it only repeats the traceback.
                if !stderr_text.trim().is_empty() && !tb.contains(stderr_text.trim()) {
                    details.push(finding(
                        "main.output",
                        Some("main.py"),
                        None,
                        format!("output of the import:\n{}", stderr_text.trim_end()),
                    ));
                }
                if !closed.is_empty() {
                    details.push(finding(
                        "main.secrets",
                        Some("main.py"),
                        None,
                        format!(
                            "the import ran without the app's secret(s) {}: this deploy service's NR_SECRETS_KEY is unset or does not open them (give it the key the gateways and runners have)",
                            closed.join(", ")
                        ),
                    ));
                }
                Err(Refused {
                    status: 422,
                    error: message,
                    details,
                    warnings: Vec::new(),
                })
            }
            None => {
                let how = match &status {
                    Ok(s) => format!("ended ({s})"),
                    Err(e) => format!("could not be waited for ({e})"),
                };
                let cpu_killed = status.as_ref().is_ok_and(|s| {
                    use std::os::unix::process::ExitStatusExt;
                    matches!(s.signal(), Some(9 | 24))
                });
                let mut message = if cpu_killed && self.contain.app_cpu_s > 0 {
                    format!(
                        "the Python process importing main.py {how} without a result: it was killed, at its CPU time limit (limits.cpu_s, up to NR_APP_CPU_S) in code that never returned to Python, or for its memory"
                    )
                } else {
                    format!(
                        "the Python process importing main.py {how} without a result: the module killed the interpreter (os._exit, a crash, or memory) or wrote over the import check's own output"
                    )
                };
                if !stderr_text.trim().is_empty() {
                    message = format!("{message}\n{}", stderr_text.trim_end());
                }
                Err(Refused::one(
                    422,
                    "main.import",
                    Some("main.py"),
                    None,
                    message,
                ))
            }
        }
    }
}

/// The refusal with the app's secret values masked: what the import printed or raised
/// is shown to the deployer and logged, and neither may carry a secret by accident.
fn masked(mut r: Refused, secrets: &[String]) -> Refused {
    if secrets.is_empty() {
        return r;
    }
    r.error = nr_infra::appenv::mask(&r.error, secrets);
    for f in &mut r.details {
        f.message = nr_infra::appenv::mask(&f.message, secrets);
    }
    r
}

/// `text` without the server's directories: `<root>/main.py` reads `main.py`, so an
/// author's traceback names their own files only.
pub(crate) fn scrub_paths(text: &str, roots: &[&Path]) -> String {
    let mut out = text.to_owned();
    for root in roots {
        let mut variants = vec![root.display().to_string()];
        if let Ok(real) = std::fs::canonicalize(root) {
            variants.push(real.display().to_string());
        }
        variants.sort_by_key(|v| std::cmp::Reverse(v.len()));
        for v in variants {
            let v = v.trim_end_matches('/');
            if v.len() < 2 {
                continue;
            }
            out = out.replace(&format!("{v}/"), "").replace(v, ".");
        }
    }
    out
}

/// Kills the checker and everything under it; then anything of the app's uid range
/// orphaned to this process (module code that killed the checker itself), and any
/// adopted by init (left by a deploy or runner that was killed outright).
fn kill_tree(pid: Option<u32>, uid: Option<u32>, range: &ContainArgs) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        contain::kill_tree(pid, uid);
        contain::forget_root(pid);
    }
    if uid.is_some() {
        contain::reap(range.app_uid_base, range.app_uid_count);
    }
}

/// The last `limit` bytes of `text`, on a character boundary.
fn tail(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    let mut start = text.len() - limit;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &text[start..])
}

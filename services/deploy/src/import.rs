//! The import check: `main.py` must compile and import (module-level code included) and
//! expose a callable `execute(data, ...)`. It runs the way the runner loads an app, in a
//! fresh Python process on the unpacked bundle, under a time limit; a failure refuses
//! the deploy with the traceback, and the running version is never touched.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::AsyncReadExt;

use crate::findings::{finding, Refused};

const CHECKER: &str = include_str!("../python/nr_check.py");
/// The app SDK the runner puts on `PYTHONPATH` (`from noderouter import progress`), so
/// an app importing it passes here as it loads there.
const SDK_INIT: &str = include_str!("../../runner/python/noderouter/__init__.py");

/// Most bytes of the app's own output kept for the refusal.
const OUTPUT_LIMIT: usize = 16 * 1024;

#[derive(Debug, Clone)]
pub struct ImportCheck {
    /// Python interpreter (the runner's: it needs the same packages, psycopg2 included).
    pub python: String,
    /// `DATABASE_URL` handed to the app, as the runner does; module-level migrations run.
    pub database_url: Option<String>,
    pub timeout: Duration,
}

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
    /// Imports the app unpacked in `app_dir`; `scratch` is a private directory for the
    /// checker script.
    #[tracing::instrument(skip_all, fields(app = app))]
    pub async fn run(
        &self,
        app: &str,
        version: &str,
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
        let mut cmd = tokio::process::Command::new(&python);
        cmd.arg("-B")
            .arg(&script)
            .arg(app)
            .arg(app_dir)
            .current_dir(app_dir)
            .env("PYTHONPATH", &py_dir)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("NR_APP_NAME", app)
            .env("NR_APP_VERSION", version)
            .env("NR_DEPLOY_CHECK", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        if let Some(url) = &self.database_url {
            cmd.env("DATABASE_URL", url);
        }
        let mut child = cmd.spawn().map_err(|e| {
            Refused::internal(format!(
                "cannot start {} for the import check: {e}",
                self.python
            ))
        })?;
        let pid = child.id();
        let mut stdout = child.stdout.take();
        let mut stderr = child.stderr.take();
        let read_all = async {
            let mut out = Vec::new();
            let mut err = Vec::new();
            let read_out = async {
                if let Some(s) = stdout.as_mut() {
                    let _ = s.read_to_end(&mut out).await;
                }
            };
            let read_err = async {
                if let Some(s) = stderr.as_mut() {
                    let _ = s.take(4 * OUTPUT_LIMIT as u64).read_to_end(&mut err).await;
                }
            };
            tokio::join!(read_out, read_err);
            let status = child.wait().await;
            (out, err, status)
        };
        let (out, err, status) = match tokio::time::timeout(self.timeout, read_all).await {
            Ok(r) => r,
            Err(_) => {
                kill_group(pid);
                return Err(Refused::one(
                    422,
                    "main.timeout",
                    Some("main.py"),
                    None,
                    format!(
                        "importing main.py took longer than {}s (NR_DEPLOY_IMPORT_TIMEOUT_S): module-level code must finish quickly; move long work into execute()",
                        self.timeout.as_secs_f64()
                    ),
                ));
            }
        };
        // Whatever the app left running in its process group goes with it.
        kill_group(pid);
        let stderr_text = tail(&String::from_utf8_lossy(&err), OUTPUT_LIMIT);
        let line = String::from_utf8_lossy(&out);
        let outcome = line
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str::<Outcome>(l).ok());
        match outcome {
            Some(o) if o.ok => Ok(()),
            Some(o) => {
                let message = o
                    .message
                    .unwrap_or_else(|| "main.py failed the import check".into());
                let mut text = message.clone();
                let tb = o.traceback.unwrap_or_default();
                if !tb.trim().is_empty() {
                    text = format!("{message}\n{}", tb.trim_end());
                }
                let mut details = vec![finding(
                    o.rule.as_deref().unwrap_or("main.import"),
                    Some("main.py"),
                    o.line,
                    text,
                )];
                if !stderr_text.trim().is_empty() {
                    details.push(finding(
                        "main.output",
                        Some("main.py"),
                        None,
                        format!("output of the import:\n{}", stderr_text.trim_end()),
                    ));
                }
                Err(Refused {
                    status: 422,
                    error: message,
                    details,
                })
            }
            None => {
                let how = match status {
                    Ok(s) => format!("ended ({s})"),
                    Err(e) => format!("could not be waited for ({e})"),
                };
                let mut message = format!(
                    "the Python process importing main.py {how} without a result: the module killed the interpreter (os._exit, a crash, or memory)"
                );
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

fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
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

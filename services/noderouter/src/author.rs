//! The author CLI's client side: `app lint` (every deploy check, locally, with the same
//! messages), `app deploy` (upload with a progress bar, then the report), and the
//! version commands (`versions`, `rollback`, `delete`) against a running platform.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use noderouter::bundle;
use nr_deploy::findings::location;
use nr_deploy::import::ImportCheck;
use nr_deploy::{CheckArgs, Checker, Finding};
use serde_json::Value;

/// Reads a bundle: a folder is packed as `app pack` does, a zip is read as it is.
/// Returns the file name the platform sees (`<folder>.zip` or the zip's own name).
pub fn load_bundle(path: &Path) -> anyhow::Result<(String, Vec<u8>)> {
    if path.is_dir() {
        Ok((
            format!("{}.zip", bundle::dir_name(path)?),
            bundle::pack_dir(path)?,
        ))
    } else {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .context("the path has no file name")?;
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        Ok((name, bytes))
    }
}

fn print_finding(kind: &str, f: &Finding) {
    let at = location(f).map(|l| format!(" {l}:")).unwrap_or_default();
    let mut lines = f.message.lines();
    outln!(
        "{kind}[{}]{at} {}",
        f.rule,
        lines.next().unwrap_or_default()
    );
    for l in lines {
        outln!("    {l}");
    }
}

fn print_findings(kind: &str, findings: &[Finding]) {
    for f in findings {
        print_finding(kind, f);
    }
}

/// Options of `app lint`.
pub struct LintOptions {
    pub python: String,
    pub database_url: Option<String>,
    pub import: bool,
    pub checks: CheckArgs,
    pub json: bool,
    /// The app's variables for the import check (`--env NAME=value`).
    pub env: Vec<(String, String)>,
    /// The platform's bundle limit (`NR_MAX_BUNDLE_BYTES`).
    pub max_bundle_bytes: u64,
}

/// Runs every deploy check on a folder or zip. Returns false when the platform would
/// refuse it.
pub async fn lint(path: &Path, opts: LintOptions) -> anyhow::Result<bool> {
    let (file_name, bytes) = load_bundle(path)?;
    // Without the runners' Python the import check cannot run; the others still do.
    let python = if opts.import {
        runners_python(&opts.python).err()
    } else {
        None
    };
    let timeout = opts.checks.deploy_import_timeout_s;
    let checker = Checker {
        limits: opts.checks.limits(),
        contain: opts.checks.contain.clone(),
        import: (opts.import && python.is_none()).then(|| ImportCheck {
            python: opts.python.clone(),
            database_url: opts.database_url.clone(),
            timeout: Duration::from_secs_f64(if timeout.is_finite() && timeout > 0.0 {
                timeout
            } else {
                60.0
            }),
            contain: opts.checks.contain.clone(),
            secrets: None,
            env: opts.env.clone(),
        }),
        work_dir: None,
    };
    let size = bytes.len() as u64;
    let max = opts.max_bundle_bytes;
    let result = async {
        // As deploy refuses it, before anything is unpacked.
        if size > max {
            return Err(nr_deploy::Refused::one(
                413,
                "bundle.size",
                None,
                None,
                format!(
                    "the bundle is {size} bytes; the limit is {max} bytes (NR_MAX_BUNDLE_BYTES)"
                ),
            ));
        }
        let inspected = checker.inspect(bytes.into(), &file_name).await?;
        checker
            .import(&inspected)
            .await
            .map_err(|r| r.with_warnings(&inspected.warnings))?;
        Ok::<_, nr_deploy::Refused>(inspected)
    }
    .await;
    match result {
        Ok(b) if python.is_some() => {
            if !opts.json {
                print_findings("warning", &b.warnings);
            }
            Err(python.unwrap_or_else(|| anyhow::anyhow!("the import check could not run")))
        }
        Ok(b) => {
            if opts.json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "app_name": b.app_name, "version": b.version, "warnings": b.warnings,
                    }))?
                );
            } else {
                print_findings("warning", &b.warnings);
                outln!(
                    "{} {}: passes every check{} ({} warning{}); conflicts with other apps are checked at deploy",
                    b.app_name,
                    b.version,
                    if opts.import { "" } else { " but the import check (skipped)" },
                    b.warnings.len(),
                    if b.warnings.len() == 1 { "" } else { "s" },
                );
            }
            Ok(true)
        }
        Err(r) if r.status >= 500 => Err(anyhow::anyhow!(
            "the checks could not run: {}",
            r.error
                .trim_start_matches("deploy failed inside the platform: ")
        )),
        Err(r) => {
            if opts.json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "status": r.status, "error": r.error, "details": r.details,
                        "warnings": r.warnings,
                    }))?
                );
            } else {
                print_findings("error", &r.details);
                print_findings("warning", &r.warnings);
                outln!("refused ({}): {}", r.status, first_line(&r.error));
                if let Some(p) = &python {
                    outln!("(the import check did not run: {p})");
                }
            }
            Ok(false)
        }
    }
}

/// The import check means something only with the runners' interpreter: every one has
/// psycopg2 (the injected `conn` needs it), so one without it is another Python, whose
/// refusals (`No module named 'psycopg2'`, say) deploy would not give.
fn runners_python(python: &str) -> anyhow::Result<()> {
    let probe = std::process::Command::new(python)
        .args(["-c", "import psycopg2"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    match probe {
        Ok(s) if s.success() => Ok(()),
        Ok(_) => Err(anyhow::anyhow!(
            "cannot run the import check with {python}: it has no psycopg2, which every runner's Python has, so it is not the platform's interpreter and the check would not see what deploy sees; pass the runners' interpreter with --python or NR_PYTHON (in a checkout, scripts/up runs them with .venv/bin/python), or skip the import check with --no-import"
        )),
        Err(e) => Err(anyhow::anyhow!(
            "cannot run the import check: cannot start {python} ({e}); pass the runners' interpreter with --python or NR_PYTHON, or skip the import check with --no-import"
        )),
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// A platform to talk to: its base URL and an optional bearer token.
pub struct Remote {
    pub url: String,
    pub token: Option<String>,
}

impl Remote {
    pub(crate) fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.url.trim_end_matches('/'))
    }

    fn authed(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    pub(crate) async fn send(
        &self,
        req: reqwest::RequestBuilder,
    ) -> anyhow::Result<(reqwest::StatusCode, Value)> {
        let res = self
            .authed(req)
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.url))?;
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, body))
    }
}

/// Prints a refusal or error body (`{error, details}`) and turns it into an error.
pub(crate) fn refusal(what: &str, status: reqwest::StatusCode, body: &Value) -> anyhow::Error {
    let details: Vec<Finding> = serde_json::from_value(body["details"].clone()).unwrap_or_default();
    print_findings("error", &details);
    // A refused deploy also names what it would have warned of.
    let warnings: Vec<Finding> =
        serde_json::from_value(body["warnings"].clone()).unwrap_or_default();
    print_findings("warning", &warnings);
    let error = body["error"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| body.to_string());
    anyhow::anyhow!("{what} refused ({status}): {}", first_line(&error))
}

/// Uploads a folder or zip to `POST /admin/api/apps/deploy` with a progress bar on a
/// terminal, and prints the report.
pub async fn deploy(remote: &Remote, path: &Path, json: bool) -> anyhow::Result<()> {
    let (file_name, bytes) = load_bundle(path)?;
    let total = bytes.len() as u64;
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(format!("uploading {file_name}"));
    bar.enable_steady_tick(Duration::from_millis(100));
    let chunks: Vec<bytes::Bytes> = bytes
        .chunks(64 * 1024)
        .map(bytes::Bytes::copy_from_slice)
        .collect();
    let count = chunks.len();
    let progress = bar.clone();
    let stream = futures::stream::iter(chunks.into_iter().enumerate().map(move |(i, c)| {
        progress.inc(c.len() as u64);
        if i + 1 == count {
            progress.set_message("checking the bundle".to_owned());
        }
        Ok::<_, std::io::Error>(c)
    }));
    let part =
        reqwest::multipart::Part::stream_with_length(reqwest::Body::wrap_stream(stream), total)
            .file_name(file_name.clone())
            .mime_str("application/zip")?;
    let form = reqwest::multipart::Form::new().part("file", part);
    let req = reqwest::Client::new()
        .post(remote.endpoint("/admin/api/apps/deploy"))
        .multipart(form);
    let sent = remote.send(req).await;
    bar.finish_and_clear();
    let (status, body) = sent?;
    if !status.is_success() {
        if json {
            outln!("{}", serde_json::to_string_pretty(&body)?);
        }
        return Err(refusal("deploy", status, &body));
    }
    if json {
        outln!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    let warnings: Vec<Finding> =
        serde_json::from_value(body["warnings"].clone()).unwrap_or_default();
    print_findings("warning", &warnings);
    let previous = match body["previous_version"].as_str() {
        Some(p) => format!(" (was {p})"),
        None => " (new app)".into(),
    };
    let loaded = body["loaded_by"].as_array().map_or(0, Vec::len);
    outln!(
        "deployed {} {}{previous}: rev {}, sha256 {}, {} warning{}, loaded by {loaded} runner{}",
        body["app_name"].as_str().unwrap_or_default(),
        body["version"].as_str().unwrap_or_default(),
        body["rev"],
        body["sha256"].as_str().unwrap_or_default(),
        warnings.len(),
        if warnings.len() == 1 { "" } else { "s" },
        if loaded == 1 { "" } else { "s" },
    );
    Ok(())
}

/// `GET /admin/api/apps/<app>/versions`, printed newest first.
pub async fn versions(remote: &Remote, app: &str, json: bool) -> anyhow::Result<()> {
    let req =
        reqwest::Client::new().get(remote.endpoint(&format!("/admin/api/apps/{app}/versions")));
    let (status, body) = remote.send(req).await?;
    if !status.is_success() {
        return Err(refusal("versions", status, &body));
    }
    if json {
        outln!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    if body["deleted"].as_bool() == Some(true) {
        outln!("{app} is deleted; roll back to a version to restore it");
    }
    for v in body["versions"].as_array().into_iter().flatten() {
        outln!(
            "{} {:<12} {} {}",
            if v["current"].as_bool() == Some(true) {
                "*"
            } else {
                " "
            },
            v["version"].as_str().unwrap_or_default(),
            v["deployed_at"].as_str().unwrap_or_default(),
            v["sha256"].as_str().unwrap_or_default(),
        );
        if let Some(why) = v["refused"].as_str() {
            outln!("    refused: {why}");
        }
    }
    Ok(())
}

/// `POST /admin/api/apps/<app>/rollback`.
pub async fn rollback(
    remote: &Remote,
    app: &str,
    version: &str,
    sha256: Option<&str>,
) -> anyhow::Result<()> {
    let mut body = serde_json::json!({ "version": version });
    if let Some(s) = sha256 {
        body["sha256"] = Value::String(s.to_owned());
    }
    let req = reqwest::Client::new()
        .post(remote.endpoint(&format!("/admin/api/apps/{app}/rollback")))
        .json(&body);
    let (status, body) = remote.send(req).await?;
    if !status.is_success() {
        return Err(refusal("rollback", status, &body));
    }
    outln!(
        "{app} is at {} again (was {}), rev {}",
        body["version"].as_str().unwrap_or_default(),
        body["previous_version"].as_str().unwrap_or("deleted"),
        body["rev"],
    );
    Ok(())
}

/// `DELETE /admin/api/apps/<app>`.
pub async fn delete(remote: &Remote, app: &str) -> anyhow::Result<()> {
    let req = reqwest::Client::new().delete(remote.endpoint(&format!("/admin/api/apps/{app}")));
    let (status, body) = remote.send(req).await?;
    if !status.is_success() {
        return Err(refusal("delete", status, &body));
    }
    outln!(
        "deleted {app} (was {}), rev {}; its versions are kept: `noderouter app rollback {app} <version>` restores it",
        body["version"].as_str().unwrap_or_default(),
        body["rev"],
    );
    Ok(())
}

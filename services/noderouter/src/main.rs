//! `noderouter`: all five services in one process (`up`) and the author CLI (`app`).

/// mimalloc: the sync path allocates per request in hyper, axum and the NATS client;
/// see docs/adr/0020-mimalloc.md.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[macro_use]
mod out;

mod author;
mod env_cmd;
mod examples;
mod job_cmd;
mod nats_config;
mod scaffold;
mod schedule_cmd;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use noderouter::{bundle, Platform, PlatformConfig};

#[derive(Parser)]
#[command(
    name = "noderouter",
    version,
    about = "NodeRouter: a self-hosted platform for Python mini-apps"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run gateway, deploy, registry, runner and notify in this process.
    #[command(
        mut_arg("nats_url", |a| a.hide_default_value(true).help(
            "NATS server URL (JetStream enabled); several servers of a cluster comma-separated. Unset: a private nats-server with generated credentials on NR_EMBEDDED_NATS_PORT")),
        mut_arg("runner_secret", |a| a.help(
            "Keys signing runner requests and replies (comma-separated; the first signs). Unset: generated into <data dir>/runner.secret")),
        mut_arg("object_store_url", |a| a.hide_default_value(true).help(
            "Object store for bundles: `s3://bucket[/prefix]` (settings from the `AWS_*` variables), a directory path, `file:///abs/path`, or `memory://`. Unset: <data dir>/objects")),
        mut_arg("runner_dir", |a| a.hide_default_value(true).help(
            "Working directory for unpacked bundles and worker sockets. Unset: <data dir>/runner")),
        mut_arg("secrets_key", |a| a.help(
            "Key sealing app secrets: 32 bytes as 64 hex digits or base64; several, comma-separated, during a rotation. Unset: read from <data dir>/secrets.key, made on the first start")),
    )]
    Up {
        #[command(flatten)]
        config: Box<PlatformConfig>,
        /// Deploy every app folder found in this directory once the platform is up.
        #[arg(long)]
        examples: Option<PathBuf>,
    },
    /// Author tools: scaffold, lint, pack and deploy an app; list, roll back and delete versions.
    #[command(subcommand)]
    App(AppCommand),
    /// The apps' schedules: list (with the next five fire times), pause, resume.
    #[command(subcommand)]
    Schedule(schedule_cmd::ScheduleCommand),
    /// Print the `authorization` block of a nats-server config from the platform's
    /// permission table (one user per service), for a NATS of your own.
    NatsConfig(nats_config::NatsConfigArgs),
    /// Async jobs: re-queue failed ones, read their logs.
    #[command(subcommand)]
    Job(job_cmd::JobCommand),
}

#[derive(Subcommand)]
enum AppCommand {
    /// Create a new app folder with the author guide's five starter files.
    New {
        /// App name: letters, digits, _ and -, at most 64 characters.
        name: String,
        /// Where to create the folder.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Run every deploy check locally (zip safety, manifest, frontend, import) with the
    /// messages deploy gives. Exits 1 when deploy would refuse the app.
    Lint {
        /// App folder or bundle zip.
        path: PathBuf,
        /// Python interpreter for the import check: the runners' (with psycopg2 and
        /// their packages; lint refuses one without psycopg2).
        #[arg(long, env = "NR_PYTHON", default_value = "python3")]
        python: String,
        /// Handed to the app as DATABASE_URL during the import check (its module-level
        /// migrations run against it); unset, the app sees none.
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
        /// Skip the import check (main.py is not run).
        #[arg(long)]
        no_import: bool,
        /// An app variable for the import check, as `NAME=value` (repeat it): the
        /// platform's variables are not here, and module code that reads one at import
        /// fails without it.
        #[arg(long = "env", value_name = "NAME=value", value_parser = parse_env_pair)]
        env: Vec<(String, String)>,
        /// The platform's bundle limit (as deploy's `NR_MAX_BUNDLE_BYTES`).
        #[arg(long, env = "NR_MAX_BUNDLE_BYTES", default_value_t = 50 * 1024 * 1024)]
        max_bundle_bytes: u64,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        checks: nr_deploy::CheckArgs,
    },
    /// Zip an app folder the way the platform expects (contents at the root).
    Pack {
        dir: PathBuf,
        /// Output file; default `<name>.zip` beside the folder.
        #[arg(short, long)]
        out: Option<PathBuf>,
    },
    /// Upload an app folder or zip (with a progress bar) and print the deploy report.
    Deploy {
        path: PathBuf,
        #[command(flatten)]
        remote: RemoteArgs,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List an app's versions, newest first; `*` marks the current one.
    Versions {
        app: String,
        #[command(flatten)]
        remote: RemoteArgs,
        #[arg(long)]
        json: bool,
    },
    /// Make an earlier version of an app current again (or restore a deleted app).
    Rollback {
        app: String,
        version: String,
        /// Which bundle, when the version was deployed more than once with other contents.
        #[arg(long)]
        sha256: Option<String>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Stop serving an app. Its versions are kept; `rollback` restores it.
    Delete {
        app: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// An app's variables and secrets: set, unset, list.
    #[command(subcommand)]
    Env(env_cmd::EnvCommand),
}

#[derive(clap::Args)]
struct RemoteArgs {
    /// Base URL of the platform.
    #[arg(long, env = "NR_URL", default_value = "http://127.0.0.1:3000")]
    url: String,
    /// Bearer token, when the platform requires one.
    #[arg(long, env = "NR_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl RemoteArgs {
    fn remote(self) -> author::Remote {
        author::Remote {
            url: self.url,
            token: self.token,
        }
    }
}

/// Runs the command; a failure is printed as its message and the causes under it, never
/// as a backtrace (`RUST_BACKTRACE` set in the shell made every refusal one).
#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Up { config, examples } => up(*config, examples).await,
        Command::NatsConfig(args) => nats_config::run(args),
        Command::App(AppCommand::New { name, dir }) => scaffold::new_app(&name, &dir),
        Command::App(AppCommand::Lint {
            path,
            python,
            database_url,
            no_import,
            env,
            max_bundle_bytes,
            json,
            checks,
        }) => {
            let opts = author::LintOptions {
                python,
                database_url,
                import: !no_import,
                checks,
                json,
                env,
                max_bundle_bytes,
            };
            if author::lint(&path, opts).await? {
                Ok(())
            } else {
                std::process::exit(1)
            }
        }
        Command::App(AppCommand::Pack { dir, out }) => {
            let name = bundle::dir_name(&dir)?;
            let bytes = bundle::pack_dir(&dir)?;
            let out = out.unwrap_or_else(|| {
                std::path::absolute(&dir)
                    .ok()
                    .and_then(|d| d.parent().map(Path::to_path_buf))
                    .unwrap_or_default()
                    .join(format!("{name}.zip"))
            });
            std::fs::write(&out, &bytes)
                .with_context(|| format!("cannot write {}", out.display()))?;
            outln!("{} ({} bytes)", out.display(), bytes.len());
            Ok(())
        }
        Command::App(AppCommand::Deploy { path, remote, json }) => {
            author::deploy(&remote.remote(), &path, json).await
        }
        Command::App(AppCommand::Versions { app, remote, json }) => {
            author::versions(&remote.remote(), &app, json).await
        }
        Command::App(AppCommand::Rollback {
            app,
            version,
            sha256,
            remote,
        }) => author::rollback(&remote.remote(), &app, &version, sha256.as_deref()).await,
        Command::App(AppCommand::Delete { app, remote }) => {
            author::delete(&remote.remote(), &app).await
        }
        Command::App(AppCommand::Env(cmd)) => env_cmd::run(cmd).await,
        Command::Schedule(cmd) => schedule_cmd::run(cmd).await,
        Command::Job(cmd) => job_cmd::run(cmd).await,
    }
}

/// A lifetime as the banner says it: `12 h`, `90 min`, `45 s`.
fn lifetime(s: u64) -> String {
    match s {
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// True when a setting was given (flag or environment) rather than defaulted.
fn given(env: &str, flag: &str) -> bool {
    std::env::var_os(env).is_some()
        || std::env::args()
            .any(|a| a == flag || a.strip_prefix(flag).is_some_and(|r| r.starts_with('=')))
}

/// What has no setting of its own goes under the data directory: bundles, unpacked
/// bundles and the secrets key.
fn place_under_data_dir(config: &mut PlatformConfig) -> anyhow::Result<()> {
    let data = config.embedded.data_dir.clone();
    let runner_dir_given = given("NR_RUNNER_DIR", "--runner-dir");
    if !given("NR_OBJECT_STORE_URL", "--object-store-url") {
        let objects =
            noderouter::embedded::kept_in(data.join("objects"), &[".data/objects".into()]);
        config.gateway.store.object_store_url = objects.to_string_lossy().into_owned();
    }
    if config.gateway.secrets_key.is_none() {
        // Older releases kept the key beside the runner directory.
        let beside_runner = config.runner_dir.parent().map(|p| p.join("secrets.key"));
        let path = noderouter::embedded::kept_in(
            data.join("secrets.key"),
            &beside_runner.into_iter().collect::<Vec<_>>(),
        );
        config.gateway.secrets_key = Some(nr_infra::appenv::load_or_create_file(&path)?);
        tracing::info!(path = %path.display(), "NR_SECRETS_KEY is not set: app secrets are sealed with the key in this file");
    }
    if !runner_dir_given {
        config.runner_dir = data.join("runner");
    }
    Ok(())
}

async fn up(mut config: PlatformConfig, examples: Option<PathBuf>) -> anyhow::Result<()> {
    nr_telemetry::init();
    let stop = nr_telemetry::shutdown_on_signal();
    // Refused before anything starts or is written (the private NATS included).
    config.gateway.check()?;
    config.runner().check()?;
    let session_ttl_s = config.gateway.auth.session_ttl_s;
    // One platform per data directory, held until this process ends.
    let _data_dir = noderouter::embedded::lock_data_dir(&config.embedded.data_dir)?;
    place_under_data_dir(&mut config)?;
    // Without a NATS of the operator's, run a private one that refuses anyone without the
    // generated credentials; kept alive until the platform stops.
    let embedded_nats = if given("NR_NATS_URL", "--nats-url") {
        None
    } else {
        let nats = noderouter::embedded::start(&config.embedded).await?;
        config.gateway.nats = nats.args();
        Some(nats)
    };
    if nr_auth_keys_empty(&config) {
        let data_dir = &config.embedded.data_dir;
        config.gateway.runner_secret = Some(noderouter::embedded::runner_secret(data_dir)?);
        tracing::info!(
            path = %data_dir.join("runner.secret").display(),
            "runner requests are signed with the key kept here (give it to separate runners as RUNNER_SECRET)"
        );
    }
    // The admin session token goes to a file only its owner reads, never to the output,
    // which ends up in logs other users (and apps) may read. Removed first: the file
    // appears once this start is ready.
    let token_file = std::path::absolute(config.embedded.data_dir.join("admin.token"))
        .unwrap_or_else(|_| config.embedded.data_dir.join("admin.token"));
    let _ = std::fs::remove_file(&token_file);
    let platform = Platform::start(config).await?;
    let url = platform.url();
    let admin_token = platform.admin_token().to_owned();
    let token = platform.stop_token();
    tokio::spawn(async move {
        stop.cancelled().await;
        token.cancel();
    });
    let deployed = match examples {
        Some(dir) => examples::deploy_all(&url, &dir, &admin_token).await?,
        None => Vec::new(),
    };
    sayln!();
    sayln!("NodeRouter is up at {url}");
    for line in &deployed {
        sayln!("  {line}");
    }
    if let Some(dir) = token_file.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    noderouter::embedded::write_private(&token_file, &admin_token)?;
    sayln!(
        "  admin session token (valid {}, readable by this user only): export NR_TOKEN=$(cat {})",
        lifetime(session_ttl_s),
        token_file.display()
    );
    sayln!(
        "  try: curl -s -X POST {url}/api/sync/hello -H \"Authorization: Bearer $NR_TOKEN\" -H 'Content-Type: application/json' -d '{{}}'"
    );
    sayln!("  or open {url}/login in a browser (user admin)");
    if let Some(nats) = &embedded_nats {
        sayln!(
            "  NATS (private, with authorization) at {}; read-only credentials for outside consumers of action.triggered.> and job.progress.>: {}",
            nats.url,
            nats.reader_file.display()
        );
        sayln!(
            "    e.g. set -a; . {}; set +a; nats sub 'action.triggered.>'",
            nats.reader_file.display()
        );
    }
    sayln!("Stop with Ctrl-C.");
    let result = platform.wait().await;
    if let Some(nats) = embedded_nats {
        nats.stop().await;
    }
    result
}

fn nr_auth_keys_empty(config: &PlatformConfig) -> bool {
    config
        .gateway
        .runner_secret
        .as_deref()
        .map(|s| s.split(',').all(|k| k.trim().is_empty()))
        .unwrap_or(true)
}

/// `NAME=value` of `app lint --env`.
fn parse_env_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("{s:?}: give NAME=value")),
    }
}

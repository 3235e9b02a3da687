//! `noderouter`: all five services in one process (`up`) and the author CLI (`app`).

mod scaffold;

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
    Up {
        #[command(flatten)]
        config: PlatformConfig,
        /// Deploy every app folder found in this directory once the platform is up.
        #[arg(long)]
        examples: Option<PathBuf>,
    },
    /// Author tools: scaffold, pack and deploy an app.
    #[command(subcommand)]
    App(AppCommand),
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
    /// Zip an app folder the way the platform expects (contents at the root).
    Pack {
        dir: PathBuf,
        /// Output file; default `<name>.zip` beside the folder.
        #[arg(short, long)]
        out: Option<PathBuf>,
    },
    /// Upload an app folder or zip and print the deploy report.
    Deploy {
        path: PathBuf,
        #[arg(long, env = "NR_URL", default_value = "http://127.0.0.1:3000")]
        url: String,
        /// Bearer token, when the platform requires one.
        #[arg(long, env = "NR_TOKEN")]
        token: Option<String>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Up { config, examples } => up(config, examples).await,
        Command::App(AppCommand::New { name, dir }) => scaffold::new_app(&name, &dir),
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
            println!("{} ({} bytes)", out.display(), bytes.len());
            Ok(())
        }
        Command::App(AppCommand::Deploy { path, url, token }) => {
            let report = deploy_path(&url, &path, token.as_deref()).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
    }
}

async fn up(config: PlatformConfig, examples: Option<PathBuf>) -> anyhow::Result<()> {
    nr_telemetry::init();
    let stop = nr_telemetry::shutdown_on_signal();
    let platform = Platform::start(config).await?;
    let url = platform.url();
    let token = platform.stop_token();
    tokio::spawn(async move {
        stop.cancelled().await;
        token.cancel();
    });
    let mut deployed = Vec::new();
    if let Some(dir) = examples {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("manifest.json").is_file())
            .collect();
        entries.sort();
        for app in entries {
            match deploy_path(&url, &app, None).await {
                Ok(report) => deployed.push(format!(
                    "{} {}",
                    report["app_name"].as_str().unwrap_or_default(),
                    report["version"].as_str().unwrap_or_default()
                )),
                Err(e) => {
                    tracing::error!(app = %app.display(), error = %e, "example app not deployed")
                }
            }
        }
    }
    println!();
    println!("NodeRouter is up at {url}");
    for app in &deployed {
        println!("  deployed {app}");
    }
    println!(
        "  try: curl -s -X POST {url}/api/sync/hello -H 'Content-Type: application/json' -d '{{}}'"
    );
    println!("Stop with Ctrl-C.");
    platform.wait().await
}

/// Uploads a folder (packed first) or a zip to `POST /admin/api/apps/deploy`.
async fn deploy_path(
    url: &str,
    path: &Path,
    token: Option<&str>,
) -> anyhow::Result<serde_json::Value> {
    let (file_name, bytes) = if path.is_dir() {
        (
            format!("{}.zip", bundle::dir_name(path)?),
            bundle::pack_dir(path)?,
        )
    } else {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .context("no file name")?;
        (
            name,
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
        )
    };
    let part = reqwest::multipart::Part::bytes(bytes).file_name(file_name);
    let form = reqwest::multipart::Form::new().part("file", part);
    let mut req = reqwest::Client::new()
        .post(format!(
            "{}/admin/api/apps/deploy",
            url.trim_end_matches('/')
        ))
        .multipart(form);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = res.status();
    let body: serde_json::Value = res.json().await.unwrap_or_default();
    if !status.is_success() {
        anyhow::bail!(
            "deploy refused ({status}): {}",
            serde_json::to_string_pretty(&body).unwrap_or_default()
        );
    }
    Ok(body)
}

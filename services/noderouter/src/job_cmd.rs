//! `noderouter job requeue|logs`: operating async jobs through a running platform's API
//! (`/api/async/...`). Re-queueing another user's job needs `jobs:requeue_all`.

use clap::Subcommand;
use serde_json::{json, Value};

use crate::author::Remote;
use crate::RemoteArgs;

#[derive(Subcommand)]
pub enum JobCommand {
    /// Put a failed job back in the queue, or with --app every failed job of an app
    /// (your own; everyone's with `jobs:requeue_all`).
    Requeue {
        /// The job's id; leave out with --app.
        #[arg(required_unless_present = "app", conflicts_with = "app")]
        id: Option<String>,
        /// Re-queue every failed job of this app.
        #[arg(long)]
        app: Option<String>,
        /// Runs each job gets from now on (1-100); the app's `job_retry.attempts` when absent.
        #[arg(long)]
        attempts: Option<i32>,
        #[command(flatten)]
        remote: RemoteArgs,
        /// Print the answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print what a job's last attempt printed or logged.
    Logs {
        id: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

pub async fn run(cmd: JobCommand) -> anyhow::Result<()> {
    match cmd {
        JobCommand::Requeue {
            id,
            app,
            attempts,
            remote,
            json,
        } => requeue(&remote.remote(), id, app, attempts, json).await,
        JobCommand::Logs { id, remote } => logs(&remote.remote(), &id).await,
    }
}

async fn requeue(
    remote: &Remote,
    id: Option<String>,
    app: Option<String>,
    attempts: Option<i32>,
    json: bool,
) -> anyhow::Result<()> {
    let mut body = json!({});
    if let Some(a) = attempts {
        body["attempts"] = json!(a);
    }
    let path = match (&id, &app) {
        (Some(id), _) => format!("/api/async/jobs/{id}/requeue"),
        (None, Some(app)) => {
            body["app_name"] = json!(app);
            "/api/async/requeue".to_owned()
        }
        (None, None) => anyhow::bail!("job requeue: give a job id or --app <app>"),
    };
    let req = reqwest::Client::new()
        .post(remote.endpoint(&path))
        .json(&body);
    let (status, body) = remote.send(req).await?;
    if !status.is_success() {
        return Err(crate::author::refusal("job requeue", status, &body));
    }
    if json {
        outln!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    let ids: Vec<&str> = body["job_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    outln!("re-queued {} job(s)", ids.len());
    for id in ids {
        outln!("{id}");
    }
    Ok(())
}

async fn logs(remote: &Remote, id: &str) -> anyhow::Result<()> {
    let req = reqwest::Client::new().get(remote.endpoint(&format!("/api/async/jobs/{id}/logs")));
    let (status, body) = remote.send(req).await?;
    if !status.is_success() {
        return Err(crate::author::refusal("job logs", status, &body));
    }
    outln!("{}", body["logs"].as_str().unwrap_or_default());
    Ok(())
}

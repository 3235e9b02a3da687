//! `noderouter schedule list|pause|resume`: the apps' manifest schedules, through the
//! admin API of a running platform (`/admin/api/schedules`; listing needs `apps:read`,
//! pausing and resuming `apps:deploy`).

use clap::Subcommand;
use serde_json::{json, Value};

use crate::author::Remote;
use crate::RemoteArgs;

#[derive(Subcommand)]
pub enum ScheduleCommand {
    /// List schedules with their state, next five fire times and latest ticks.
    List {
        /// Only this app's schedules.
        app: Option<String>,
        #[command(flatten)]
        remote: RemoteArgs,
        /// Print the answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop a schedule: its ticks are recorded as paused until it is resumed.
    Pause {
        app: String,
        name: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Run a paused schedule again from its next tick.
    Resume {
        app: String,
        name: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

pub async fn run(cmd: ScheduleCommand) -> anyhow::Result<()> {
    match cmd {
        ScheduleCommand::List { app, remote, json } => list(&remote.remote(), app, json).await,
        ScheduleCommand::Pause { app, name, remote } => {
            set(&remote.remote(), &app, &name, "pause").await
        }
        ScheduleCommand::Resume { app, name, remote } => {
            set(&remote.remote(), &app, &name, "resume").await
        }
    }
}

async fn list(remote: &Remote, app: Option<String>, as_json: bool) -> anyhow::Result<()> {
    let mut req = reqwest::Client::new().get(remote.endpoint("/admin/api/schedules"));
    if let Some(app) = &app {
        req = req.query(&[("app", app)]);
    }
    let (status, body) = remote.send(req).await?;
    if !status.is_success() {
        return Err(crate::author::refusal("schedule list", status, &body));
    }
    if as_json {
        outln!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    for sc in body.as_array().into_iter().flatten() {
        outln!(
            "{}/{}  \"{}\" {}  overlap={} catch_up={}{}",
            s(&sc["app"]),
            s(&sc["name"]),
            s(&sc["cron"]),
            s(&sc["timezone"]),
            s(&sc["overlap"]),
            s(&sc["catch_up"]),
            if sc["paused"] == json!(true) {
                "  PAUSED"
            } else {
                ""
            }
        );
        for t in sc["next_local"].as_array().into_iter().flatten() {
            outln!("    next  {}", s(t));
        }
        for t in sc["recent"].as_array().into_iter().flatten().take(5) {
            outln!(
                "    tick  {}  {}{}",
                s(&t["tick"]),
                s(&t["status"]),
                t["reason"]
                    .as_str()
                    .map(|r| format!("  ({r})"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(())
}

async fn set(remote: &Remote, app: &str, name: &str, verb: &str) -> anyhow::Result<()> {
    let req = reqwest::Client::new()
        .post(remote.endpoint(&format!("/admin/api/schedules/{app}/{name}/{verb}")))
        .json(&json!({}));
    let (status, body) = remote.send(req).await?;
    if !status.is_success() {
        return Err(crate::author::refusal(
            &format!("schedule {verb}"),
            status,
            &body,
        ));
    }
    if body["changed"] == json!(false) {
        let state = if verb == "pause" { "paused" } else { "running" };
        outln!("schedule {name} of {app} was already {state}: nothing changed");
    } else {
        outln!("{verb}d schedule {name} of {app}");
    }
    Ok(())
}

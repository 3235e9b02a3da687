//! `noderouter app env set|unset|list`: an app's variables and secrets, through the
//! admin API of a running platform (`/admin/api/apps/<app>/env`, permission `apps:env`).

use std::io::Read as _;

use clap::Subcommand;
use serde_json::{json, Value};

use crate::author::Remote;
use crate::RemoteArgs;

#[derive(Subcommand)]
pub enum EnvCommand {
    /// Set a variable (or, with --secret, a secret) and reload the app. Without VALUE,
    /// the value is read from standard input (asked for at a terminal, not shown for a
    /// secret), so a secret stays out of the shell's history and the process list.
    Set {
        app: String,
        /// `^[A-Z_][A-Z0-9_]{0,127}$`, not one the platform sets itself.
        name: String,
        value: Option<String>,
        /// Seal the value at rest; it is never shown again.
        #[arg(long)]
        secret: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Remove a variable or secret and reload the app.
    Unset {
        app: String,
        name: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// List an app's variables with their values, and its secrets by name only.
    List {
        app: String,
        #[command(flatten)]
        remote: RemoteArgs,
        /// Print the answer as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(cmd: EnvCommand) -> anyhow::Result<()> {
    match cmd {
        EnvCommand::Set {
            app,
            name,
            value,
            secret,
            remote,
        } => {
            let value = match value {
                Some(v) => v,
                None => read_value(&app, &name, secret)?,
            };
            set(&remote.remote(), &app, &name, &value, secret).await
        }
        EnvCommand::Unset { app, name, remote } => unset(&remote.remote(), &app, &name).await,
        EnvCommand::List { app, remote, json } => list(&remote.remote(), &app, json).await,
    }
}

/// The value from standard input: one line typed at a terminal (not echoed for a
/// secret), or everything piped in, without its trailing newline. Nothing at all is
/// refused: an empty file or `</dev/null` is a mistake far more often than an intended
/// empty value, which is given as `''`.
fn read_value(app: &str, name: &str, secret: bool) -> anyhow::Result<String> {
    use std::io::IsTerminal as _;
    let stdin = std::io::stdin();
    let mut v = String::new();
    if stdin.is_terminal() {
        eprint!(
            "{} {name} of {app}{}: ",
            if secret { "secret" } else { "value of" },
            if secret { " (not shown)" } else { "" }
        );
        let _quiet = secret.then(Quiet::new).flatten();
        stdin.read_line(&mut v)?;
        if secret {
            eprintln!();
        }
    } else {
        stdin.lock().read_to_string(&mut v)?;
        if v.is_empty() {
            let flag = if secret { " --secret" } else { "" };
            anyhow::bail!(
                "no value for {name}: standard input was empty. Give the value as an argument, pipe it in (`printf %s \"$VALUE\" | noderouter app env set {app} {name}{flag}`), or pass '' to set it empty"
            );
        }
    }
    // A trailing newline from `echo`, a file or the Enter key is not part of the value.
    Ok(v.strip_suffix('\n')
        .map(|s| s.strip_suffix('\r').unwrap_or(s).to_owned())
        .unwrap_or(v))
}

/// The terminal's echo, off while it lives (a secret being typed).
struct Quiet(nix::sys::termios::Termios);

impl Quiet {
    fn new() -> Option<Quiet> {
        use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
        let fd = std::io::stdin();
        let before = tcgetattr(&fd).ok()?;
        let mut quiet = before.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        tcsetattr(&fd, SetArg::TCSANOW, &quiet).ok()?;
        Some(Quiet(before))
    }
}

impl Drop for Quiet {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(
            std::io::stdin(),
            nix::sys::termios::SetArg::TCSANOW,
            &self.0,
        );
    }
}

async fn set(
    remote: &Remote,
    app: &str,
    name: &str,
    value: &str,
    secret: bool,
) -> anyhow::Result<()> {
    let req = reqwest::Client::new()
        .put(remote.endpoint(&format!("/admin/api/apps/{app}/env")))
        .json(&json!({ "name": name, "value": value, "secret": secret }));
    let (status, body) = remote.send(req).await?;
    if !status.is_success() {
        return Err(crate::author::refusal("env set", status, &body));
    }
    outln!(
        "set {} {name} of {app}; the app reloads with it",
        if secret { "secret" } else { "variable" }
    );
    reloaded(&body)
}

/// The runners' reloads after a change: each failure printed, and an error (exit 1) when
/// there was one: the change is saved, but the app serves on with the previous values.
fn reloaded(body: &Value) -> anyhow::Result<()> {
    let warnings: Vec<&str> = body["warnings"]
        .as_array()
        .map(|w| w.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for w in &warnings {
        outln!("warning: {w}");
    }
    if warnings.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("the change is saved, but the app did not reload with it everywhere (above): fix the app or the variable")
    }
}

async fn unset(remote: &Remote, app: &str, name: &str) -> anyhow::Result<()> {
    let req = reqwest::Client::new()
        .delete(remote.endpoint(&format!("/admin/api/apps/{app}/env/{name}")));
    let (status, body) = remote.send(req).await?;
    if !status.is_success() {
        return Err(crate::author::refusal("env unset", status, &body));
    }
    outln!("removed {name} of {app}; the app reloads without it");
    reloaded(&body)
}

async fn list(remote: &Remote, app: &str, json: bool) -> anyhow::Result<()> {
    let req = reqwest::Client::new().get(remote.endpoint(&format!("/admin/api/apps/{app}/env")));
    let (status, body) = remote.send(req).await?;
    if !status.is_success() {
        return Err(crate::author::refusal("env list", status, &body));
    }
    if json {
        outln!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    for e in body["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().unwrap_or_default();
        match (&e["value"], e["secret"].as_bool()) {
            (_, Some(true)) => outln!("{name}  (secret)"),
            (Value::String(v), _) => outln!("{name}={v}"),
            _ => outln!("{name}"),
        }
    }
    Ok(())
}

//! `noderouter up` as an operator runs it: a child process with its private NATS, its
//! data directory and its banner.

use std::time::Duration;

/// `noderouter up` without `NR_NATS_URL`, as `scripts/up` runs it, with its data under
/// `dir/data` and its bundles and runner directory in `dir`.
pub fn up_command(
    db: &nr_testkit::TestDb,
    dir: &std::path::Path,
    nats_port: u16,
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_noderouter"));
    cmd.args([
        "up",
        "--http-addr",
        "127.0.0.1:0",
        "--database-url",
        &db.url,
    ])
    .arg("--data-dir")
    .arg(dir.join("data"))
    .args(["--embedded-nats-port", &nats_port.to_string()])
    .args(["--python", &nr_testkit::python()])
    .env_remove("NR_NATS_URL")
    .env_remove("RUNNER_SECRET")
    .env_remove("NR_OBJECT_STORE_URL")
    .env_remove("NR_RUNNER_DIR")
    .env_remove("NR_SECRETS_KEY")
    .env("RUST_LOG", "warn")
    .stdout(std::process::Stdio::piped())
    .kill_on_drop(true);
    cmd
}

/// `noderouter up` (see [`up_command`]) with bundles in `dir/objects` and the runner
/// directory `dir/runner`; returns once it printed its banner, with what it printed.
pub async fn noderouter_up(
    db: &nr_testkit::TestDb,
    dir: &std::path::Path,
    nats_port: u16,
) -> (tokio::process::Child, String) {
    let mut cmd = up_command(db, dir, nats_port);
    cmd.arg("--object-store-url")
        .arg(dir.join("objects"))
        .arg("--runner-dir")
        .arg(dir.join("runner"));
    up_and_running(cmd).await
}

/// Starts `cmd` and returns once it printed its banner, with what it printed.
pub async fn up_and_running(mut cmd: tokio::process::Command) -> (tokio::process::Child, String) {
    use tokio::io::AsyncBufReadExt as _;
    let mut child = cmd.spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    let up = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            printed.push_str(&line);
            printed.push('\n');
            if line.starts_with("Stop with") {
                return true;
            }
        }
        false
    })
    .await;
    assert!(
        matches!(up, Ok(true)),
        "the platform did not come up: {printed}"
    );
    // Keep reading so the platform never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, printed)
}

/// The platform's address, as its banner gives it.
pub fn base_url(printed: &str) -> String {
    printed
        .lines()
        .find_map(|l| l.strip_prefix("NodeRouter is up at "))
        .unwrap()
        .trim()
        .to_owned()
}

/// Stops `noderouter up` as Ctrl-C would, and waits for it.
pub async fn stop(mut child: tokio::process::Child) {
    let pid = child.id().unwrap().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    let ended = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
    assert!(ended.is_ok(), "noderouter up did not stop on SIGTERM");
}

//! The check every service that signs or verifies runner requests makes at start: no
//! `RUNNER_SECRET`, no start (unsigned runner requests would let anyone who may publish
//! on the bus call apps, or answer for them), unless told it is development.

use std::process::Command;

/// Runs the service binary `bin` with `args` and without `RUNNER_SECRET`; whether it
/// exited successfully, and what it printed.
fn run(bin: &str, args: &[&str], insecure_env: bool) -> (bool, String) {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env_remove("RUNNER_SECRET")
        .env_remove("NR_INSECURE_DEV")
        // Nothing listens here: a start that gets past the key check fails on NATS.
        .env("NR_NATS_URL", "nats://127.0.0.1:1")
        .env("NR_HTTP_ADDR", "127.0.0.1:0")
        .env("NR_HEALTH_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "error");
    if insecure_env {
        cmd.env("NR_INSECURE_DEV", "1");
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Asserts that `bin` refuses to start without `RUNNER_SECRET`, naming the variable and
/// `--insecure-dev`, and that `--insecure-dev` or `NR_INSECURE_DEV=1` gets it past the
/// check (to fail on the unreachable NATS instead).
pub fn refuses_to_start_without_runner_secret(bin: &str) {
    let (ok, text) = run(bin, &[], false);
    assert!(!ok);
    assert!(text.contains("RUNNER_SECRET is not set"), "{text}");
    assert!(text.contains("--insecure-dev"), "{text}");
    for (args, env) in [(&["--insecure-dev"][..], false), (&[][..], true)] {
        let (ok, text) = run(bin, args, env);
        assert!(!ok, "no NATS to reach");
        assert!(!text.contains("RUNNER_SECRET is not set"), "{text}");
        assert!(text.contains("NATS"), "{text}");
    }
}

//! `nr-runner` refuses to start without `RUNNER_SECRET`: unsigned runner requests would
//! let anyone who may publish on the bus call apps (or answer for them).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

fn run(args: &[&str], insecure_env: bool) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nr-runner"));
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
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn without_a_runner_secret_it_refuses_to_start_unless_told_it_is_development() {
    let (ok, text) = run(&[], false);
    assert!(!ok);
    assert!(text.contains("RUNNER_SECRET is not set"), "{text}");
    assert!(text.contains("--insecure-dev"), "{text}");
    for (args, env) in [(&["--insecure-dev"][..], false), (&[][..], true)] {
        let (ok, text) = run(args, env);
        assert!(!ok, "no NATS to reach");
        assert!(!text.contains("RUNNER_SECRET is not set"), "{text}");
        assert!(text.contains("NATS"), "{text}");
    }
}

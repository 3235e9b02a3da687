//! The command-line tool's own output. `--help` of every command never prints a
//! credential it finds in the environment: help output ends up in terminal scrollback, CI
//! logs and tickets, and the README has the admin token exported as `NR_TOKEN`. A reader
//! that goes away early (`| head -1`) ends the tool quietly.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[test]
fn help_never_prints_a_credential_from_the_environment() {
    let commands: [&[&str]; 14] = [
        &["up"],
        &["app", "deploy"],
        &["app", "versions"],
        &["app", "rollback"],
        &["app", "delete"],
        &["app", "lint"],
        &["app", "env", "set"],
        &["app", "env", "unset"],
        &["app", "env", "list"],
        &["job", "logs"],
        &["job", "requeue"],
        &["schedule", "list"],
        &["schedule", "pause"],
        &["nats-config"],
    ];
    for args in commands {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_noderouter"))
            .args(args)
            .arg("--help")
            .env("NR_TOKEN", "nrt_CANARY_TOKEN")
            .env(
                "DATABASE_URL",
                "postgres://app:CANARY_DB@db.internal/noderouter",
            )
            .env("NR_NATS_URL", "nats://svc:CANARY_NATS@nats.internal:4222")
            .env("NR_JWT_SECRET", "CANARY_JWT_0123456789")
            .env("NR_SECRETS_KEY", "CANARY_SECRETS_KEY")
            .env("RUNNER_SECRET", "CANARY_RUNNER")
            .env("NR_ADMIN_PASSWORD", "CANARY_ADMIN")
            .env("NR_NATS_PASSWORD", "CANARY_NATS_PASSWORD")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{args:?} --help failed: {text}");
        assert!(text.contains("Usage:"), "{args:?}: {text}");
        assert!(
            !text.contains("CANARY"),
            "{args:?} --help printed a credential:\n{text}"
        );
    }
}

/// `noderouter … | head -1`: the reader closes the pipe before the tool writes. The tool
/// ends quietly with the status of a process ended by SIGPIPE, never with a panic.
#[test]
fn a_closed_pipe_ends_the_tool_quietly() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_noderouter"))
        .args(["nats-config", "--env-passwords"])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "stderr: {stderr}");
    assert!(stderr.is_empty(), "a closed pipe is not an error: {stderr}");
}

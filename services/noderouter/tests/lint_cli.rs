//! `noderouter app lint` says what deploy would: an app whose module code reads a
//! variable at import is checked with the value the author gives (`--env`; the
//! platform's variables are not on the author's machine, and lint refused an app deploy
//! took), and a bundle over the platform's limit is refused as deploy refuses it (lint
//! passed a 51 MiB zip deploy answered 413).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

fn lint(args: &[&str]) -> (bool, String) {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_noderouter"))
        .arg("app")
        .arg("lint")
        .args(args)
        .env("NR_PYTHON", nr_testkit::python())
        .env_remove("DATABASE_URL")
        .env_remove("NR_MAX_BUNDLE_BYTES")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text)
}

#[test]
fn lint_takes_the_apps_variables_and_the_bundle_limit() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("keyed");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("manifest.json"),
        nr_testkit::manifest("keyed", "1.0.0", serde_json::json!({})),
    )
    .unwrap();
    std::fs::write(
        app.join("main.py"),
        "import os\nAPI_KEY = os.environ[\"API_KEY\"]\n\ndef execute(data, conn=None):\n    return {}\n",
    )
    .unwrap();
    let path = app.to_str().unwrap();

    let (ok, text) = lint(&[path]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("KeyError") && text.contains("API_KEY"),
        "{text}"
    );
    let (ok, text) = lint(&[path, "--env", "API_KEY=abc123"]);
    assert!(ok, "{text}");
    assert!(text.contains("keyed 1.0.0: passes every check"), "{text}");
    let (ok, text) = lint(&[path, "--env", "no-equals-sign"]);
    assert!(!ok && text.contains("give NAME=value"), "{text}");

    let (ok, text) = lint(&[path, "--env", "API_KEY=x", "--max-bundle-bytes", "100"]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("error[bundle.size]") && text.contains("NR_MAX_BUNDLE_BYTES"),
        "{text}"
    );
}

#[test]
fn a_refused_bundle_shows_its_warnings_with_its_errors() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("typo");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("manifest.json"),
        nr_testkit::manifest("typo", "1.0.0", serde_json::json!({"timout_s": 5})),
    )
    .unwrap();
    std::fs::write(app.join("main.py"), "import missing_mod\n").unwrap();
    let (ok, text) = lint(&[app.to_str().unwrap()]);
    assert!(!ok, "{text}");
    assert!(text.contains("error[main.import]"), "{text}");
    assert!(
        text.contains("warning[manifest.unknown_field]") && text.contains("timout_s"),
        "{text}"
    );
}

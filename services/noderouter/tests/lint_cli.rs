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

/// The starter of `noderouter app new` imports psycopg2, which every runner's Python
/// has. Linted with another Python (the default `python3`, say) it was refused with
/// "No module named 'psycopg2'" although deploy took it; now lint says the interpreter is
/// not the platform's and how to name it, and with the runners' Python the starter passes.
#[test]
fn lint_needs_the_runners_python_for_the_import_check() {
    let dir = tempfile::tempdir().unwrap();
    let new = std::process::Command::new(env!("CARGO_BIN_EXE_noderouter"))
        .args(["app", "new", "tasks_board", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(new.status.success(), "{new:?}");
    let app = dir.path().join("tasks_board");
    let path = app.to_str().unwrap();
    let (ok, text) = lint(&[path]);
    assert!(ok, "{text}");

    // A Python without the runners' packages: a bare virtual environment.
    let bare = dir.path().join("bare");
    let made = std::process::Command::new(nr_testkit::python())
        .args(["-m", "venv", "--without-pip"])
        .arg(&bare)
        .status()
        .unwrap();
    assert!(made.success());
    let other = bare.join("bin/python");
    let (ok, text) = lint(&[path, "--python", other.to_str().unwrap()]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("has no psycopg2")
            && text.contains("--python or NR_PYTHON")
            && !text.contains("refused"),
        "{text}"
    );
    // The other checks still run: a manifest error is reported with it.
    std::fs::write(
        app.join("manifest.json"),
        nr_testkit::manifest(
            "tasks_board",
            "1.0.0",
            serde_json::json!({"timeout_s": "5"}),
        ),
    )
    .unwrap();
    let (ok, text) = lint(&[path, "--python", other.to_str().unwrap()]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("error[manifest.timeout_s]") && text.contains("import check did not run"),
        "{text}"
    );
    std::fs::write(
        app.join("manifest.json"),
        nr_testkit::manifest("tasks_board", "1.0.0", serde_json::json!({})),
    )
    .unwrap();
    // Without the import check, any Python does.
    let (ok, text) = lint(&[path, "--python", other.to_str().unwrap(), "--no-import"]);
    assert!(ok, "{text}");
}

use super::*;
use std::time::Duration;

const MANIFEST: &str = r#"{"app_name":"notes","version":"1.2.0","api_version":"1.0.0"}"#;

fn checker(timeout_s: u64) -> Checker {
    Checker {
        limits: Limits::default(),
        contain: Default::default(),
        import: Some(ImportCheck {
            env: Vec::new(),
            python: nr_testkit::python(),
            database_url: None,
            timeout: Duration::from_secs(timeout_s),
            contain: Default::default(),
            secrets: None,
        }),
        work_dir: None,
    }
}

async fn run(files: &[(&str, &str)]) -> Result<Inspected, Refused> {
    run_with(&checker(20), "notes.zip", files).await
}

async fn run_with(
    c: &Checker,
    file_name: &str,
    files: &[(&str, &str)],
) -> Result<Inspected, Refused> {
    let bundle = c
        .inspect(nr_testkit::zip_files(files).into(), file_name)
        .await?;
    c.import(&bundle).await?;
    Ok(bundle)
}

fn main_py(body: &str) -> Vec<(&'static str, String)> {
    vec![
        ("manifest.json", MANIFEST.to_owned()),
        ("main.py", body.to_owned()),
    ]
}

async fn run_main(body: &str) -> Result<Inspected, Refused> {
    let files = main_py(body);
    let refs: Vec<(&str, &str)> = files.iter().map(|(a, b)| (*a, b.as_str())).collect();
    run(&refs).await
}

#[tokio::test]
async fn a_guide_bundle_passes_every_check() {
    let b = run_main("import os\n\ndef execute(data, conn=None):\n    return {'ok': True}\n")
        .await
        .unwrap();
    assert_eq!(
        (b.app_name.as_str(), b.version.as_str()),
        ("notes", "1.2.0")
    );
    assert!(b.warnings.is_empty(), "{:?}", b.warnings);
    assert!(b.app_dir().join("main.py").is_file());
}

#[tokio::test]
async fn the_scratch_directory_goes_away_with_the_bundle() {
    let b = run_main("def execute(data):\n    return {}\n")
        .await
        .unwrap();
    let dir = b.app_dir();
    assert!(dir.exists());
    drop(b);
    assert!(!dir.exists());
}

#[tokio::test]
async fn vendored_libs_and_the_app_sdk_import_as_in_the_runner() {
    let files = [
        ("manifest.json", MANIFEST),
        ("libs/vendored_pkg/__init__.py", "VALUE = 41\n"),
        ("helper.py", "def plus_one(x):\n    return x + 1\n"),
        (
            "main.py",
            "import sys, os\nsys.path.insert(0, os.path.join(os.path.dirname(__file__), 'libs'))\nimport vendored_pkg, helper\nfrom noderouter import progress\nassert helper.plus_one(vendored_pkg.VALUE) == 42\nopen('manifest.json').read()\n\ndef execute(data, conn=None):\n    return {}\n",
        ),
    ];
    run(&files).await.unwrap();
}

#[tokio::test]
async fn a_syntax_error_is_refused_with_its_line() {
    let r = run_main("def execute(data):\n    return {\n\nx = = 1\n")
        .await
        .unwrap_err();
    assert_eq!((r.status, r.details[0].rule.as_str()), (422, "main.syntax"));
    assert_eq!(r.details[0].file.as_deref(), Some("main.py"));
    assert!(r.details[0].line.is_some());
    assert!(
        r.error.contains("main.py does not compile: SyntaxError"),
        "{}",
        r.error
    );
}

#[tokio::test]
async fn an_import_error_is_refused_with_the_traceback() {
    let r =
        run_main("import os\nimport no_such_module_here\n\ndef execute(data):\n    return {}\n")
            .await
            .unwrap_err();
    assert_eq!((r.status, r.details[0].rule.as_str()), (422, "main.import"));
    assert!(r.error.contains("ModuleNotFoundError"), "{}", r.error);
    assert_eq!(r.details[0].line, Some(2));
    assert!(
        r.details[0]
            .message
            .contains("Traceback (most recent call last)"),
        "{}",
        r.details[0].message
    );
    // The author's own file names, never the server's directories; lines kept.
    let all: String = r.details.iter().map(|d| d.message.as_str()).collect();
    assert!(all.contains("File \"main.py\", line 2"), "{all}");
    assert!(!all.contains("/tmp") && !all.contains("nr-deploy"), "{all}");
    assert!(r.details[0].message.lines().count() > 3, "{all}");
}

#[tokio::test]
async fn a_version_suffixed_zip_name_deploys() {
    let files = [
        (
            "manifest.json",
            r#"{"app_name":"notes","version":"1.2.0","api_version":"1.0.0"}"#,
        ),
        ("main.py", "def execute(data):\n    return {}\n"),
    ];
    run_with(&checker(20), "notes_1.2.0.zip", &files)
        .await
        .unwrap();
    let r = run_with(&checker(20), "notes_1.2.1.zip", &files)
        .await
        .unwrap_err();
    assert!(
        r.error.contains("does not match the bundle name"),
        "{}",
        r.error
    );
}

#[tokio::test]
async fn module_level_code_runs_and_its_failure_is_refused() {
    let r = run_main("print('hello from import')\n\ndef _migrate():\n    raise RuntimeError('cannot migrate: table locked')\n\n_migrate()\n\ndef execute(data):\n    return {}\n").await.unwrap_err();
    assert!(
        r.error
            .contains("RuntimeError: cannot migrate: table locked"),
        "{}",
        r.error
    );
    assert_eq!(r.details[0].line, Some(4));
    assert!(
        r.details
            .iter()
            .any(|d| d.rule == "main.output" && d.message.contains("hello from import")),
        "{:?}",
        r.details
    );
    let r = run_main("import sys\nsys.exit(3)\n").await.unwrap_err();
    assert!(r.error.contains("SystemExit"), "{}", r.error);
    let r = run_main("import os\nos._exit(1)\n").await.unwrap_err();
    assert!(r.error.contains("without a result"), "{}", r.error);
}

#[tokio::test]
async fn execute_must_exist_be_callable_and_accept_data() {
    let r = run_main("def run(data):\n    return {}\n")
        .await
        .unwrap_err();
    assert_eq!(r.details[0].rule, "main.execute");
    assert!(r.error.contains("does not define execute"), "{}", r.error);
    let r = run_main("execute = {'not': 'callable'}\n")
        .await
        .unwrap_err();
    assert!(
        r.error
            .contains("is not a function but an object of type dict"),
        "{}",
        r.error
    );
    let r = run_main("\n\ndef execute():\n    return {}\n")
        .await
        .unwrap_err();
    assert!(
        r.error.contains("cannot be called as execute(data)"),
        "{}",
        r.error
    );
    assert_eq!(r.details[0].line, Some(3));
    // Any signature that takes data is fine: *args, **kwargs, async, a callable object.
    for ok in [
        "def execute(*args, **kw):\n    return {}\n",
        "async def execute(data, conn=None):\n    return {}\n",
        "class E:\n    def __call__(self, data):\n        return {}\nexecute = E()\n",
    ] {
        run_main(ok).await.unwrap();
    }
}

#[tokio::test]
async fn an_import_over_the_time_limit_is_refused() {
    let files = main_py(
        "import sys, time\nprint('connecting to the warehouse')\nsys.stderr.write('still waiting\\n')\ntime.sleep(30)\n\ndef execute(data):\n    return {}\n",
    );
    let refs: Vec<(&str, &str)> = files.iter().map(|(a, b)| (*a, b.as_str())).collect();
    let started = std::time::Instant::now();
    let r = run_with(&checker(1), "notes.zip", &refs).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        (r.status, r.details[0].rule.as_str()),
        (422, "main.timeout")
    );
    assert!(r.error.contains("longer than 1s"), "{}", r.error);
    // What it printed before it was stopped, in order (before: nothing of it).
    assert!(
        r.error.contains(
            "what it printed before it was stopped:\nconnecting to the warehouse\nstill waiting"
        ),
        "{}",
        r.error
    );
}

#[tokio::test]
async fn the_wrapping_folder_must_be_named_like_the_app() {
    let c = checker(20);
    let ok = run_with(
        &c,
        "notes.zip",
        &[
            ("notes/manifest.json", MANIFEST),
            ("notes/main.py", "def execute(d):\n    return {}\n"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(ok.warnings[0].rule, "bundle.layout");
    assert!(ok.warnings[0].message.contains("wrapping folder \"notes\""));
    let r = run_with(
        &c,
        "notes.zip",
        &[
            ("notes-v2/manifest.json", MANIFEST),
            ("notes-v2/main.py", ""),
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(
        (r.status, r.details[0].rule.as_str()),
        (422, "bundle.layout")
    );
    assert!(
        r.error
            .contains("\"notes-v2\", which is not named like the app \"notes\""),
        "{}",
        r.error
    );
}

#[tokio::test]
async fn main_py_is_required() {
    let r = run(&[("manifest.json", MANIFEST), ("index.html", "<div></div>")])
        .await
        .unwrap_err();
    assert_eq!(
        (r.status, r.details[0].rule.as_str()),
        (422, "bundle.main_py")
    );
}

#[tokio::test]
async fn frontend_and_manifest_warnings_come_back_together() {
    let files = [
        (
            "manifest.json",
            r#"{"app_name":"notes","version":"1.2.0","extra":1}"#,
        ),
        ("main.py", "def execute(d):\n    return {}\n"),
        ("index.js", "var leak = 1;\n"),
        ("style.css", "body { color: #000; }\n"),
    ];
    let b = run(&files).await.unwrap();
    let rules: Vec<&str> = b.warnings.iter().map(|w| w.rule.as_str()).collect();
    for rule in [
        "manifest.api_version",
        "manifest.unknown_field",
        "frontend.iife",
        "frontend.global_selector",
        "frontend.hex_color",
    ] {
        assert!(rules.contains(&rule), "{rule} missing from {rules:?}");
    }
    assert_eq!(b.manifest["extra"], 1);
}

#[tokio::test]
async fn limits_above_the_platforms_are_reported_with_the_manifests_other_errors() {
    let manifest = r#"{"app_name":"notes","version":"1.2.0","api_version":"1.0.0",
        "job_concurrency": 0,
        "limits": {"max_procs": 1, "cpu_s": 700}}"#;
    let r = run(&[
        ("manifest.json", manifest),
        ("main.py", "def execute(data, conn=None):\n    return {}\n"),
    ])
    .await
    .err()
    .unwrap();
    assert_eq!(r.status, 422);
    let rules: Vec<&str> = r.details.iter().map(|f| f.rule.as_str()).collect();
    // max_procs is out of its own range; cpu_s is within it, above the platform's.
    assert_eq!(
        rules,
        [
            "manifest.job_concurrency",
            "manifest.limits",
            "manifest.limits"
        ],
        "{r:?}"
    );
    assert!(r.details[1].message.contains("max_procs"), "{r:?}");
    assert!(
        r.details[2].message.contains("limits.cpu_s is 700"),
        "{r:?}"
    );
    assert_eq!(r.details[2].line, Some(3), "{r:?}");
    assert!(r.error.contains("and 2 more problems"), "{}", r.error);
}

//! Refusals: bad and reserved names, oversized values, callers without `apps:env`; and
//! the CLI against the running platform.

use super::*;
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_names_reserved_names_and_oversized_values_are_refused_and_the_permission_is_required()
{
    let h = Harness::start().await;
    let app = app_name("envcheck");
    let refused = |field: &'static str| {
        move |(s, b): (StatusCode, Value)| {
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
            assert_eq!(b["details"]["field"], field, "{b}");
            assert!(
                b["error"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("{field}: ")),
                "{b}"
            );
        }
    };
    for name in [
        "lower",
        "1ABC",
        "A-B",
        "",
        "DATABASE_URL",
        "PATH",
        "HOME",
        "TMPDIR",
        "LANG",
        "PYTHONPATH",
        "PYTHONSTARTUP",
        "NR_APP_NAME",
        "NR_JWT_SECRET",
        "LD_PRELOAD",
        // libpq's own: they would change or redirect the app's database connection.
        "PGOPTIONS",
        "PGHOSTADDR",
        "PGSERVICE",
        "GLIBC_TUNABLES",
        "OPENSSL_CONF",
        "GCONV_PATH",
        "BASH_ENV",
        "USER",
    ] {
        refused("name")(set(&h, &app, json!({"name": name, "value": "x"})).await);
    }
    refused("name")(set(&h, &app, json!({"name": "A".repeat(129), "value": "x"})).await);
    refused("name")(set(&h, &app, json!({"value": "x"})).await);
    refused("name")(set(&h, &app, json!({"name": 5, "value": "x"})).await);
    refused("value")(
        set(
            &h,
            &app,
            json!({"name": "BIG", "value": "x".repeat(32 * 1024 + 1)}),
        )
        .await,
    );
    refused("value")(set(&h, &app, json!({"name": "NUL", "value": "a\u{0}b"})).await);
    refused("value")(set(&h, &app, json!({"name": "NONE"})).await);
    refused("secret")(
        set(
            &h,
            &app,
            json!({"name": "S", "value": "x", "secret": "yes"}),
        )
        .await,
    );
    refused("name")(
        send(
            h.http
                .delete(format!("{}/admin/api/apps/{app}/env/PYTHONPATH", h.url)),
        )
        .await,
    );
    let (s, b) = set(
        &h,
        &app,
        json!({"name": "OK_MAX", "value": "x".repeat(32 * 1024)}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(list(&h, &app).await["env"][0]["name"], "OK_MAX");
    // All of an app's variables together stay under what a process can start with
    // (before: 80 values of 32 KiB were taken, and the app could no longer start).
    let full = app_name("envfull");
    for i in 0..7 {
        let (s, b) = set(
            &h,
            &full,
            json!({"name": format!("FILL_{i}"), "value": "x".repeat(32 * 1024)}),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    let (s, b) = set(
        &h,
        &full,
        json!({"name": "ONE_TOO_MANY", "value": "x".repeat(32 * 1024)}),
    )
    .await;
    refused("value")((s, b.clone()));
    assert!(b["error"].as_str().unwrap().contains("262144"), "{b}");
    // Replacing a value counts it once.
    let (s, b) = set(
        &h,
        &full,
        json!({"name": "FILL_0", "value": "y".repeat(32 * 1024)}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");

    // A deployer and a reader without apps:env get 403, and change nothing.
    common::role(&h, "deployers", &["apps:deploy", "apps:read"]).await;
    let (s, b) = common::post(
        &h.http,
        format!("{}/admin/api/users", h.url),
        json!({"username": "dep", "password": "password-123", "roles": ["deployers"]}),
    )
    .await;
    assert!(s.is_success(), "{b}");
    let (s, b) = common::post(
        &reqwest::Client::new(),
        format!("{}/api/auth/login", h.url),
        json!({"username": "dep", "password": "password-123"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let dep = client_with_token(b["token"].as_str().unwrap());
    let url = format!("{}/admin/api/apps/{app}/env", h.url);
    for req in [
        dep.get(&url),
        dep.put(&url).json(&json!({"name": "X", "value": "y"})),
        dep.post(&url).json(&json!({"name": "X", "value": "y"})),
        dep.delete(format!("{url}/OK_MAX")),
    ] {
        let (s, b) = send(req).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        assert!(b["error"].as_str().unwrap().contains("apps:env"), "{b}");
    }
    let (s, _) = send(reqwest::Client::new().get(&url)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let env = list(&h, &app).await;
    assert_eq!(env["env"].as_array().unwrap().len(), 1, "{env}");
    // The catalogue offers the permission for a role.
    let (_, perms) = send(h.http.get(format!("{}/admin/api/permissions", h.url))).await;
    assert!(perms.to_string().contains("apps:env"), "{perms}");
}

async fn cli(h: &Harness, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    use tokio::io::AsyncWriteExt as _;
    let token = h.platform.as_ref().unwrap().admin_token().to_owned();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_noderouter"))
        .args(["app", "env"])
        .args(args)
        .args(["--url", &h.url, "--token", &token])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).await.unwrap();
    }
    drop(input);
    let out = child.wait_with_output().await.unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_sets_lists_and_unsets_against_the_running_platform() {
    let h = Harness::start().await;
    let app = deploy_env_app(&h, "envcli").await;
    let (ok, out, err) = cli(&h, &["set", &app, "GREETING", "hello"], None).await;
    assert!(ok, "{out}{err}");
    // A secret from standard input, so it is in no process's arguments.
    let (ok, out, err) = cli(
        &h,
        &["set", &app, "TOKEN", "--secret"],
        Some(&format!("{SECRET}\n")),
    )
    .await;
    assert!(ok, "{out}{err}");
    assert!(!out.contains(SECRET) && !err.contains(SECRET));

    let (ok, out, err) = cli(&h, &["list", &app], None).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("GREETING=hello"), "{out}");
    assert!(out.contains("TOKEN  (secret)"), "{out}");
    assert!(!out.contains(SECRET), "{out}");
    let env = wait_env(&h, &app, &["GREETING", "TOKEN"], |e| e["TOKEN"] == SECRET).await;
    assert_eq!(env["GREETING"], "hello");

    let (ok, out, err) = cli(&h, &["unset", &app, "GREETING"], None).await;
    assert!(ok, "{out}{err}");
    let (ok, out, _) = cli(&h, &["list", &app, "--json"], None).await;
    assert!(ok);
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed["env"].as_array().unwrap().len(), 1, "{listed}");
    wait_env(&h, &app, &["GREETING"], |e| e["GREETING"].is_null()).await;

    // Nothing on standard input is a mistake, not an empty value; '' is one.
    let (ok, out, err) = cli(&h, &["set", &app, "EMPTY"], Some("")).await;
    assert!(!ok, "{out}");
    assert!(err.contains("standard input was empty"), "{err}");
    // For a secret, the command it suggests sets a secret (not a readable variable).
    let (ok, out, err) = cli(&h, &["set", &app, "EMPTY_SECRET", "--secret"], Some("")).await;
    assert!(!ok, "{out}");
    assert!(
        err.contains(&format!(
            "| noderouter app env set {app} EMPTY_SECRET --secret`"
        )),
        "{err}"
    );
    let (ok, out, err) = cli(&h, &["set", &app, "EMPTY", ""], None).await;
    assert!(ok, "{out}{err}");
    let (_, out, _) = cli(&h, &["list", &app, "--json"], None).await;
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed["env"][0]["name"], "EMPTY", "{listed}");
    assert_eq!(listed["env"][0]["value"], "", "{listed}");

    // A refusal exits non-zero and says which field is wrong.
    let (ok, out, err) = cli(&h, &["set", &app, "NR_ADMIN_PASSWORD", "x"], None).await;
    assert!(!ok, "{out}");
    assert!(err.contains("422") && err.contains("name: "), "{err}");
}

/// Reads a variable and a secret at import, as the guide's module-level setup would.
const MODULE_READS: &str = r#"import os

CURRENCY = os.environ["SHOP_CURRENCY"]
KEY = os.environ["PAYMENT_API_KEY"]

def execute(data, conn=None):
    return {"currency": CURRENCY, "key": KEY}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_code_reads_its_own_variables_and_secrets_in_the_deploy_check_and_no_other_apps() {
    let h = Harness::start().await;
    let app = app_name("envmod");
    // Set before the app's first deploy, which needs them.
    let (s, b) = set(&h, &app, json!({"name": "SHOP_CURRENCY", "value": "EUR"})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = set(
        &h,
        &app,
        json!({"name": "PAYMENT_API_KEY", "value": SECRET, "secret": true}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    h.deploy_ok(
        &app,
        &[
            ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
            ("main.py", MODULE_READS),
        ],
    )
    .await;
    let (s, b) = h.sync(&app, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b, json!({"currency": "EUR", "key": SECRET}));

    // What the check shows of a failed import (its prints, the exception) and logs
    // carries no secret value; the running version keeps serving.
    let leaky = "import os\nprint('KEY=' + os.environ['PAYMENT_API_KEY'])\nraise RuntimeError('boom ' + os.environ['PAYMENT_API_KEY'])\n";
    let (s, b) = h
        .deploy(
            &format!("{app}.zip"),
            nr_testkit::zip_files(&[
                ("manifest.json", &manifest(&app, "1.0.1", json!({}))),
                ("main.py", leaky),
            ]),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let text = b.to_string();
    assert!(!text.contains(SECRET), "{b}");
    assert!(
        text.contains("KEY=[secret]") && text.contains("boom [secret]"),
        "{b}"
    );
    let (s, b) = h.sync(&app, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");

    // The same code in another app finds neither: its check ran with its own (none).
    let other = app_name("envmodx");
    let (s, b) = h
        .deploy(
            &format!("{other}.zip"),
            nr_testkit::zip_files(&[
                ("manifest.json", &manifest(&other, "1.0.0", json!({}))),
                ("main.py", MODULE_READS),
            ]),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let text = b.to_string();
    assert!(
        text.contains("KeyError") && text.contains("SHOP_CURRENCY"),
        "{b}"
    );
    assert!(!text.contains(SECRET) && !text.contains("EUR"), "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_check_without_the_secrets_key_runs_with_the_variables_and_names_the_secrets_it_lacked(
) {
    let h = Harness::start().await;
    let app = app_name("envnokey");
    for (name, value, secret) in [
        ("SHOP_CURRENCY", "EUR", false),
        ("PAYMENT_API_KEY", SECRET, true),
    ] {
        let (s, b) = set(
            &h,
            &app,
            json!({"name": name, "value": value, "secret": secret}),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    // A deploy service with the database but no NR_SECRETS_KEY.
    let contain = nr_infra::appid::ContainArgs {
        app_uid_base: common::app_uid_base(),
        app_uid_count: 1000,
        ..Default::default()
    };
    let checker = nr_deploy::Checker {
        limits: Default::default(),
        contain: contain.clone(),
        import: Some(nr_deploy::import::ImportCheck {
            env: Vec::new(),
            python: nr_testkit::python(),
            database_url: Some(h.db.url.clone()),
            timeout: Duration::from_secs(30),
            contain,
            secrets: None,
        }),
        work_dir: Some(h.dir.path().join("deploy")),
    };
    let file_name = format!("{app}.zip");
    let check = |main: &'static str| {
        let checker = checker.clone();
        let file_name = file_name.clone();
        let zip = nr_testkit::zip_files(&[
            ("manifest.json", &manifest(&app, "1.0.0", json!({}))),
            ("main.py", main),
        ]);
        async move {
            let inspected = checker.inspect(zip.into(), &file_name).await.unwrap();
            checker.import(&inspected).await
        }
    };
    let refused = check(MODULE_READS).await.unwrap_err();
    assert_eq!(refused.status, 422, "{refused:?}");
    let lacked = refused
        .details
        .iter()
        .find(|f| f.rule == "main.secrets")
        .unwrap_or_else(|| panic!("no finding names the missing secret: {refused:?}"));
    assert!(lacked.message.contains("PAYMENT_API_KEY"), "{lacked:?}");
    assert!(lacked.message.contains("NR_SECRETS_KEY"), "{lacked:?}");
    assert!(!format!("{refused:?}").contains(SECRET));
    // The variable was there: the KeyError is the secret's, and code reading only the
    // variable passes.
    assert!(
        format!("{refused:?}").contains("KeyError: 'PAYMENT_API_KEY'"),
        "{refused:?}"
    );
    check("import os\nCURRENCY = os.environ['SHOP_CURRENCY']\nassert CURRENCY == 'EUR'\n\ndef execute(data, conn=None):\n    return {}\n")
        .await
        .unwrap();
}

/// A refused change is answered while another change holds the variables' lock: it is
/// checked before the lock is taken, so it never holds it (nor makes the runners' reads
/// of the variables wait behind it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_change_is_answered_at_once_while_another_change_holds_the_lock() {
    let h = Harness::start().await;
    let app = app_name("envlockchk");
    let pool = sqlx::PgPool::connect(&h.db.url).await.unwrap();
    let mut held = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE noderouter_core.app_env IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *held)
        .await
        .unwrap();
    let within = |what: &'static str| {
        move |answer: Result<(StatusCode, Value), tokio::time::error::Elapsed>| {
            answer.unwrap_or_else(|_| panic!("{what}: the refusal waited for the lock"))
        }
    };
    let limit = Duration::from_secs(10);
    for (body, field) in [
        (json!({"name": "lower", "value": "x"}), "name"),
        (json!({"name": "PYTHONPATH", "value": "x"}), "name"),
        (
            json!({"name": "BIG", "value": "x".repeat(32 * 1024 + 1)}),
            "value",
        ),
    ] {
        let (s, b) = within("set")(tokio::time::timeout(limit, set(&h, &app, body)).await);
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(b["details"]["field"], field, "{b}");
    }
    let delete = h
        .http
        .delete(format!("{}/admin/api/apps/{app}/env/lower", h.url));
    let (s, b) = within("unset")(tokio::time::timeout(limit, send(delete)).await);
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["details"]["field"], "name", "{b}");
    // Once the change in flight ends, a good change goes through.
    held.rollback().await.unwrap();
    let (s, b) = set(&h, &app, json!({"name": "GOOD", "value": "x"})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    pool.close().await;
}

//! The platform started for a test: all five services in this process, on port 0,
//! against a private NATS server, a fresh database and real Python workers.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod admin_pages;
pub mod browser;
pub mod deploy;
pub mod identity;
pub mod logs;
pub mod notify;
pub mod procs;
pub mod resilience;
pub mod runner;
pub mod schedules;
pub mod shell;
pub mod shop;
pub mod up;

use clap::Parser;
use noderouter::{Platform, PlatformConfig};
use nr_testkit::{TestDb, TestNats};
use reqwest::StatusCode;
use serde_json::Value;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    config: PlatformConfig,
}

pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";
/// The key the harness's gateway signs runner requests with (unless a test sets its own).
pub const RUNNER_SECRET: &str = "runner-secret-for-tests-0123456789";

pub use nr_config::nats_auth::Role;

/// The key the harness's platform signs sessions with.
pub const JWT_SECRET: &str = "test-secret-0123456789abcdef";

pub struct Harness {
    pub platform: Option<Platform>,
    pub url: String,
    pub http: reqwest::Client,
    pub nats: TestNats,
    pub db: TestDb,
    pub dir: tempfile::TempDir,
}

pub fn config_for(
    nats: &TestNats,
    db: &TestDb,
    dir: &std::path::Path,
    extra: &[&str],
) -> PlatformConfig {
    let mut args: Vec<String> = vec![
        "test".into(),
        "--http-addr".into(),
        "127.0.0.1:0".into(),
        "--nats-url".into(),
        nats.url.clone(),
        "--nats-passwords-file".into(),
        nats.passwords_file().to_string_lossy().into_owned(),
        "--database-url".into(),
        db.url.clone(),
        "--object-store-url".into(),
        dir.join("objects").to_string_lossy().into_owned(),
        "--runner-dir".into(),
        dir.join("runner").to_string_lossy().into_owned(),
        "--python".into(),
        nr_testkit::python(),
        "--admin-password".into(),
        ADMIN_PASSWORD.into(),
        "--jwt-secret".into(),
        JWT_SECRET.into(),
    ];
    if !extra.contains(&"--runner-secret") {
        args.extend(["--runner-secret".into(), RUNNER_SECRET.into()]);
    }
    if !extra.contains(&"--pool-size") {
        args.extend(["--pool-size".into(), "2".into()]);
    }
    if !extra.contains(&"--app-uid-base") {
        // App uids are per machine: tests running at once each take a range of their own,
        // so one platform's sweep never meets another's apps.
        args.extend(["--app-uid-base".into(), app_uid_base().to_string()]);
        args.extend(["--app-uid-count".into(), "1000".into()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    Args::parse_from(args).config
}

/// A random uid range start for one test platform: [1_000_000, 2_000_000_000).
pub fn app_uid_base() -> u32 {
    let n = uuid::Uuid::new_v4().as_u128();
    1_000_000 + (n % 1_999_000) as u32 * 1000
}

/// The test's directory made traversable (0711) by app uids: the runner's directory
/// lives inside it and apps reach their bundles through it.
pub fn traversable_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).expect("chmod");
    dir
}

/// A pool on the test database (as the platform's superuser) that finds every deployed
/// app's tables without a schema name: its `search_path` lists each app's own schema,
/// where module-level `CREATE TABLE` lands. Apps must be deployed before it is made.
pub async fn app_tables(h: &Harness) -> sqlx::PgPool {
    use std::str::FromStr as _;
    let pool = sqlx::PgPool::connect(&h.db.url).await.unwrap();
    let schemas: Vec<(String,)> =
        sqlx::query_as("SELECT db_schema FROM noderouter_core.app_identities ORDER BY uid")
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    let mut path: Vec<String> = schemas
        .into_iter()
        .map(|s| format!("\"{}\"", s.0))
        .collect();
    path.push("public".into());
    let opts = sqlx::postgres::PgConnectOptions::from_str(&h.db.url)
        .unwrap()
        .options([("search_path", path.join(","))]);
    sqlx::PgPool::connect_with(opts).await.unwrap()
}

/// The schema `app`'s tables live in.
pub async fn app_schema(h: &Harness, app: &str) -> String {
    let pool = sqlx::PgPool::connect(&h.db.url).await.unwrap();
    let (schema,): (String,) =
        sqlx::query_as("SELECT db_schema FROM noderouter_core.app_identities WHERE app_name = $1")
            .bind(app)
            .fetch_one(&pool)
            .await
            .unwrap();
    pool.close().await;
    schema
}

/// An HTTP client that sends `token` as its bearer credential.
pub fn client_with_token(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("client")
}

/// Runs `test` of this test binary again in a process of its own, started through
/// `sh -c '<shell> exec ...'` (`ulimit`, say) with `env` added, and asserts it passed
/// there. Returns false in that inner run, which does the test's work; true in the
/// outer one, which is done.
pub fn rerun_inner(test: &str, shell: &str, env: &[(&str, &str)]) -> bool {
    const INNER: &str = "NR_TEST_INNER";
    if std::env::var_os(INNER).is_some() {
        return false;
    }
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{shell} exec \"$0\" \"$@\""))
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(INNER, "1")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "inner run failed:\n{text}");
    assert!(
        text.contains("1 passed"),
        "the inner run ran no test:\n{text}"
    );
    true
}

impl Harness {
    pub async fn start() -> Harness {
        Self::start_with(&[]).await
    }

    pub async fn start_with(extra: &[&str]) -> Harness {
        if std::env::var_os("RUST_LOG").is_some() {
            nr_telemetry::init();
        } else {
            // Kept in memory, so a failed assertion can show what the platform logged.
            logs::capture_platform_log();
        }
        let nats = TestNats::start().await.expect("nats");
        let db = TestDb::create().await.expect("db");
        let dir = traversable_tempdir();
        let platform = Platform::start(config_for(&nats, &db, dir.path(), extra))
            .await
            .expect("platform starts");
        let http = client_with_token(platform.admin_token());
        Harness {
            url: platform.url(),
            platform: Some(platform),
            http,
            nats,
            db,
            dir,
        }
    }

    pub async fn deploy(&self, file_name: &str, zip: Vec<u8>) -> (StatusCode, Value) {
        let part = reqwest::multipart::Part::bytes(zip).file_name(file_name.to_owned());
        let form = reqwest::multipart::Form::new().part("file", part);
        let res = self
            .http
            .post(format!("{}/admin/api/apps/deploy", self.url))
            .multipart(form)
            .send()
            .await
            .expect("deploy request");
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// Deploys and asserts success.
    pub async fn deploy_ok(&self, app: &str, files: &[(&str, &str)]) -> Value {
        let (status, body) = self
            .deploy(&format!("{app}.zip"), nr_testkit::zip_files(files))
            .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "deploy of {app} failed: {body}\nthe platform's errors so far:\n{}",
            logs::logged(" ERROR ").join("\n")
        );
        body
    }

    pub async fn sync(&self, app: &str, body: Value) -> (StatusCode, Value) {
        let res = self
            .http
            .post(format!("{}/api/sync/{app}", self.url))
            .json(&body)
            .send()
            .await
            .expect("sync request");
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    pub async fn submit(&self, app: &str, body: Value) -> (StatusCode, Value) {
        let res = self
            .http
            .post(format!("{}/api/async/{app}", self.url))
            .json(&body)
            .send()
            .await
            .expect("async request");
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// Submits with `X-Request-Id: rid` (202 asserted): the job's id and the request id
    /// the answer carries.
    pub async fn submit_as(&self, app: &str, rid: &str, body: Value) -> (String, String) {
        let res = self
            .http
            .post(format!("{}/api/async/{app}", self.url))
            .header("x-request-id", rid)
            .json(&body)
            .send()
            .await
            .expect("async request");
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        let echoed = res.headers()["x-request-id"]
            .to_str()
            .unwrap_or_default()
            .to_owned();
        let id = res.json::<Value>().await.expect("a job")["job_id"]
            .as_str()
            .expect("job_id")
            .to_owned();
        (id, echoed)
    }

    pub async fn job(&self, id: &str) -> Value {
        self.get_json(&format!("/api/async/jobs/{id}")).await
    }

    /// `GET path` as the admin, its JSON body (null when it has none).
    pub async fn get_json(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("GET request")
            .json()
            .await
            .unwrap_or(Value::Null)
    }

    /// Polls a job until `done` says so (or 30 s pass) and returns its last state.
    pub async fn wait_job(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let job = self.job(id).await;
            if done(&job) || std::time::Instant::now() > deadline {
                return job;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// A NATS client with the operators' (`admin`) credentials: it may do anything.
    pub async fn nats_client(&self) -> async_nats::Client {
        self.nats_as(Role::Admin).await
    }

    /// A NATS client with `role`'s credentials and permissions.
    pub async fn nats_as(&self, role: Role) -> async_nats::Client {
        self.nats.client(role).await.expect("nats client")
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(p) = self.platform.take() {
            p.stop_token().cancel();
        }
    }
}

/// The author guide's starter `main.py` for `slug`: a module-level migration creating
/// `<slug>_items`, and `create`/`list` actions on the injected connection.
pub fn guide_starter_main(slug: &str) -> String {
    r#"import os, contextlib, logging, psycopg2

log = logging.getLogger(__name__)

def _migrate() -> None:
    dsn = os.getenv("DATABASE_URL", "")
    if not dsn:
        log.warning("[<slug>] DATABASE_URL not set — skipping migration")
        return
    with psycopg2.connect(dsn) as conn:
        with conn.cursor() as cur:
            cur.execute("""
                CREATE TABLE IF NOT EXISTS <slug>_items (
                    id SERIAL PRIMARY KEY,
                    name TEXT NOT NULL,
                    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
                )
            """)
        conn.commit()
    log.info("[<slug>] migration ok")

# ── Runs on every deploy / hot-reload ─────────────────────────────────────
_migrate()

@contextlib.contextmanager
def _get_conn(conn=None):
    if conn is not None:
        yield conn
    else:
        with psycopg2.connect(os.getenv("DATABASE_URL")) as own:
            yield own

def execute(data: dict, conn=None) -> dict:
    action = str(data.get("action", "")).strip()
    if action == "list":
        return _list(conn=conn)
    if action == "create":
        return _create(data, conn=conn)
    return {"message": "ok"}

def _list(conn=None) -> dict:
    with _get_conn(conn) as c:
        with c.cursor() as cur:
            cur.execute("SELECT id, name FROM <slug>_items ORDER BY id DESC")
            rows = cur.fetchall()
    return {"rows": [{"id": r[0], "name": r[1]} for r in rows]}

def _create(data: dict, conn=None) -> dict:
    with _get_conn(conn) as c:
        with c.cursor() as cur:
            cur.execute("INSERT INTO <slug>_items (name) VALUES (%s) RETURNING id", (data["name"],))
            new_id = cur.fetchone()[0]
        c.commit()
    return {"id": new_id}
"#
    .replace("<slug>", slug)
}

/// POSTs `body` as JSON with `c` and returns the status and the JSON answer.
pub async fn post(c: &reqwest::Client, url: String, body: Value) -> (StatusCode, Value) {
    let r = c.post(url).json(&body).send().await.unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

/// Sets the secret `name` of `app` to `value`, as the admin.
pub async fn secret(h: &Harness, app: &str, name: &str, value: &str) {
    let r = h
        .http
        .put(format!("{}/admin/api/apps/{app}/env", h.url))
        .json(&serde_json::json!({"name": name, "value": value, "secret": true}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

/// Creates role `name` with `permissions`, as the admin.
pub async fn role(h: &Harness, name: &str, permissions: &[&str]) {
    let (s, b) = post(
        &h.http,
        format!("{}/admin/api/roles", h.url),
        serde_json::json!({"name": name}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    for p in permissions {
        let (s, b) = post(
            &h.http,
            format!("{}/admin/api/roles/{name}/permissions", h.url),
            serde_json::json!({"permission": p}),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
}

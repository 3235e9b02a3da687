//! Who an app is to the operating system and to Postgres: one OS uid/gid from a
//! configured range, one LOGIN role with a random password, one schema owned by that
//! role. Recorded in `noderouter_core.app_identities` so every runner and deploy's
//! import check agree; every statement on that table is here.
//!
//! `ensure` is idempotent and serialised per database: deploy calls it before the
//! import check, the runner before loading an app. A deleted app keeps its identity,
//! role and schema (its data stays).

use anyhow::{bail, Context as _};
use nr_contracts::manifest::Limits;
use sqlx::PgPool;

/// Containment settings shared by the runner and deploy's import check.
#[derive(Debug, Clone, clap::Args)]
pub struct ContainArgs {
    /// First OS uid (and gid) given to apps; each app gets its own from
    /// [base, base + count). Keep the range free of real users.
    #[arg(long, env = "NR_APP_UID_BASE", default_value_t = 200_000)]
    pub app_uid_base: u32,
    /// How many app uids the range holds.
    #[arg(long, env = "NR_APP_UID_COUNT", default_value_t = 100_000)]
    pub app_uid_count: u32,
    /// Most processes (threads included) one app's uid may have at once (RLIMIT_NPROC;
    /// 0: none).
    #[arg(long, env = "NR_APP_MAX_PROCS", default_value_t = 256)]
    pub app_max_procs: u64,
    /// Largest file an app process may write, MiB (RLIMIT_FSIZE; 0: none).
    #[arg(long, env = "NR_APP_MAX_FILE_MB", default_value_t = 1024)]
    pub app_max_file_mb: u64,
    /// CPU seconds an app process may use for one call, a job or an import
    /// (RLIMIT_CPU; 0: none).
    #[arg(long, env = "NR_APP_CPU_S", default_value_t = 600)]
    pub app_cpu_s: u64,
    /// Address-space limit of each app process, MiB (RLIMIT_AS, hard; 0: none). An app
    /// over it gets MemoryError.
    #[arg(long, env = "NR_WORKER_MEMORY_MB", default_value_t = 2048)]
    pub worker_memory_mb: u64,
    /// Postgres connections one app's role may hold at once, over all runners (its
    /// role's CONNECTION LIMIT; 0: none). Each worker with `conn` holds one.
    #[arg(long, env = "NR_APP_DB_CONNECTIONS", default_value_t = 32)]
    pub app_db_connections: u32,
}

impl Default for ContainArgs {
    fn default() -> Self {
        Self {
            app_uid_base: 200_000,
            app_uid_count: 100_000,
            app_max_procs: 256,
            app_max_file_mb: 1024,
            app_cpu_s: 600,
            worker_memory_mb: 2048,
            app_db_connections: 32,
        }
    }
}

impl ContainArgs {
    /// The limits as the environment variables the Python host and checker read.
    pub fn limit_env(&self) -> Vec<(String, String)> {
        vec![
            ("NR_APP_MAX_PROCS".into(), self.app_max_procs.to_string()),
            (
                "NR_APP_MAX_FILE_MB".into(),
                self.app_max_file_mb.to_string(),
            ),
            ("NR_APP_CPU_S".into(), self.app_cpu_s.to_string()),
            (
                "NR_WORKER_MEMORY_MB".into(),
                self.worker_memory_mb.to_string(),
            ),
        ]
    }

    /// The platform's value of each limit a manifest's `limits` may set, with the
    /// setting that configures it: `(field, value, setting)`; 0 is none.
    fn ceilings(&self) -> [(&'static str, u64, &'static str); 4] {
        [
            ("memory_mb", self.worker_memory_mb, "NR_WORKER_MEMORY_MB"),
            ("cpu_s", self.app_cpu_s, "NR_APP_CPU_S"),
            ("max_procs", self.app_max_procs, "NR_APP_MAX_PROCS"),
            ("max_file_mb", self.app_max_file_mb, "NR_APP_MAX_FILE_MB"),
        ]
    }

    /// What an app's `limits` asks above the platform's own (deploy refuses it):
    /// one message per field, naming the platform's value and its setting.
    pub fn above(&self, limits: Option<&Limits>) -> Vec<(String, String)> {
        let Some(limits) = limits else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (field, asked) in limits.set_fields() {
            if let Some((_, platform, setting)) =
                self.ceilings().into_iter().find(|(f, _, _)| *f == field)
            {
                if platform > 0 && asked > platform {
                    out.push((
                        field.to_owned(),
                        format!("limits.{field} is {asked}, above this platform's {platform} ({setting}): ask for {platform} or less, or have the operator raise {setting}"),
                    ));
                }
            }
        }
        out
    }

    /// These limits with an app's own applied: each field it sets replaces the
    /// platform's when lower (or when the platform sets none), never raises it.
    pub fn for_app(&self, limits: Option<&Limits>) -> ContainArgs {
        let mut out = self.clone();
        let Some(limits) = limits else {
            return out;
        };
        let lower = |platform: u64, asked: Option<u64>| match asked {
            Some(a) if platform == 0 || a < platform => a,
            _ => platform,
        };
        out.worker_memory_mb = lower(self.worker_memory_mb, limits.memory_mb);
        out.app_cpu_s = lower(self.app_cpu_s, limits.cpu_s);
        out.app_max_procs = lower(self.app_max_procs, limits.max_procs);
        out.app_max_file_mb = lower(self.app_max_file_mb, limits.max_file_mb);
        out
    }
}

/// One app's identity.
#[derive(Clone)]
pub struct AppIdentity {
    pub app: String,
    /// OS uid, also used as the gid.
    pub uid: u32,
    pub db_role: String,
    pub db_schema: String,
    db_password: String,
}

impl std::fmt::Debug for AppIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppIdentity")
            .field("app", &self.app)
            .field("uid", &self.uid)
            .field("db_role", &self.db_role)
            .field("db_schema", &self.db_schema)
            .finish_non_exhaustive()
    }
}

impl AppIdentity {
    pub fn gid(&self) -> u32 {
        self.uid
    }

    /// The platform's Postgres URL with the app's role and password in place of the
    /// platform's credentials: the app's `DATABASE_URL`.
    pub fn database_url(&self, platform_url: &str) -> anyhow::Result<String> {
        with_credentials(platform_url, &self.db_role, &self.db_password)
    }
}

/// `url` (a `postgres://` URL) with `user:password` as its credentials.
fn with_credentials(url: &str, user: &str, password: &str) -> anyhow::Result<String> {
    let Some(scheme_end) = url.find("://") else {
        bail!("DATABASE_URL must be a postgres:// URL to derive the apps' URLs from it");
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let host = match authority.rfind('@') {
        Some(at) => &authority[at + 1..],
        None => authority,
    };
    Ok(format!(
        "{}://{user}:{password}@{host}{}",
        &url[..scheme_end],
        &rest[authority_end..]
    ))
}

/// Identifiers we generate and splice into DDL: lower-case letters, digits and `_` only.
fn safe_ident(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Schema name for `app`: `app_` and the name in lower case with `-` as `_`, made unique
/// with the uid when that form is taken or too long.
fn schema_name(app: &str, uid: u32) -> String {
    let base: String = app
        .chars()
        .map(|c| match c {
            'A'..='Z' => c.to_ascii_lowercase(),
            'a'..='z' | '0'..='9' => c,
            _ => '_',
        })
        .collect();
    let name = format!("app_{base}");
    if name.len() <= 40 {
        name
    } else {
        format!("app_{}_{uid}", &base[..30])
    }
}

/// The app's identity, created (uid, role, schema, grants) when missing and brought up
/// to date when present.
pub async fn ensure(pool: &PgPool, app: &str, range: &ContainArgs) -> anyhow::Result<AppIdentity> {
    let mut tx = pool.begin().await.context("cannot open a transaction")?;
    // One allocator at a time per database; roles are created in the same transaction.
    // A table lock, not an advisory one: any role may take any advisory lock, so an app
    // could hold it and stop every other app from loading; no app may lock this table.
    sqlx::query("LOCK TABLE noderouter_core.app_identities IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await
        .context("cannot lock app_identities")?;
    // The statements below are idempotent on purpose: Postgres's notices that a grant or
    // a schema is already there would fill the log at every load of every app.
    sqlx::query("SET LOCAL client_min_messages = warning")
        .execute(&mut *tx)
        .await
        .context("cannot set client_min_messages")?;
    let row: Option<(i64, String, String, String)> = sqlx::query_as(
        "SELECT uid, db_role, db_schema, db_password FROM noderouter_core.app_identities WHERE app_name = $1",
    )
    .bind(app)
    .fetch_optional(&mut *tx)
    .await
    .context("cannot read app_identities")?;
    let id = match row {
        Some((uid, db_role, db_schema, db_password)) => AppIdentity {
            app: app.to_owned(),
            uid: u32::try_from(uid).context("stored uid out of range")?,
            db_role,
            db_schema,
            db_password,
        },
        None => allocate(&mut tx, app, range).await?,
    };
    let password_ok =
        !id.db_password.is_empty() && id.db_password.bytes().all(|b| b.is_ascii_alphanumeric());
    if !safe_ident(&id.db_role) || !safe_ident(&id.db_schema) || !password_ok {
        bail!("app_identities holds an unusable role, schema or password for {app}");
    }
    let (role, schema, password) = (&id.db_role, &id.db_schema, &id.db_password);
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(role)
            .fetch_one(&mut *tx)
            .await?;
    if !exists {
        sqlx::query(&format!(
            "CREATE ROLE \"{role}\" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION INHERIT PASSWORD '{password}'"
        ))
        .execute(&mut *tx)
        .await
        .with_context(|| format!("cannot create role {role}"))?;
    }
    // All idempotent, so each load repairs what an operator changed by hand.
    {
        let db: String = sqlx::query_scalar("SELECT current_database()")
            .fetch_one(&mut *tx)
            .await?;
        let db = db.replace('"', "\"\"");
        // One app cannot take the connections the platform and the other apps need.
        let connections = match range.app_db_connections {
            0 => -1,
            n => i64::from(n),
        };
        // Postgres 14+: a query whose client is gone (its worker killed after a time
        // limit, a cancel or a crash) stops within a second instead of running on.
        let version: i32 = sqlx::query_scalar("SELECT current_setting('server_version_num')::int")
            .fetch_one(&mut *tx)
            .await?;
        let check_client = if version >= 140_000 {
            format!("ALTER ROLE \"{role}\" IN DATABASE \"{db}\" SET client_connection_check_interval = '1s'")
        } else {
            "SELECT 1".to_owned()
        };
        let statements = [
            format!("ALTER ROLE \"{role}\" LOGIN PASSWORD '{password}'"),
            format!("ALTER ROLE \"{role}\" CONNECTION LIMIT {connections}"),
            format!("GRANT noderouter_apps TO \"{role}\""),
            format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\" AUTHORIZATION \"{role}\""),
            format!("ALTER ROLE \"{role}\" IN DATABASE \"{db}\" SET search_path = \"{schema}\""),
            format!("REVOKE ALL ON SCHEMA public FROM \"{role}\""),
            check_client,
        ];
        for sql in statements {
            sqlx::query(&sql)
                .execute(&mut *tx)
                .await
                .with_context(|| format!("cannot set up the Postgres role of app {app}"))?;
        }
    }
    tx.commit()
        .await
        .context("cannot commit the app identity")?;
    Ok(id)
}

async fn allocate(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    app: &str,
    range: &ContainArgs,
) -> anyhow::Result<AppIdentity> {
    let base = i64::from(range.app_uid_base);
    let end = base + i64::from(range.app_uid_count);
    let next: i64 = sqlx::query_scalar(
        "SELECT COALESCE(MAX(uid) + 1, $1) FROM noderouter_core.app_identities WHERE uid >= $1 AND uid < $2",
    )
    .bind(base)
    .bind(end)
    .fetch_one(&mut **tx)
    .await
    .context("cannot allocate an app uid")?;
    if next >= end {
        bail!(
            "the app uid range [{base}, {end}) is used up (NR_APP_UID_BASE, NR_APP_UID_COUNT): widen it"
        );
    }
    let uid = u32::try_from(next).context("app uid out of range")?;
    // Roles are cluster-wide: a random part keeps two databases on one server apart.
    let (suffix, password): (String, String) = sqlx::query_as(
        "SELECT substr(md5(gen_random_uuid()::text), 1, 10),
                replace(gen_random_uuid()::text, '-', '') || replace(gen_random_uuid()::text, '-', '')",
    )
    .fetch_one(&mut **tx)
    .await?;
    let mut schema = schema_name(app, uid);
    let taken: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM noderouter_core.app_identities WHERE db_schema = $1)
             OR EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
    )
    .bind(&schema)
    .fetch_one(&mut **tx)
    .await?;
    if taken {
        // `a-b` and `a_b` are two apps with one plain form.
        schema = format!("{}_{uid}", schema.get(..34).unwrap_or(&schema));
    }
    let id = AppIdentity {
        app: app.to_owned(),
        uid,
        db_role: format!("nr_app_{uid}_{suffix}"),
        db_schema: schema,
        db_password: password,
    };
    sqlx::query(
        "INSERT INTO noderouter_core.app_identities (app_name, uid, db_role, db_schema, db_password) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(app)
    .bind(next)
    .bind(&id.db_role)
    .bind(&id.db_schema)
    .bind(&id.db_password)
    .execute(&mut **tx)
    .await
    .context("cannot record the app identity")?;
    Ok(id)
}

/// Whether the server lets a client in without checking its password (`trust` in
/// `pg_hba.conf`), which voids every app role: it asks for a role that does not exist
/// with a wrong password. A server that checks passwords answers "password
/// authentication failed"; one that trusts answers that the role does not exist.
pub async fn postgres_trusts_anyone(platform_url: &str) -> anyhow::Result<bool> {
    use sqlx::Connection as _;
    let url = with_credentials(
        platform_url,
        "nr_trust_probe_no_such_role",
        "not_the_password",
    )?;
    match sqlx::PgConnection::connect(&url).await {
        Ok(conn) => {
            let _ = conn.close().await;
            Ok(true)
        }
        Err(sqlx::Error::Database(e)) => {
            Ok(e.code().as_deref() != Some("28P01") && e.message().contains("does not exist"))
        }
        Err(e) => Err(e).context("cannot probe Postgres authentication"),
    }
}

/// The warning the platform logs when Postgres trusts anyone.
pub const TRUST_WARNING: &str = "Postgres lets clients in without a password (trust in pg_hba.conf): any local process can connect as any app's role or as the platform's superuser, which voids per-app database roles. Fix: set the method to scram-sha-256 in pg_hba.conf (host all all 0.0.0.0/0 scram-sha-256; local all all scram-sha-256), give the platform's role a password and reload Postgres";

#[cfg(test)]
mod tests {
    #[test]
    fn app_urls_carry_the_apps_credentials_only() {
        assert_eq!(
            super::with_credentials("postgres://postgres@127.0.0.1:5432/nr", "r", "p").unwrap(),
            "postgres://r:p@127.0.0.1:5432/nr"
        );
        assert_eq!(
            super::with_credentials("postgresql://u:secret@h/db?sslmode=require", "r", "p")
                .unwrap(),
            "postgresql://r:p@h/db?sslmode=require"
        );
        assert_eq!(
            super::with_credentials("postgres://h", "r", "p").unwrap(),
            "postgres://r:p@h"
        );
        assert!(super::with_credentials("host=h user=u", "r", "p").is_err());
    }

    #[test]
    fn an_apps_limits_lower_the_platforms_and_never_raise_them() {
        use nr_contracts::manifest::Manifest;
        let platform = super::ContainArgs {
            app_max_file_mb: 0, // none
            ..Default::default()
        };
        let m = Manifest::from_value(&serde_json::json!({
            "app_name": "a", "version": "1.0.0",
            "limits": {"memory_mb": 512, "cpu_s": 900, "max_file_mb": 10}
        }))
        .unwrap();
        let app = platform.for_app(m.limits.as_ref());
        assert_eq!(app.worker_memory_mb, 512);
        assert_eq!(app.app_cpu_s, 600, "never above the platform's");
        assert_eq!(app.app_max_procs, 256, "absent: the platform's");
        assert_eq!(app.app_max_file_mb, 10, "the platform sets none");
        let above = platform.above(m.limits.as_ref());
        assert_eq!(above.len(), 1, "{above:?}");
        assert_eq!(above[0].0, "cpu_s");
        assert!(above[0].1.contains("600 (NR_APP_CPU_S)"), "{}", above[0].1);
        assert!(platform.above(None).is_empty());
        assert_eq!(platform.for_app(None).worker_memory_mb, 2048);
    }

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert_eq!(super::schema_name("My-App_1", 7), "app_my_app_1");
        let long = "a".repeat(64);
        let s = super::schema_name(&long, 200_001);
        assert!(super::safe_ident(&s) && s.ends_with("_200001"), "{s}");
    }
}

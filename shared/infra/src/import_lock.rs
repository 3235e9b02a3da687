//! The lock that keeps two imports of one app apart (a runner's load, deploy's check,
//! another runner's load: the guide's module-level DDL must not run twice at once).
//!
//! The platform takes it, not the app: a row lock on the app's row of
//! `noderouter_core.app_identities`, held on a connection of its own for as long as the
//! import runs and released when that connection closes. No app role can read or lock
//! that table. An advisory lock would not do: every role may take any advisory lock,
//! and `pg_locks` shows every role the keys of those held, so an app could copy another
//! app's key and hold it, stalling that app's imports.

use std::time::Duration;

use sqlx::{Connection as _, PgConnection};

/// How long a connection for the lock may take before the import goes on without it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for another import of the app to finish (theirs are bounded by
/// their time limit; this only guards against the unforeseen).
const WAIT: &str = "SET LOCAL lock_timeout = '300s'";

/// Held while an app's module code runs; [`ImportLock::release`] it when the import is
/// done (dropped, its connection closes and Postgres releases the lock all the same).
pub struct ImportLock(PgConnection);

impl ImportLock {
    /// Waits for `app`'s import lock on `url` (the platform's database). `None`, with a
    /// warning, when the database cannot be reached: the import then runs without it.
    pub async fn take(url: &str, app: &str) -> Option<ImportLock> {
        let conn = match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect(url)).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                tracing::warn!(app, error = %e, db = %crate::db::redact(url), "import lock unavailable; the import runs without it");
                return None;
            }
            Err(_) => {
                tracing::warn!(app, db = %crate::db::redact(url), "import lock: no connection to Postgres within 10 s; the import runs without it");
                return None;
            }
        };
        match lock(conn, app).await {
            Ok(conn) => Some(ImportLock(conn)),
            Err(e) => {
                tracing::warn!(app, error = %e, "import lock not taken; the import runs without it");
                None
            }
        }
    }

    /// Ends the lock's transaction and closes its connection.
    pub async fn release(self) {
        let _ = self.0.close().await;
    }
}

async fn lock(mut conn: PgConnection, app: &str) -> Result<PgConnection, sqlx::Error> {
    sqlx::query("BEGIN").execute(&mut conn).await?;
    sqlx::query(WAIT).execute(&mut conn).await?;
    // The row exists: the app's identity is ensured before any import. Waiting here is
    // waiting for the other import of the app.
    sqlx::query("SELECT 1 FROM noderouter_core.app_identities WHERE app_name = $1 FOR UPDATE")
        .bind(app)
        .execute(&mut conn)
        .await?;
    Ok(conn)
}

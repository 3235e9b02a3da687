//! Writing an app's variables: one change at a time per app, in a transaction that
//! holds the app's lock until it commits.
//!
//! The lock is what lets the change and its `app.env` event land together. The gateway
//! writes the row, stores the event, and only then commits: a refused publish rolls the
//! row back, so there is never a change without its event. A runner reloads on the
//! event, and its read of the variables ([`super::load_for_app`]) waits for the commit,
//! so it never reads the value from before it.
//!
//! The locks are table locks on `noderouter_core.app_env` (a change holds SHARE ROW
//! EXCLUSIVE, which also puts changes one after another; a read SHARE, which waits for a
//! change in flight and for no other read). Not advisory locks: every role may take any
//! advisory lock, so an app could hold another's forever; no app role may lock a
//! platform table.

use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use super::{check_name, check_value, EnvError, SecretsKey, MAX_TOTAL_BYTES};

/// A change to set.
pub struct SetEnv<'a> {
    pub app: &'a str,
    pub name: &'a str,
    pub value: &'a str,
    pub secret: bool,
    /// Who sets it (user or token name), recorded with the row.
    pub actor: &'a str,
}

/// Takes the lock on the variables for the rest of the transaction on `conn`:
/// exclusive of other changes and reads for a change, shared with other reads for a
/// read. `app` names it in errors.
pub(super) async fn lock(
    conn: &mut PgConnection,
    app: &str,
    exclusive: bool,
) -> Result<(), EnvError> {
    let sql = if exclusive {
        "LOCK TABLE noderouter_core.app_env IN SHARE ROW EXCLUSIVE MODE"
    } else {
        "LOCK TABLE noderouter_core.app_env IN SHARE MODE"
    };
    sqlx::query(sql)
        .execute(conn)
        .await
        .map_err(|e| anyhow::anyhow!("cannot lock the variables of {app}: {e}"))?;
    Ok(())
}

/// A change of one app's variables in progress, holding the lock. Nothing of it is seen
/// until [`Change::commit`]; dropped, it rolls back.
pub struct Change {
    tx: Transaction<'static, Postgres>,
    app: String,
}

/// Starts a change of `app`'s variables (waiting for any other change in flight).
pub async fn begin(db: &PgPool, app: &str) -> Result<Change, EnvError> {
    let mut tx = db
        .begin()
        .await
        .map_err(|e| anyhow::anyhow!("cannot change the variables of {app}: {e}"))?;
    lock(&mut tx, app, true).await?;
    Ok(Change {
        tx,
        app: app.to_owned(),
    })
}

impl Change {
    /// Sets a variable or a secret (replacing whatever the name held).
    pub async fn set(
        &mut self,
        key: Option<&SecretsKey>,
        change: SetEnv<'_>,
    ) -> Result<(), EnvError> {
        if change.app != self.app {
            return Err(anyhow::anyhow!(
                "a change of {} cannot set a variable of {}",
                self.app,
                change.app
            )
            .into());
        }
        write(&mut self.tx, key, change).await
    }

    /// Removes a name; returns whether it was there and whether it was a secret.
    pub async fn unset(&mut self, name: &str) -> Result<Option<bool>, EnvError> {
        check_name(name)?;
        let app = &self.app;
        let row: Option<(bool,)> = sqlx::query_as(
            "DELETE FROM noderouter_core.app_env WHERE app_name = $1 AND name = $2 RETURNING secret",
        )
        .bind(app)
        .bind(name)
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(|e| anyhow::anyhow!("cannot remove {name} of {app}: {e}"))?;
        Ok(row.map(|(secret,)| secret))
    }

    /// Makes the change seen, and lets the next change and the runners' reads go on.
    pub async fn commit(self) -> Result<(), EnvError> {
        let app = self.app;
        self.tx
            .commit()
            .await
            .map_err(|e| anyhow::anyhow!("cannot store the variables of {app}: {e}"))?;
        Ok(())
    }
}

/// Sets a variable or a secret at once (a change of its own), without an event.
pub async fn set(
    db: &PgPool,
    key: Option<&SecretsKey>,
    change: SetEnv<'_>,
) -> Result<(), EnvError> {
    check_set(key, &change)?;
    let mut c = begin(db, change.app).await?;
    c.set(key, change).await?;
    c.commit().await
}

/// Removes a name at once (a change of its own), without an event.
pub async fn unset(db: &PgPool, app: &str, name: &str) -> Result<Option<bool>, EnvError> {
    let mut c = begin(db, app).await?;
    let was = c.unset(name).await?;
    c.commit().await?;
    Ok(was)
}

/// What is wrong with a change before any database is asked: check it before
/// [`begin`], so a refused change never holds the lock (and the runners' reads with it).
pub fn check_set(key: Option<&SecretsKey>, change: &SetEnv<'_>) -> Result<(), EnvError> {
    check_name(change.name)?;
    check_value(change.value)?;
    if change.secret && key.is_none() {
        return Err(EnvError::NoKey);
    }
    if change.secret && change.value.is_empty() {
        return Err(EnvError::Value(
            "a secret cannot be empty (anyone could sign with an empty key); unset it instead"
                .into(),
        ));
    }
    Ok(())
}

async fn write(
    conn: &mut PgConnection,
    key: Option<&SecretsKey>,
    change: SetEnv<'_>,
) -> Result<(), EnvError> {
    check_set(key, &change)?;
    let (others,): (i64,) = sqlx::query_as(
        "SELECT COALESCE(SUM(octet_length(name) + octet_length(value)), 0)::BIGINT \
         FROM noderouter_core.app_env WHERE app_name = $1 AND name <> $2",
    )
    .bind(change.app)
    .bind(change.name)
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| EnvError::Internal(anyhow::anyhow!("cannot read app variables: {e}")))?;
    let total = usize::try_from(others)
        .unwrap_or(usize::MAX)
        .saturating_add(change.name.len() + change.value.len());
    if total > MAX_TOTAL_BYTES {
        return Err(EnvError::Value(format!(
            "the app's variables and secrets would take {total} bytes, more than the limit of {MAX_TOTAL_BYTES} for one app (a process cannot start with more)"
        )));
    }
    let (value, nonce) = if change.secret {
        let key = key.ok_or(EnvError::NoKey)?;
        let sealed = key.seal(change.app, change.name, change.value.as_bytes())?;
        (sealed.ciphertext, Some(sealed.nonce))
    } else {
        (change.value.as_bytes().to_vec(), None)
    };
    sqlx::query(
        "INSERT INTO noderouter_core.app_env (app_name, name, secret, value, nonce, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (app_name, name) DO UPDATE SET secret = EXCLUDED.secret, value = EXCLUDED.value, \
         nonce = EXCLUDED.nonce, updated_by = EXCLUDED.updated_by, updated_at = NOW()",
    )
    .bind(change.app)
    .bind(change.name)
    .bind(change.secret)
    .bind(value)
    .bind(nonce)
    .bind(change.actor)
    .execute(&mut *conn)
    .await
    .map_err(|e| anyhow::anyhow!("cannot store {} of {}: {e}", change.name, change.app))?;
    Ok(())
}

//! Per-app variables and secrets: the one owner of `noderouter_core.app_env`.
//!
//! Variables are stored as their bytes; secrets are sealed with the platform's secrets
//! key ([`SecretsKey`]) and only ever opened by [`load_for_app`], for the runner that
//! starts the app's processes. Listing returns the names of secrets, never their values.

mod change;
mod key;

pub use change::{begin, check_set, set, unset, Change, SetEnv};
pub use key::{load_or_create_file, BadKey, SecretsKey};

use sqlx::PgPool;

/// Largest value, bytes.
pub const MAX_VALUE_BYTES: usize = 32 * 1024;
/// The rule every name follows.
pub const NAME_PATTERN: &str = "^[A-Z_][A-Z0-9_]{0,127}$";
/// All of an app's names and values together, bytes: well under what Linux lets a
/// process start with (a few MiB in all, 128 KiB a string).
pub const MAX_TOTAL_BYTES: usize = 256 * 1024;
/// Names the platform sets itself, and names that change how the C library, OpenSSL
/// or a shell load what they run.
pub const RESERVED_NAMES: &[&str] = &[
    "DATABASE_URL",
    "PATH",
    "HOME",
    "TMPDIR",
    "LANG",
    "USER",
    "LOGNAME",
    "BASH_ENV",
    "ENV",
    "GCONV_PATH",
    "HOSTALIASES",
    "LOCALDOMAIN",
    "NLSPATH",
    "OPENSSL_CONF",
    "OPENSSL_MODULES",
    "RES_OPTIONS",
];
/// Prefixes the platform keeps for itself: Python's settings, its own, the loader's,
/// the C library's, and libpq's (`PGOPTIONS`, `PGHOSTADDR`, … would change or redirect
/// the app's database connection).
pub const RESERVED_PREFIXES: &[&str] = &["PYTHON", "NR_", "LD_", "GLIBC_", "PG"];

/// What is wrong with a change, naming the field.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("name: {0}")]
    Name(String),
    #[error("value: {0}")]
    Value(String),
    /// A secret operation on a service that has no `NR_SECRETS_KEY`.
    #[error("secrets are disabled: NR_SECRETS_KEY is not set on this service")]
    NoKey,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl EnvError {
    /// The request field the error is about, if any.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            EnvError::Name(_) => Some("name"),
            EnvError::Value(_) => Some("value"),
            _ => None,
        }
    }
}

/// Checks a variable's name: the pattern, and none of the platform's own.
pub fn check_name(name: &str) -> Result<(), EnvError> {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_uppercase() || b == b'_');
    let rest_ok = bytes.all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if !first_ok || !rest_ok || name.len() > 128 {
        return Err(EnvError::Name(format!(
            "{:?} must match {NAME_PATTERN} (capital letters, digits and _, not starting with a digit, at most 128 characters)",
            truncate(name)
        )));
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(EnvError::Name(format!(
            "{name} is reserved: the platform sets it, or it changes how the C library, OpenSSL or a shell load code"
        )));
    }
    if let Some(p) = RESERVED_PREFIXES.iter().find(|p| name.starts_with(**p)) {
        return Err(EnvError::Name(format!(
            "{name}: names starting with {p} are reserved for the platform"
        )));
    }
    Ok(())
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Checks a value: at most [`MAX_VALUE_BYTES`] and no NUL (an environment cannot hold it).
pub fn check_value(value: &str) -> Result<(), EnvError> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(EnvError::Value(format!(
            "{} bytes is more than the limit of {MAX_VALUE_BYTES}",
            value.len()
        )));
    }
    if value.contains('\0') {
        return Err(EnvError::Value(
            "contains a NUL character, which an environment variable cannot hold".into(),
        ));
    }
    Ok(())
}

/// One entry as listed: a secret's value is never included.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EnvEntry {
    pub name: String,
    pub secret: bool,
    /// The variable's value; `None` for a secret.
    pub value: Option<String>,
    /// RFC 3339.
    pub updated_at: String,
    pub updated_by: String,
}

type Row = (
    String,
    bool,
    Vec<u8>,
    Option<Vec<u8>>,
    time::OffsetDateTime,
    String,
);

const ROWS: &str = "SELECT name, secret, value, nonce, updated_at, updated_by \
     FROM noderouter_core.app_env WHERE app_name = $1 ORDER BY name";

async fn rows(db: &PgPool, app: &str) -> Result<Vec<Row>, EnvError> {
    Ok(sqlx::query_as(ROWS)
        .bind(app)
        .fetch_all(db)
        .await
        .map_err(|e| anyhow::anyhow!("cannot read the variables of {app}: {e}"))?)
}

/// The rows once no change is in flight: a change holds its lock from its first write
/// until its event is stored and it commits ([`change`]), so a runner reloading on that
/// event reads what it announced.
async fn settled_rows(db: &PgPool, app: &str) -> Result<Vec<Row>, EnvError> {
    let read = |e: sqlx::Error| anyhow::anyhow!("cannot read the variables of {app}: {e}");
    let mut tx = db.begin().await.map_err(read)?;
    change::lock(&mut tx, app, false).await?;
    let rows = sqlx::query_as(ROWS)
        .bind(app)
        .fetch_all(&mut *tx)
        .await
        .map_err(read)?;
    tx.commit().await.map_err(read)?;
    Ok(rows)
}

/// Every name of an app, sorted: values of variables, names only of secrets.
pub async fn list(db: &PgPool, app: &str) -> Result<Vec<EnvEntry>, EnvError> {
    Ok(rows(db, app)
        .await?
        .into_iter()
        .map(|(name, secret, value, _, at, by)| EnvEntry {
            name,
            secret,
            value: (!secret).then(|| String::from_utf8_lossy(&value).into_owned()),
            updated_at: at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            updated_by: by,
        })
        .collect())
}

/// Each of the app's names, sorted, whether it is a secret, and its value in clear or
/// why it did not open.
async fn opened(
    db: &PgPool,
    key: Option<&SecretsKey>,
    app: &str,
) -> Result<Vec<(String, bool, Result<String, EnvError>)>, EnvError> {
    Ok(settled_rows(db, app)
        .await?
        .into_iter()
        .map(|(name, secret, value, nonce, _, _)| {
            let bytes = if secret {
                open_secret(key, app, &name, nonce.as_deref(), &value)
            } else {
                Ok(value)
            };
            let text = bytes.map(|b| String::from_utf8_lossy(&b).into_owned());
            (name, secret, text)
        })
        .collect())
}

/// The app's variables and secrets in clear, sorted by name, for its processes only.
/// Fails (naming the variable, never showing a value) when a secret cannot be opened:
/// no key, or not the key that sealed it.
pub async fn load_for_app(
    db: &PgPool,
    key: Option<&SecretsKey>,
    app: &str,
) -> Result<Vec<(String, String)>, EnvError> {
    opened(db, key, app)
        .await?
        .into_iter()
        .map(|(name, _, value)| Ok((name, value?)))
        .collect()
}

/// What deploy's import check runs with: the app's variables and the secrets its key
/// opens, sorted by name; apart, the values of those secrets (masked in whatever the
/// check shows) and the names of the secrets it cannot open (no key there, or another
/// one). The check runs without those rather than refusing the deploy; the runner,
/// which must open them all, still does.
#[derive(Debug, Default)]
pub struct CheckEnv {
    pub env: Vec<(String, String)>,
    pub secret_values: Vec<String>,
    pub closed: Vec<String>,
}

pub async fn load_for_check(
    db: &PgPool,
    key: Option<&SecretsKey>,
    app: &str,
) -> Result<CheckEnv, EnvError> {
    let mut out = CheckEnv::default();
    for (name, secret, value) in opened(db, key, app).await? {
        match value {
            Ok(v) => {
                if secret {
                    out.secret_values.push(v.clone());
                }
                out.env.push((name, v));
            }
            Err(_) => out.closed.push(name),
        }
    }
    Ok(out)
}

/// `text` with every secret value of at least 4 bytes replaced by `[secret]` (shorter
/// ones would mask ordinary text). What code prints can still encode a secret another
/// way: this keeps secrets out of messages and logs by accident, not by intent.
pub fn mask(text: &str, secret_values: &[String]) -> String {
    let mut out = text.to_owned();
    // Each value also as an escaping may have written it: Python's `repr` in an
    // exception's message, the runner's cleaning of control characters.
    let mut values: Vec<String> = secret_values
        .iter()
        .filter(|v| v.len() >= 4)
        .flat_map(|v| [v.clone(), python_escaped(v), v.escape_default().to_string()])
        .collect();
    // Longest first, so a secret containing another is masked whole.
    values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    values.dedup();
    for v in values {
        if out.contains(v.as_str()) {
            out = out.replace(v.as_str(), "[secret]");
        }
    }
    out
}

/// `v` as Python's `repr` writes it between its quotes (when it holds one kind of quote
/// at most): backslashes doubled, `\n`, `\r`, `\t`, other control characters `\xNN`.
fn python_escaped(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

/// A sealed value in clear; fails (naming it, never showing it) without a key or with
/// one that did not seal it.
fn open_secret(
    key: Option<&SecretsKey>,
    app: &str,
    name: &str,
    nonce: Option<&[u8]>,
    sealed: &[u8],
) -> Result<Vec<u8>, EnvError> {
    let key = key.ok_or(EnvError::NoKey)?;
    key.open(app, name, nonce.unwrap_or_default(), sealed)
        .map(|(plain, _)| plain)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "secret {name} of app {app} does not open with NR_SECRETS_KEY (set with another key?)"
            )
            .into()
        })
}

/// What an app holds under one name, for a key that must be a secret (a webhook's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretLookup {
    /// No such name, or an empty value.
    Unset,
    /// A plain variable: its value is shown to whoever may list the app's variables, so
    /// it keys nothing.
    Plain,
    /// The secret, in clear.
    Secret(String),
}

/// The app's secret `name`, opened. Reads that one row only.
pub async fn load_secret(
    db: &PgPool,
    key: Option<&SecretsKey>,
    app: &str,
    name: &str,
) -> Result<SecretLookup, EnvError> {
    let row: Option<(bool, Vec<u8>, Option<Vec<u8>>)> = sqlx::query_as(
        "SELECT secret, value, nonce FROM noderouter_core.app_env WHERE app_name = $1 AND name = $2",
    )
    .bind(app)
    .bind(name)
    .fetch_optional(db)
    .await
    .map_err(|e| anyhow::anyhow!("cannot read {name} of {app}: {e}"))?;
    let Some((secret, value, nonce)) = row else {
        return Ok(SecretLookup::Unset);
    };
    if !secret {
        return Ok(if value.is_empty() {
            SecretLookup::Unset
        } else {
            SecretLookup::Plain
        });
    }
    let plain = open_secret(key, app, name, nonce.as_deref(), &value)?;
    Ok(if plain.is_empty() {
        SecretLookup::Unset
    } else {
        SecretLookup::Secret(String::from_utf8_lossy(&plain).into_owned())
    })
}

/// App, name, ciphertext, nonce.
type SealedRow = (String, String, Vec<u8>, Option<Vec<u8>>);

/// Seals again, with the first key, every secret that only an older key opens (after a
/// rotation put a new key first). Returns how many were sealed again; `unopened`, when
/// given, receives `<app>/<name>` of each secret no key opens (sealed with a key that
/// was lost or not given here).
pub async fn reseal(
    db: &PgPool,
    key: &SecretsKey,
    mut unopened: Option<&mut Vec<String>>,
) -> Result<usize, EnvError> {
    let stale: Vec<SealedRow> = sqlx::query_as(
        "SELECT app_name, name, value, nonce FROM noderouter_core.app_env WHERE secret",
    )
    .fetch_all(db)
    .await
    .map_err(|e| anyhow::anyhow!("cannot read secrets: {e}"))?;
    let mut count = 0;
    for (app, name, value, nonce) in stale {
        // The flag: the first key opened it (nothing to do).
        let (plain, by_first) =
            match key.open(&app, &name, nonce.as_deref().unwrap_or_default(), &value) {
                Some(opened) => opened,
                None => {
                    if let Some(list) = unopened.as_deref_mut() {
                        list.push(format!("{app}/{name}"));
                    }
                    continue;
                }
            };
        if by_first {
            continue;
        }
        let sealed = key.seal(&app, &name, &plain)?;
        let done = sqlx::query(
            "UPDATE noderouter_core.app_env SET value = $3, nonce = $4 \
             WHERE app_name = $1 AND name = $2 AND value = $5",
        )
        .bind(&app)
        .bind(&name)
        .bind(sealed.ciphertext)
        .bind(sealed.nonce)
        .bind(&value)
        .execute(db)
        .await
        .map_err(|e| anyhow::anyhow!("cannot seal {name} of {app} again: {e}"))?;
        count += done.rows_affected() as usize;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn names_follow_the_pattern_and_the_platforms_own_are_refused() {
        for ok in ["API_KEY", "_X", "A1", "S3_BUCKET", &"A".repeat(128)] {
            check_name(ok).unwrap();
        }
        for bad in ["", "lower", "1ABC", "A-B", "A B", "É", &"A".repeat(129)] {
            assert_eq!(check_name(bad).unwrap_err().field(), Some("name"), "{bad}");
        }
        for reserved in [
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
            "USER",
            "BASH_ENV",
            "GCONV_PATH",
            "OPENSSL_CONF",
            "GLIBC_TUNABLES",
            "PGOPTIONS",
            "PGHOSTADDR",
            "PGSERVICE",
        ] {
            let e = check_name(reserved).unwrap_err();
            assert!(e.to_string().starts_with("name: "), "{e}");
            assert!(e.to_string().contains("reserved") || e.to_string().contains("platform"));
        }
    }

    #[tokio::test]
    async fn a_secret_without_a_key_is_refused_before_anything_is_stored() {
        // Never connects: the refusal comes first.
        let db = sqlx::postgres::PgPoolOptions::new()
            .connect_lazy("postgres://nobody@127.0.0.1:1/none")
            .unwrap();
        let change = SetEnv {
            app: "shop",
            name: "API_KEY",
            value: "hunter2",
            secret: true,
            actor: "admin",
        };
        let e = set(&db, None, change).await.unwrap_err();
        assert!(matches!(e, EnvError::NoKey), "{e}");
        assert!(e.to_string().contains("NR_SECRETS_KEY"));
    }

    #[test]
    fn secret_values_are_masked_longest_first_and_short_ones_left() {
        let secrets = [
            "hunter2".to_owned(),
            "hunter2-extra".to_owned(),
            "abc".to_owned(),
        ];
        assert_eq!(
            mask("a hunter2-extra b hunter2 c abc", &secrets),
            "a [secret] b [secret] c abc"
        );
        assert_eq!(mask("nothing here", &[]), "nothing here");
        // As Python's repr writes it in an exception's message.
        let odd = ["C:\\keys\nrow2\x01".to_owned()];
        assert_eq!(
            mask("KeyError: 'C:\\\\keys\\nrow2\\x01'", &odd),
            "KeyError: '[secret]'"
        );
    }

    #[test]
    fn values_are_bounded_and_without_nul() {
        check_value(&"x".repeat(MAX_VALUE_BYTES)).unwrap();
        assert_eq!(
            check_value(&"x".repeat(MAX_VALUE_BYTES + 1))
                .unwrap_err()
                .field(),
            Some("value")
        );
        assert_eq!(check_value("a\0b").unwrap_err().field(), Some("value"));
    }
}

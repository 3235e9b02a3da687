//! Files of apps in the object store: uploads a route received (`uploads/<app>/<id>`)
//! and files an app returned (`files/<app>/<id>`, served at `/files/<id>` until the
//! link expires). One row per file in `noderouter_core.app_files`; this module owns
//! every statement on it. The gateway stores uploads and serves links; the runner
//! stores what an app's `noderouter.download(...)` hands it and fetches an upload
//! for `noderouter.read_upload(...)`, confined to the calling app's own files.
//!
//! Every file goes after `max_age_s`; a returned file also goes with its job (when the
//! job's row is pruned by retention) and an hour after its link expired.

use bytes::Bytes;
use clap::Args;
use object_store::path::Path;
use serde_json::{json, Value};
use sqlx::PgPool;
use time::OffsetDateTime;

use crate::store::Store;

/// Lifetimes of app files (shared by the gateway and the runner).
#[derive(Debug, Clone, Args)]
pub struct FileArgs {
    /// Seconds a download link (`/files/<token>`) stays valid; 410 after.
    #[arg(long, env = "NR_DOWNLOAD_TTL_S", default_value_t = 300)]
    pub download_ttl_s: u64,
    /// Seconds after which an upload or a returned file is removed (row and object),
    /// whatever its link or job says.
    #[arg(long, env = "NR_FILES_MAX_AGE_S", default_value_t = 86_400)]
    pub files_max_age_s: u64,
    /// Largest file an app may return with `noderouter.download(...)`, bytes.
    #[arg(long, env = "NR_FILE_MAX_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub file_max_bytes: u64,
}

impl Default for FileArgs {
    fn default() -> Self {
        Self {
            download_ttl_s: 300,
            files_max_age_s: 86_400,
            file_max_bytes: 32 * 1024 * 1024,
        }
    }
}

/// Why a file operation failed.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The caller's fault (a bad name, an unknown upload, too large).
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Internal(String),
}

/// What the gateway needs to serve a link.
pub struct Served {
    /// The app that returned the file.
    pub app_name: String,
    pub name: String,
    pub content_type: String,
    pub object_key: String,
    pub expired: bool,
}

fn random_id() -> Result<String, FileError> {
    let mut b = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .map_err(|_| FileError::Internal("no randomness".into()))?;
    Ok(hex::encode(b))
}

/// Whether `id` has the shape of a file id (64 hex digits).
pub fn is_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A name safe in a `Content-Disposition` header: no quotes, slashes or controls, and
/// no bidirectional or invisible formatting characters (U+202E would show
/// `invoice\u{202E}fdp.exe` as `invoiceexe.pdf`).
pub fn safe_name(name: &str) -> String {
    let n: String = name
        .chars()
        .filter(|c| {
            !c.is_control()
                && !matches!(c, '"' | '\\' | '/' | ';')
                && !matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
        })
        .take(200)
        .collect();
    if n.trim().is_empty() {
        "download".to_owned()
    } else {
        n
    }
}

/// A content type usable as a header value, else `application/octet-stream`.
pub fn safe_content_type(ct: &str) -> String {
    let ok = !ct.is_empty()
        && ct.len() <= 200
        && ct.bytes().all(|b| (0x20..0x7f).contains(&b))
        && ct.contains('/');
    if ok {
        ct.to_owned()
    } else {
        "application/octet-stream".to_owned()
    }
}

fn path(key: &str) -> Result<Path, FileError> {
    Path::parse(key).map_err(|e| FileError::Internal(format!("bad object key {key}: {e}")))
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[allow(clippy::too_many_arguments)]
async fn put(
    db: &PgPool,
    store: &Store,
    kind: &str,
    app: &str,
    job: Option<&str>,
    name: &str,
    content_type: &str,
    bytes: Bytes,
    expires: OffsetDateTime,
) -> Result<(String, i64), FileError> {
    let id = random_id()?;
    let prefix = if kind == "upload" { "uploads" } else { "files" };
    let key = format!("{prefix}/{app}/{id}");
    let size = bytes.len() as i64;
    store
        .put(&path(&key)?, bytes.into())
        .await
        .map_err(|e| FileError::Internal(format!("cannot store the file: {e}")))?;
    sqlx::query(
        "INSERT INTO noderouter_core.app_files \
           (token, app_name, name, content_type, size, object_key, expires_at, kind, job_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::uuid)",
    )
    .bind(&id)
    .bind(app)
    .bind(name)
    .bind(content_type)
    .bind(size)
    .bind(&key)
    .bind(expires)
    .bind(kind)
    .bind(job)
    .execute(db)
    .await
    .map_err(|e| FileError::Internal(format!("cannot record the file: {e}")))?;
    Ok((id, size))
}

/// Stores one uploaded file of `app` and returns its handle (`id`, `name`, `size`,
/// `content_type`; the app reads it with `noderouter.read_upload(handle)`).
pub async fn store_upload(
    db: &PgPool,
    store: &Store,
    args: &FileArgs,
    app: &str,
    name: &str,
    content_type: &str,
    bytes: Bytes,
) -> Result<Value, FileError> {
    let name = safe_name(name);
    let content_type = safe_content_type(content_type);
    let age = args.files_max_age_s.clamp(1, 365 * 86_400) as i64;
    let expires = OffsetDateTime::now_utc() + time::Duration::seconds(age);
    let (id, size) = put(
        db,
        store,
        "upload",
        app,
        None,
        &name,
        &content_type,
        bytes,
        expires,
    )
    .await?;
    Ok(json!({"id": id, "name": name, "size": size, "content_type": content_type}))
}

/// The bytes of upload `id`, if it is one of `app`'s own.
pub async fn read_upload(
    db: &PgPool,
    store: &Store,
    app: &str,
    id: &str,
) -> Result<Bytes, FileError> {
    let unknown = || FileError::Refused(format!("no upload {id:?} of app '{app}'"));
    if !is_id(id) {
        return Err(unknown());
    }
    let key: Option<String> = sqlx::query_scalar(
        "SELECT object_key FROM noderouter_core.app_files \
         WHERE token = $1 AND app_name = $2 AND kind = 'upload'",
    )
    .bind(id)
    .bind(app)
    .fetch_optional(db)
    .await
    .map_err(|e| FileError::Internal(format!("cannot read the upload: {e}")))?;
    let key = key.ok_or_else(unknown)?;
    let got = store
        .get(&path(&key)?)
        .await
        .map_err(|e| FileError::Internal(format!("cannot read the stored upload: {e}")))?;
    got.bytes()
        .await
        .map_err(|e| FileError::Internal(format!("cannot read the stored upload: {e}")))
}

/// Stores a file `app` returns (in job `job`, if any) and answers the link the caller
/// gets: `{"download_url", "name", "size", "content_type", "expires_at"}`.
#[allow(clippy::too_many_arguments)]
pub async fn store_download(
    db: &PgPool,
    store: &Store,
    args: &FileArgs,
    app: &str,
    job: Option<&str>,
    name: &str,
    content_type: &str,
    bytes: Bytes,
) -> Result<Value, FileError> {
    if bytes.len() as u64 > args.file_max_bytes {
        return Err(FileError::Refused(format!(
            "the file {name:?} is {} bytes, over the limit of {} bytes (NR_FILE_MAX_BYTES)",
            bytes.len(),
            args.file_max_bytes
        )));
    }
    let name = safe_name(name);
    let content_type = safe_content_type(content_type);
    let ttl = args.download_ttl_s.clamp(1, 7 * 86_400) as i64;
    let expires = OffsetDateTime::now_utc() + time::Duration::seconds(ttl);
    let (id, size) = put(
        db,
        store,
        "download",
        app,
        job,
        &name,
        &content_type,
        bytes,
        expires,
    )
    .await?;
    Ok(json!({
        "download_url": format!("/files/{id}"),
        "name": name,
        "size": size,
        "content_type": content_type,
        "expires_at": rfc3339(expires),
    }))
}

/// The returned file behind link `token`, if there is one.
pub async fn served(db: &PgPool, token: &str) -> Result<Option<Served>, FileError> {
    if !is_id(token) {
        return Ok(None);
    }
    let row: Option<(String, String, String, String, bool)> = sqlx::query_as(
        "SELECT app_name, name, content_type, object_key, expires_at <= NOW() \
         FROM noderouter_core.app_files WHERE token = $1 AND kind = 'download'",
    )
    .bind(token)
    .fetch_optional(db)
    .await
    .map_err(|e| FileError::Internal(format!("cannot read the download: {e}")))?;
    Ok(row.map(
        |(app_name, name, content_type, object_key, expired)| Served {
            app_name,
            name,
            content_type,
            object_key,
            expired,
        },
    ))
}

/// The bytes of a served file.
pub async fn bytes_of(store: &Store, s: &Served) -> Result<Bytes, FileError> {
    let got = store
        .get(&path(&s.object_key)?)
        .await
        .map_err(|e| FileError::Internal(format!("cannot read the stored download: {e}")))?;
    got.bytes()
        .await
        .map_err(|e| FileError::Internal(format!("cannot read the stored download: {e}")))
}

/// Removes, a batch at a time, files older than `max_age_s`, returned files whose link
/// expired over an hour ago, and returned files whose job is gone (pruned by job
/// retention): rows and objects. Returns how many went.
pub async fn prune(db: &PgPool, store: &Store, max_age_s: u64) -> anyhow::Result<u64> {
    let age = max_age_s.clamp(1, 365 * 86_400) as f64;
    let mut total = 0;
    loop {
        let gone: Vec<String> = sqlx::query_scalar(
            "DELETE FROM noderouter_core.app_files WHERE token IN ( \
               SELECT f.token FROM noderouter_core.app_files f \
               WHERE f.created_at < NOW() - make_interval(secs => $1) \
                  OR f.expires_at < NOW() - INTERVAL '1 hour' \
                  OR (f.job_id IS NOT NULL AND NOT EXISTS ( \
                        SELECT 1 FROM noderouter_core.job_queue j WHERE j.id = f.job_id)) \
               LIMIT 100) \
             RETURNING object_key",
        )
        .bind(age)
        .fetch_all(db)
        .await?;
        for key in &gone {
            if let Ok(p) = Path::parse(key) {
                if let Err(e) = store.delete(&p).await {
                    tracing::warn!(key = %key, error = %e, "file object not removed");
                }
            }
        }
        total += gone.len() as u64;
        if gone.len() < 100 {
            return Ok(total);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_types_are_made_header_safe() {
        assert_eq!(safe_name("a\"b/c;d.csv"), "abcd.csv");
        assert_eq!(safe_name("\n"), "download");
        assert_eq!(safe_name("invoice\u{202E}fdp.exe"), "invoicefdp.exe");
        assert_eq!(safe_name("a\u{2066}b\u{200F}c\u{FEFF}.txt"), "abc.txt");
        assert_eq!(safe_content_type("text/csv"), "text/csv");
        assert_eq!(safe_content_type("text\ncsv"), "application/octet-stream");
        assert_eq!(safe_content_type("nonsense"), "application/octet-stream");
        assert!(is_id(&"a".repeat(64)));
        assert!(!is_id("../x"));
    }
}

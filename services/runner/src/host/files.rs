//! Files over the worker's channel: `noderouter.read_upload(handle)` and
//! `noderouter.download(...)` send a frame `{"file": {...}}` mid-call and wait for the
//! runner's answer. The app process holds no object-store or platform credentials and
//! runs as its own user; the runner reads only the calling app's own uploads for it and
//! stores what it returns under that app's name (and job, for an async job).

use std::sync::Arc;

use bytes::Bytes;
use nr_infra::files::{self, FileArgs, FileError};
use nr_infra::store::Store;
use serde::Deserialize;
use serde_json::{json, Value};

/// Where the runner keeps app files.
pub struct FileIo {
    pub db: sqlx::PgPool,
    pub store: Store,
    pub args: FileArgs,
}

/// What a worker asks for.
#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(super) enum FileOp {
    /// The bytes of upload `upload` (a handle's `id`).
    Read { upload: String },
    /// Store the frame's body as a file to download.
    Store {
        name: String,
        #[serde(default)]
        content_type: Option<String>,
    },
}

/// Answers one file frame: a header (`ok`, `error` or `link`) and a body (the bytes
/// read).
pub(super) async fn answer(
    io: Option<&Arc<FileIo>>,
    app: &str,
    job: Option<&str>,
    op: Value,
    body: Vec<u8>,
) -> (Value, Vec<u8>) {
    let refused = |m: String| (json!({"ok": false, "error": m}), Vec::new());
    let Some(io) = io else {
        return refused("files are not available on this runner".into());
    };
    let op: FileOp = match serde_json::from_value(op) {
        Ok(op) => op,
        Err(e) => return refused(format!("bad file request: {e}")),
    };
    let done = match op {
        FileOp::Read { upload } => files::read_upload(&io.db, &io.store, app, &upload)
            .await
            .map(|b| (json!({"ok": true}), b.to_vec())),
        FileOp::Store { name, content_type } => files::store_download(
            &io.db,
            &io.store,
            &io.args,
            app,
            job,
            &name,
            content_type
                .as_deref()
                .unwrap_or("application/octet-stream"),
            Bytes::from(body),
        )
        .await
        .map(|link| (json!({"ok": true, "link": link}), Vec::new())),
    };
    match done {
        Ok(r) => r,
        Err(FileError::Refused(m)) => refused(m),
        Err(FileError::Internal(m)) => {
            tracing::error!(app, error = %m, "app file request failed");
            refused("the file store is not available right now".into())
        }
    }
}

//! The browser files of an app's current bundle, held in memory.
//!
//! The catalogue gives an app's revision (the stream sequence of its current
//! `app.updated` event). The event at that sequence names the bundle (sha256 and
//! object-store key); the bundle is read once, its public files kept, keyed by
//! (app, sha256). A deploy moves the revision, so the next request reads the new
//! event and serves the new files at once; a rollback to a bundle still cached costs
//! nothing.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use moka::future::Cache;
use nr_contracts::events::{AppChange, AppUpdated};
use nr_contracts::{decode, subjects, Envelope};

use crate::AppState;

use nr_contracts::bundle::{is_ignored, MAX_PUBLIC_BYTES, MAX_PUBLIC_FILE_BYTES};
pub(crate) use nr_contracts::bundle::{is_private, is_safe_path};

/// Memory the cached bundles may take in total.
const MAX_CACHE_BYTES: u64 = 256 * 1024 * 1024;
/// Bundles unpacked at once: each holds up to `MAX_PUBLIC_BYTES` while it is read, on
/// top of the cache.
const LOADS_AT_ONCE: usize = 2;

/// An app's public browser files (paths relative to the app's root, `/`-separated).
pub(crate) struct Bundle {
    pub(crate) sha256: String,
    pub(crate) files: HashMap<String, Bytes>,
}

impl Bundle {
    pub(crate) fn get(&self, path: &str) -> Option<&Bytes> {
        self.files.get(path)
    }

    fn weight(&self) -> u32 {
        let total: usize = self.files.iter().map(|(k, v)| k.len() + v.len()).sum();
        u32::try_from(total).unwrap_or(u32::MAX)
    }
}

#[derive(Clone)]
struct BundleRef {
    sha256: String,
    key: String,
}

pub(crate) struct Bundles {
    /// (app, rev) → which bundle that revision is.
    refs: Cache<(String, u64), BundleRef>,
    /// (app, sha256) → the bundle's public files.
    files: Cache<(String, String), Arc<Bundle>>,
    loads: Arc<tokio::sync::Semaphore>,
}

impl Bundles {
    pub(crate) fn new() -> Self {
        Self {
            refs: Cache::builder().max_capacity(4096).build(),
            files: Cache::builder()
                .max_capacity(MAX_CACHE_BYTES)
                .weigher(|_k, v: &Arc<Bundle>| v.weight().max(1))
                .time_to_idle(Duration::from_secs(3600))
                .build(),
            loads: Arc::new(tokio::sync::Semaphore::new(LOADS_AT_ONCE)),
        }
    }

    /// The bundle of `app` at revision `rev` (the catalogue's current one).
    pub(crate) async fn get(
        &self,
        state: &AppState,
        app: &str,
        rev: u64,
    ) -> anyhow::Result<Arc<Bundle>> {
        let r = self
            .refs
            .try_get_with((app.to_owned(), rev), bundle_ref(state, app, rev))
            .await
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let key = r.key.clone();
        let sha = r.sha256.clone();
        self.files
            .try_get_with(
                (app.to_owned(), r.sha256),
                load(state, key, sha, self.loads.clone()),
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e:#}"))
    }
}

/// Reads the `app.updated` event at `rev` for the bundle's name.
async fn bundle_ref(state: &AppState, app: &str, rev: u64) -> anyhow::Result<BundleRef> {
    let stream = state
        .js
        .get_stream_no_info(subjects::STREAM_APPS)
        .await
        .context("cannot open the app catalogue stream")?;
    let msg = stream
        .get_raw_message(rev)
        .await
        .with_context(|| format!("cannot read app event {rev}"))?;
    let event: Envelope<AppUpdated> =
        decode(&msg.payload).with_context(|| format!("app event {rev} is not readable"))?;
    let d = event.data;
    if d.app_name != app || d.change == AppChange::Deleted {
        anyhow::bail!("app event {rev} is not a current version of {app}");
    }
    Ok(BundleRef {
        sha256: d.sha256,
        key: d.bundle_key,
    })
}

async fn load(
    state: &AppState,
    key: String,
    sha256: String,
    loads: Arc<tokio::sync::Semaphore>,
) -> anyhow::Result<Arc<Bundle>> {
    let _turn = loads
        .acquire_owned()
        .await
        .context("the gateway is stopping")?;
    let path = object_store::path::Path::from(key.as_str());
    let bytes = state
        .store
        .get(&path)
        .await
        .with_context(|| format!("cannot read bundle {key}"))?
        .bytes()
        .await
        .with_context(|| format!("cannot read bundle {key}"))?;
    let files = tokio::task::spawn_blocking(move || public_files(&bytes))
        .await
        .context("bundle unpacking stopped")??;
    Ok(Arc::new(Bundle { sha256, files }))
}

/// Unpacks the public files of a bundle zip. Deploy has vetted it: the root is found,
/// and ignored entries skipped, by the rules deploy checked the files with
/// ([`nr_contracts::bundle`]); unsafe names are skipped, and no more than
/// `MAX_PUBLIC_BYTES` is kept (deploy refuses more; an older bundle's extra files
/// answer 404 and are logged).
fn public_files(bytes: &[u8]) -> anyhow::Result<HashMap<String, Bytes>> {
    let mut zip =
        zip::ZipArchive::new(std::io::Cursor::new(bytes)).context("bundle is not a zip")?;
    let mut names = Vec::with_capacity(zip.len());
    for i in 0..zip.len() {
        let entry = zip.by_index_raw(i).context("bad zip entry")?;
        names.push(
            entry
                .name()
                .context("bad zip entry name")?
                .replace('\\', "/"),
        );
    }
    let prefix = nr_contracts::bundle::root(names.iter().map(String::as_str))
        .context("the bundle has no manifest.json at its root")?;
    let mut files = HashMap::new();
    let mut kept = 0u64;
    for (i, name) in names.iter().enumerate() {
        if is_ignored(name) {
            continue;
        }
        let Some(rel) = name.strip_prefix(&prefix) else {
            continue;
        };
        if rel.ends_with('/') || !is_safe_path(rel) || is_private(rel) {
            continue;
        }
        let mut entry = zip.by_index(i).context("bad zip entry")?;
        if entry.is_dir() || entry.is_symlink() {
            continue;
        }
        let room = MAX_PUBLIC_FILE_BYTES.min(MAX_PUBLIC_BYTES - kept);
        if entry.size() > room {
            tracing::warn!(
                file = rel,
                size = entry.size(),
                kept,
                "bundle file over the size the gateway serves; skipped"
            );
            continue;
        }
        let mut buf = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0));
        (&mut entry)
            .take(room + 1)
            .read_to_end(&mut buf)
            .with_context(|| format!("cannot inflate {rel}"))?;
        if buf.len() as u64 > room {
            continue;
        }
        kept += buf.len() as u64;
        files.insert(rel.to_owned(), Bytes::from(buf));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpacks_public_files_and_strips_a_wrapping_folder() {
        use std::io::Write;
        let mut buf = std::io::Cursor::new(Vec::new());
        {
            let mut w = zip::ZipWriter::new(&mut buf);
            let opts = zip::write::SimpleFileOptions::default();
            for (name, body) in [
                // Ahead of the real folder: metadata, never the root.
                ("__MACOSX/manifest.json", "{}"),
                ("__MACOSX/index.js", "unchecked"),
                ("app/manifest.json", "{}"),
                ("app/main.py", "x"),
                ("app/index.js", "js"),
                ("app/libs/a.js", "lib"),
                ("app/img/a.svg", "<svg/>"),
            ] {
                w.start_file(name, opts).unwrap();
                w.write_all(body.as_bytes()).unwrap();
            }
            w.finish().unwrap();
        }
        let files = public_files(buf.get_ref()).unwrap();
        let mut names: Vec<&String> = files.keys().collect();
        names.sort();
        assert_eq!(names, ["img/a.svg", "index.js"]);
        assert_eq!(&files["index.js"][..], b"js");
    }

    #[test]
    fn keeps_no_more_page_bytes_than_a_bundle_may_hold() {
        // A bundle deployed before deploy refused it: three page files of 30 MiB.
        use std::io::Write;
        let part = vec![0u8; 30 << 20];
        let mut buf = std::io::Cursor::new(Vec::new());
        {
            let mut w = zip::ZipWriter::new(&mut buf);
            let opts = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored);
            w.start_file("manifest.json", opts).unwrap();
            for name in ["a.png", "b.png", "c.png"] {
                w.start_file(name, opts).unwrap();
                w.write_all(&part).unwrap();
            }
            w.finish().unwrap();
        }
        let files = public_files(buf.get_ref()).unwrap();
        let kept: u64 = files.values().map(|b| b.len() as u64).sum();
        assert_eq!(files.len(), 2);
        assert!(kept <= MAX_PUBLIC_BYTES, "{kept}");
    }
}

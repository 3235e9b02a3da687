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

/// Largest single file kept (larger ones answer 404 and are logged).
const MAX_FILE_BYTES: u64 = 32 * 1024 * 1024;
/// Memory the cached bundles may take in total.
const MAX_CACHE_BYTES: u64 = 256 * 1024 * 1024;

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
            .try_get_with((app.to_owned(), r.sha256), load(state, key, sha))
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

async fn load(state: &AppState, key: String, sha256: String) -> anyhow::Result<Arc<Bundle>> {
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

/// Files the browser may fetch: not the Python side (`main.py`, any `.py`/`.pyc`,
/// `libs/`, `__pycache__/`), not `manifest.json`, not dot-files.
pub(crate) fn is_private(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower == "manifest.json"
        || lower.ends_with(".py")
        || lower.ends_with(".pyc")
        || lower.ends_with(".pyo")
        || lower.split('/').next() == Some("libs")
        || lower
            .split('/')
            .any(|seg| seg.starts_with('.') || seg == "__pycache__")
}

/// A safe relative path: `/`-separated, no empty, `.` or `..` segments, no
/// backslashes, colons or control characters.
pub(crate) fn is_safe_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 512
        && !path.starts_with('/')
        && !path.contains(['\\', ':', '\0'])
        && !path.chars().any(char::is_control)
        && path
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..")
}

/// Unpacks the public files of a bundle zip. Deploy has vetted it; a single wrapping
/// folder is stripped as the runner does, and unsafe names are skipped.
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
    let prefix = if names.iter().any(|n| n == "manifest.json") {
        String::new()
    } else {
        names
            .iter()
            .find(|n| n.ends_with("/manifest.json") && n.matches('/').count() == 1)
            .map(|n| n.trim_end_matches("manifest.json").to_owned())
            .unwrap_or_default()
    };
    let mut files = HashMap::new();
    for (i, name) in names.iter().enumerate() {
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
        if entry.size() > MAX_FILE_BYTES {
            tracing::warn!(
                file = rel,
                size = entry.size(),
                "bundle file too large to serve; skipped"
            );
            continue;
        }
        let mut buf = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0));
        (&mut entry)
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut buf)
            .with_context(|| format!("cannot inflate {rel}"))?;
        if buf.len() as u64 > MAX_FILE_BYTES {
            continue;
        }
        files.insert(rel.to_owned(), Bytes::from(buf));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_unsafe_paths() {
        for p in [
            "main.py",
            "manifest.json",
            "libs/x/y.js",
            "LIBS/a",
            "a/b.py",
            ".env",
            "x/__pycache__/m.pyc",
        ] {
            assert!(is_private(p), "{p}");
        }
        for p in [
            "index.html",
            "index.js",
            "style.css",
            "img/logo.png",
            "libsx.js",
            "mylibs/a.js",
        ] {
            assert!(!is_private(p), "{p}");
        }
        for p in [
            "../x",
            "a/../b",
            "/etc/passwd",
            "a//b",
            "a\\b",
            "c:/x",
            "./a",
            "",
            "a/",
        ] {
            assert!(!is_safe_path(p), "{p:?}");
        }
        assert!(is_safe_path("img/a b.png"));
    }

    #[test]
    fn unpacks_public_files_and_strips_a_wrapping_folder() {
        use std::io::Write;
        let mut buf = std::io::Cursor::new(Vec::new());
        {
            let mut w = zip::ZipWriter::new(&mut buf);
            let opts = zip::write::SimpleFileOptions::default();
            for (name, body) in [
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
    }
}

//! Opens the bundle object store from a URL or a path.

use std::sync::Arc;

use anyhow::Context as _;
use object_store::{local::LocalFileSystem, memory::InMemory, ObjectStore};

pub type Store = Arc<dyn ObjectStore>;

/// `memory://`, `file:///abs/dir` or a plain directory path (created when missing).
pub fn open(url: &str) -> anyhow::Result<Store> {
    if url == "memory://" {
        return Ok(Arc::new(InMemory::new()));
    }
    let dir = match url.strip_prefix("file://") {
        Some(path) => path.to_owned(),
        None if url.contains("://") => {
            anyhow::bail!("unsupported object store URL {url:?}: use a directory path, file:///dir or memory://")
        }
        None => url.to_owned(),
    };
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create object store directory {dir}"))?;
    let store = LocalFileSystem::new_with_prefix(&dir)
        .with_context(|| format!("cannot open object store directory {dir}"))?;
    Ok(Arc::new(store))
}

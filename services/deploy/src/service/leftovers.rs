//! What deploys cut short left behind: an upload staged by a gateway that died before
//! asking (or a deploy service that died before removing it) stays in the object
//! store's `staging/`, and a check's scratch directory stays on disk when its deploy
//! service is killed outright. Both are removed at start and every hour after.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use futures::StreamExt as _;
use nr_infra::store::Store;
use object_store::path::Path;
use tokio_util::sync::CancellationToken;

/// A staged upload older than this is nobody's: no deploy may take longer
/// (`NR_DEPLOY_TIMEOUT_S` is at most a day), and a deploy reads its upload first.
pub(crate) const STAGED_MAX_AGE: Duration = Duration::from_secs(86_400);
/// How often the sweep runs.
const EVERY: Duration = Duration::from_secs(3_600);

/// Sweeps now and every [`EVERY`] until `stop`.
pub(crate) fn spawn(store: Store, scratch_parent: PathBuf, stop: CancellationToken) {
    tokio::spawn(async move {
        loop {
            let parent = scratch_parent.clone();
            let dirs = tokio::task::spawn_blocking(move || {
                nr_infra::leftovers::sweep(&parent, crate::check::SCRATCH_PREFIX, None)
            })
            .await
            .unwrap_or(0);
            let staged = match staged_uploads(&store, SystemTime::now()).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot look for stale staged uploads");
                    0
                }
            };
            if dirs + staged > 0 {
                tracing::info!(
                    scratch_dirs = dirs,
                    staged_uploads = staged,
                    "removed what cut-short deploys left"
                );
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(EVERY) => {}
            }
        }
    });
}

/// Removes the staged uploads older than [`STAGED_MAX_AGE`] at `now`; returns how many.
pub(crate) async fn staged_uploads(store: &Store, now: SystemTime) -> object_store::Result<usize> {
    let Some(cutoff) = now
        .checked_sub(STAGED_MAX_AGE)
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
    else {
        return Ok(0);
    };
    let prefix = Path::from("staging");
    let mut listing = store.list(Some(&prefix));
    let mut stale = Vec::new();
    while let Some(meta) = listing.next().await {
        let meta = meta?;
        if meta.last_modified.timestamp() < cutoff.as_secs() as i64 {
            stale.push(meta.location);
        }
    }
    drop(listing);
    let mut removed = 0;
    for location in stale {
        match store.delete(&location).await {
            Ok(()) => removed += 1,
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => {
                tracing::warn!(upload = %location, error = %e, "cannot remove a stale staged upload")
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The platform's default store (a directory), with a file's age set on disk.
    #[tokio::test]
    async fn only_staged_uploads_older_than_a_day_go() {
        let dir = tempfile::tempdir().unwrap();
        let store = nr_infra::store::open(dir.path().to_str().unwrap()).unwrap();
        for key in ["staging/old.zip", "staging/new.zip", "bundles/a/old.zip"] {
            store
                .put(&Path::from(key), bytes::Bytes::from_static(b"zip").into())
                .await
                .unwrap();
        }
        let two_days = SystemTime::now() - Duration::from_secs(2 * 86_400);
        for key in ["staging/old.zip", "bundles/a/old.zip"] {
            std::fs::File::options()
                .write(true)
                .open(dir.path().join(key))
                .unwrap()
                .set_modified(two_days)
                .unwrap();
        }
        assert_eq!(staged_uploads(&store, SystemTime::now()).await.unwrap(), 1);
        assert!(!dir.path().join("staging/old.zip").exists());
        assert!(dir.path().join("staging/new.zip").exists());
        assert!(
            dir.path().join("bundles/a/old.zip").exists(),
            "a bundle went"
        );
    }
}

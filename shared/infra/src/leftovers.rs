//! Directories a process killed outright leaves behind. A runner's directory (its
//! unpacked bundles, host script and app homes) and a deploy check's scratch directory
//! are removed by their owner when it stops; after `kill -9` or a power cut they stayed
//! for good, one more set per start. Each such directory now holds a lock file
//! ([`hold`]) for as long as its process lives; the next start of a process of the
//! same kind removes ([`sweep`]) every sibling whose lock nobody holds.

use std::fs::File;
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

/// The lock file inside a held directory.
pub const LOCK_FILE: &str = ".held";

/// A directory held by this process until this is dropped (the lock goes with the
/// process, however it ends; the programs it starts do not inherit it).
#[derive(Debug)]
pub struct Held {
    _lock: Flock<File>,
}

/// Holds `dir` (which must exist) for this process.
pub fn hold(dir: &Path) -> std::io::Result<Held> {
    use std::os::unix::fs::OpenOptionsExt as _;
    // Locked under another name and then renamed, so that no sweep ever finds the lock
    // file unlocked while its process lives. Closed to app users, who could otherwise
    // hold it and keep the directory.
    let taking = dir.join(format!("{LOCK_FILE}.{}", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .mode(0o600)
        .create(true)
        .truncate(false)
        .write(true)
        .open(&taking)?;
    let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| std::io::Error::from(e))?;
    let target = dir.join(LOCK_FILE);
    if target.exists() {
        // Held already (by this process or another), or left by a process that ended.
        let _ = std::fs::remove_file(&taking);
        let file = std::fs::OpenOptions::new().write(true).open(&target)?;
        let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock)
            .map_err(|(_, e)| std::io::Error::from(e))?;
        return Ok(Held { _lock: lock });
    }
    std::fs::rename(&taking, &target)?;
    Ok(Held { _lock: lock })
}

/// Removes the directories in `parent` whose names start with `prefix` and that no
/// living process holds, `keep` aside. Returns how many went; what cannot be removed is
/// logged and left.
pub fn sweep(parent: &Path, prefix: &str, keep: Option<&Path>) -> usize {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let named = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(prefix));
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if !named || !is_dir || Some(path.as_path()) == keep {
            continue;
        }
        // Taken here, the lock is held while the directory goes, so nothing can claim it
        // meanwhile.
        // No lock file: a release that held none runs there (an upgrade beside it); left
        // alone. A lock file that cannot be locked: its process lives.
        let Ok(file) = File::open(path.join(LOCK_FILE)) else {
            continue;
        };
        let Ok(lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) else {
            continue;
        };
        match remove_tree(&path) {
            Ok(()) => {
                removed += 1;
                tracing::info!(dir = %path.display(), "removed what a stopped process left");
            }
            Err(e) => {
                tracing::warn!(dir = %path.display(), error = %e, "cannot remove what a stopped process left")
            }
        }
        drop(lock);
    }
    removed
}

/// `remove_dir_all`, and again after making every directory in the tree writable by its
/// owner (an app may have made its own files read-only; root needs no such help).
fn remove_tree(path: &Path) -> std::io::Result<()> {
    if std::fs::remove_dir_all(path).is_ok() {
        return Ok(());
    }
    use std::os::unix::fs::PermissionsExt as _;
    let mut todo = vec![path.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&dir) else {
            continue;
        };
        if !meta.is_dir() {
            continue;
        }
        let mode = meta.permissions().mode() | 0o700;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode));
        if let Ok(entries) = std::fs::read_dir(&dir) {
            todo.extend(entries.flatten().map(|e| e.path()));
        }
    }
    std::fs::remove_dir_all(path)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_what_nobody_holds_goes() {
        let parent = tempfile::tempdir().unwrap();
        let make = |name: &str| {
            let dir = parent.path().join(name);
            std::fs::create_dir_all(dir.join("apps/a")).unwrap();
            std::fs::write(dir.join("apps/a/main.py"), "x").unwrap();
            dir
        };
        let live = make("runner-live");
        let _held = hold(&live).unwrap();
        let dead = make("runner-dead");
        drop(hold(&dead).unwrap());
        let mine = make("runner-mine");
        let unlocked = make("runner-unlocked");
        let other = make("other-dead");
        drop(hold(&other).unwrap());
        // A read-only directory inside (an app's own doing).
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(dead.join("apps/a"), std::fs::Permissions::from_mode(0o555))
                .unwrap();
        }

        assert_eq!(sweep(parent.path(), "runner-", Some(&mine)), 1);
        assert!(live.exists(), "a held directory was removed");
        assert!(!dead.exists(), "an unheld directory stayed");
        assert!(mine.exists(), "the caller's own directory was removed");
        assert!(
            unlocked.exists(),
            "a directory without a lock file was removed"
        );
        assert!(other.exists(), "a directory of another kind was removed");
        // The same directory cannot be held twice while it is held.
        assert!(hold(&live).is_err());
    }
}

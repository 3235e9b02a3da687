//! Directories a process killed outright leaves behind. A runner's directory (its
//! unpacked bundles, host script and app homes) and a deploy check's scratch directory
//! are removed by their owner when it stops; after `kill -9` or a power cut they stayed
//! for good, one more set per start. Each such directory now holds a lock file
//! ([`hold`]) for as long as its process lives; the next start of a process of the
//! same kind removes ([`sweep`]) every sibling whose lock nobody holds.

use std::fs::File;
use std::os::unix::fs::MetadataExt as _;
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
/// living process holds, `keep` aside. Only directories this user owns, whose lock files
/// it owns too, are looked at (`parent` may be a shared temp dir). Returns how many
/// went; what cannot be removed is logged and left.
pub fn sweep(parent: &Path, prefix: &str, keep: Option<&Path>) -> usize {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return 0;
    };
    let Some(me) = crate::contain::effective_uid() else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let named = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(prefix));
        // Not followed: a symlink is no directory of ours.
        let mine = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir() && m.uid() == me);
        if !named || !mine || Some(path.as_path()) == keep {
            continue;
        }
        let Some(locks) = unheld(&path, me) else {
            continue;
        };
        // Locked here, the lock files are held while the directory goes, so nothing can
        // claim it meanwhile. `remove_dir_all` follows no symlink.
        match std::fs::remove_dir_all(&path) {
            Ok(()) => {
                removed += 1;
                tracing::info!(dir = %path.display(), "removed what a stopped process left");
            }
            Err(e) => {
                tracing::warn!(dir = %path.display(), error = %e, "cannot remove what a stopped process left")
            }
        }
        drop(locks);
    }
    removed
}

/// How long a process may take between creating its lock file and locking it.
const TAKING: std::time::Duration = std::time::Duration::from_secs(60);

/// The locks of `dir`'s lock files (`.held`, and `.held.<pid>` of a process killed
/// while it took it, once older than [`TAKING`]), all taken: nobody holds the directory. `None` when one is held,
/// or there is none (a release that held none runs there: an upgrade beside it), or
/// one is not this user's.
fn unheld(dir: &Path, me: u32) -> Option<Vec<Flock<File>>> {
    let mut locks = Vec::new();
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name != LOCK_FILE && !name.starts_with(&format!("{LOCK_FILE}.")) {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
            return None;
        };
        if !meta.is_file() || meta.uid() != me {
            return None;
        }
        // A lock file being taken: created a moment ago, about to be locked and named
        // (`hold`). Only one old enough is a process's killed while it took it.
        let fresh = name != LOCK_FILE
            && meta
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_none_or(|age| age < TAKING);
        if fresh {
            return None;
        }
        let file = File::open(entry.path()).ok()?;
        locks.push(Flock::lock(file, FlockArg::LockExclusiveNonblock).ok()?);
    }
    (!locks.is_empty()).then_some(locks)
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
        // Killed between taking its lock file and naming it.
        let cut = make("runner-cut");
        drop(hold(&cut).unwrap());
        std::fs::rename(cut.join(LOCK_FILE), cut.join(format!("{LOCK_FILE}.77"))).unwrap();
        let long_ago = std::time::SystemTime::now() - 2 * TAKING;
        File::options()
            .write(true)
            .open(cut.join(format!("{LOCK_FILE}.77")))
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
        // Taking its lock right now: the lock file exists and is not locked yet.
        let taking = make("runner-taking");
        File::create(taking.join(format!("{LOCK_FILE}.78"))).unwrap();
        // Another user's (a shared temp dir): never touched.
        let theirs = make("runner-theirs");
        drop(hold(&theirs).unwrap());
        for p in [theirs.clone(), theirs.join(LOCK_FILE)] {
            std::os::unix::fs::chown(&p, Some(65534), None).unwrap();
        }
        // A symlink to a directory of ours is no directory to sweep.
        let target = make("elsewhere");
        drop(hold(&target).unwrap());
        std::os::unix::fs::symlink(&target, parent.path().join("runner-link")).unwrap();
        assert_eq!(sweep(parent.path(), "runner-", Some(&mine)), 2);
        assert!(live.exists(), "a held directory was removed");
        assert!(
            taking.exists(),
            "a directory whose lock was being taken was removed"
        );
        assert!(!dead.exists(), "an unheld directory stayed");
        assert!(
            !cut.exists(),
            "a directory whose lock was never named stayed"
        );
        assert!(theirs.exists(), "another user's directory was removed");
        assert!(target.exists(), "a symlinked directory was removed");
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

//! The process's limit on open files. A server holds a descriptor for every
//! connection, worker socket, pipe and file it has open, and the usual soft limit of
//! 1024 is below the gateway's default connection cap: past it, accepting, opening a
//! file or spawning a worker fails for every service in the process.

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// Raises the soft limit on open files to the hard limit (as the Go runtime does for
/// its servers) and returns the limit now in force, or `None` where it cannot be read.
/// App processes inherit it; they could raise their soft limit that far themselves.
pub fn raise() -> Option<u64> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return Some(hard);
    }
    Some(soft)
}

/// The connections a listener may hold when the process may open `files` files: at
/// most three quarters of them, so the rest of the process (the runner's workers,
/// database and NATS connections, files) keeps a quarter however many clients connect.
pub fn connection_cap(wanted: usize, files: Option<u64>) -> usize {
    match files {
        Some(files) => {
            let room = usize::try_from(files / 4 * 3).unwrap_or(usize::MAX);
            wanted.min(room).max(1)
        }
        None => wanted.max(1),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        setrlimit(Resource::RLIMIT_NOFILE, hard.min(256), hard).unwrap();
        let now = raise().unwrap();
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!(now, soft);
        assert_eq!(soft, hard);
    }

    #[test]
    fn the_connection_cap_leaves_a_quarter_of_the_files() {
        assert_eq!(connection_cap(4096, Some(1024)), 768);
        assert_eq!(connection_cap(4096, Some(1_048_576)), 4096);
        assert_eq!(connection_cap(4096, None), 4096);
        assert_eq!(connection_cap(0, Some(1024)), 1);
        assert_eq!(connection_cap(4096, Some(0)), 1);
    }
}

//! Containment of app processes, shared by the runner and deploy's import check: the
//! environment built from an allow-list, the app's OS user, file modes, and killing an
//! app's process tree whole.
//!
//! The kill relies on the Python side making each root process (host, worker, import
//! check) a child subreaper: a grandchild orphaned by `setsid` and a double fork is
//! re-parented to that root instead of init, so it stays in the tree walked here.

use std::collections::HashMap;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

/// Whether this process can start others as another user (it runs as root).
pub fn can_switch_users() -> bool {
    effective_uid() == Some(0)
}

pub(crate) fn effective_uid() -> Option<u32> {
    status_uid("self", 2)
}

/// One uid of the `Uid:` line of `/proc/<pid>/status` (1 real, 2 effective).
fn status_uid(pid: &str, field: usize) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(field)?.parse().ok()
}

/// The warning logged (and shown in readiness) where apps cannot get users of their own.
pub const NO_SWITCH_WARNING: &str = "the platform is not running as root, so app processes run as the platform's own user: they can read its files, its /proc/<pid>/environ and signal it. Their environment is still scrubbed. Run the runner and deploy as root (they drop to one uid per app from NR_APP_UID_BASE) for containment";

/// What an app process is started with.
pub struct Launch<'a> {
    /// The app's OS uid (also its gid); `None` where the platform cannot switch users.
    pub uid: Option<u32>,
    /// The app's private writable directory: `HOME` and `TMPDIR`.
    pub home: &'a Path,
    /// `PYTHONPATH`: the SDK and the platform's script.
    pub python_path: &'a Path,
    /// The app's own `DATABASE_URL` (its role), if any.
    pub database_url: Option<&'a str>,
    /// `NR_APP_*`, `NR_RUNNER_ID` and the limits the platform sets.
    pub platform: Vec<(String, String)>,
    /// The app's own variables and secrets; a name the platform sets is ignored.
    pub app: &'a [(String, String)],
}

/// Prepares `cmd` for an app process: an empty environment filled from the allow-list,
/// the app's uid/gid (std then drops supplementary groups), and a process group of its
/// own.
pub fn launch(cmd: &mut tokio::process::Command, l: &Launch<'_>) {
    let mut env: Vec<(String, String)> = vec![
        (
            "PATH".into(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
        ),
        (
            "LANG".into(),
            std::env::var("LANG").unwrap_or_else(|_| "C.UTF-8".into()),
        ),
        ("HOME".into(), l.home.to_string_lossy().into_owned()),
        ("TMPDIR".into(), l.home.to_string_lossy().into_owned()),
        (
            "PYTHONPATH".into(),
            l.python_path.to_string_lossy().into_owned(),
        ),
        ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
        ("PYTHONNOUSERSITE".into(), "1".into()),
    ];
    if let Some(uid) = l.uid {
        let user = format!("nr-app-{uid}");
        env.push(("USER".into(), user.clone()));
        env.push(("LOGNAME".into(), user));
    }
    if let Some(url) = l.database_url {
        env.push(("DATABASE_URL".into(), url.to_owned()));
    }
    env.extend(l.platform.iter().cloned());
    let reserved: Vec<String> = env.iter().map(|(k, _)| k.clone()).collect();
    for (k, v) in l.app {
        // A name reserved since it was set is left out too.
        if !reserved.iter().any(|r| r == k) && crate::appenv::check_name(k).is_ok() {
            env.push((k.clone(), v.clone()));
        }
    }
    cmd.env_clear().envs(env).process_group(0);
    if let Some(uid) = l.uid {
        cmd.uid(uid).gid(uid);
    }
}

/// One line of `/proc/<pid>/stat`: parent pid and whether it is a zombie.
fn stat(pid: i32) -> Option<(i32, bool)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields resume after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((ppid, matches!(state, "Z" | "X")))
}

/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ, 100 on Linux).
pub const TICKS_PER_SECOND: u64 = 100;

/// CPU time `pid` has used, all its threads, in clock ticks: user and system
/// (`/proc/<pid>/stat` fields 14 and 15).
pub fn cpu_ticks(pid: i32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime, stime))
}

/// The real uid of `pid`: the user who started it, whatever a set-user-ID program made
/// its effective one (the owner of `/proc/<pid>` follows the effective uid, root's for
/// such a program).
fn owner(pid: i32) -> Option<u32> {
    status_uid(&pid.to_string(), 1)
}

/// Whether `pid` has ended and waits to be reaped (a zombie).
fn ended(pid: i32) -> bool {
    stat(pid).is_some_and(|(_, zombie)| zombie)
}

/// Live (not zombie) descendants of `root`.
pub fn descendants(root: i32) -> Vec<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if let Some((ppid, zombie)) = stat(pid) {
            if !zombie {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        if let Some(kids) = children.get(&p) {
            for &k in kids {
                out.push(k);
                todo.push(k);
            }
        }
    }
    out
}

/// Direct children of `pid` still running: an ended one (a zombie) holds nothing but
/// its pid until its parent reaps it, and there is nothing in it to kill.
pub fn live_children(pid: i32) -> Vec<i32> {
    children(pid).into_iter().filter(|p| !ended(*p)).collect()
}

/// Direct children of `pid` (from `/proc/<pid>/task/*/children`), zombies included.
pub fn children(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(t.path().join("children")) {
            out.extend(
                text.split_whitespace()
                    .filter_map(|s| s.parse::<i32>().ok()),
            );
        }
    }
    out
}

/// Kills `root` and every process under it. The root is stopped first so it can neither
/// fork nor reap; descendants are killed until none is left (orphans re-parent to the
/// root, a subreaper, and are found on the next pass); then the root and its group go.
/// With `uid`, only processes of that user are signalled, so a recycled pid of someone
/// else's process is never hit.
pub fn kill_tree(root: i32, uid: Option<u32>) {
    if root <= 1 {
        return;
    }
    let ours = |pid: i32| uid.is_none() || owner(pid) == uid;
    if !ours(root) {
        return;
    }
    let _ = kill(Pid::from_raw(root), Signal::SIGSTOP);
    for _ in 0..200 {
        let left: Vec<i32> = descendants(root).into_iter().filter(|p| ours(*p)).collect();
        if left.is_empty() {
            break;
        }
        for p in left {
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let _ = killpg(Pid::from_raw(root), Signal::SIGKILL);
    let _ = kill(Pid::from_raw(root), Signal::SIGKILL);
}

/// Makes `dir` and everything in it readable by the app's group only: owner root (the
/// platform), group the app's gid, directories 0750, files 0640. Without a gid (no user
/// switching) the modes are left as they are.
pub fn share_read_only(dir: &Path, gid: Option<u32>) -> std::io::Result<()> {
    let Some(gid) = gid else {
        return Ok(());
    };
    let mut todo = vec![dir.to_path_buf()];
    while let Some(p) = todo.pop() {
        let meta = std::fs::symlink_metadata(&p)?;
        if meta.file_type().is_symlink() {
            continue;
        }
        std::os::unix::fs::chown(&p, Some(0), Some(gid))?;
        if meta.is_dir() {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o750))?;
            for e in std::fs::read_dir(&p)? {
                todo.push(e?.path());
            }
        } else {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640))?;
        }
    }
    Ok(())
}

/// Creates `dir` (when missing) as a folder only the app's group may enter: owner root,
/// group `gid`, 0750. Without a gid it is only created.
pub fn group_dir(dir: &Path, gid: Option<u32>) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    if let Some(gid) = gid {
        std::os::unix::fs::chown(dir, Some(0), Some(gid))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750))?;
    }
    Ok(())
}

/// Platform files every app may read and none may change (the host script, the SDK):
/// directories 0755, files 0644, owned by the platform.
pub fn public_read_only(dir: &Path) -> std::io::Result<()> {
    let mut todo = vec![dir.to_path_buf()];
    while let Some(p) = todo.pop() {
        let meta = std::fs::symlink_metadata(&p)?;
        if meta.is_dir() {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
            for e in std::fs::read_dir(&p)? {
                todo.push(e?.path());
            }
        } else if meta.is_file() {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644))?;
        }
    }
    Ok(())
}

/// Creates `dir` (0700) as the app's private writable directory, owned by its uid.
pub fn private_dir(dir: &Path, uid: Option<u32>) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    if let Some(uid) = uid {
        std::os::unix::fs::chown(dir, Some(uid), Some(uid))?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Lets other users pass through `dir` without listing it (0711).
pub fn traversable(dir: &Path) -> std::io::Result<()> {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))
}

/// Checks that app uids can run `python` (a path, or a name looked up on `PATH`): every
/// directory above the resolved interpreter must be traversable and the file
/// executable by others. Returns a clear error naming the blocking path and the fix.
pub fn check_interpreter(python: &str) -> Result<(), String> {
    let path = if python.contains('/') {
        PathBuf::from(python)
    } else {
        let found = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(python))
                .find(|p| p.is_file())
        });
        match found {
            Some(p) => p,
            None => return Err(format!("the Python interpreter {python} is not on PATH")),
        }
    };
    let real = std::fs::canonicalize(&path).map_err(|e| {
        format!(
            "cannot resolve the Python interpreter {}: {e}",
            path.display()
        )
    })?;
    let fix = "app users cannot run it: install the interpreter (and its packages) where every user can reach it, e.g. a venv made from /usr/bin/python3, or chmod o+x the blocking directory";
    if let Some(blocking) = real.parent().and_then(untraversable_ancestor) {
        return Err(format!(
            "the Python interpreter {} lies under {}, which other users cannot pass through (no o+x): {fix}",
            real.display(),
            blocking.display()
        ));
    }
    let mode = std::fs::metadata(&real).map(|m| m.mode()).unwrap_or(0);
    if mode & 0o001 == 0 {
        return Err(format!(
            "the Python interpreter {} is not executable by other users: {fix}",
            real.display()
        ));
    }
    Ok(())
}

/// The first ancestor of `path` (itself included) that other users cannot pass through.
pub fn untraversable_ancestor(path: &Path) -> Option<PathBuf> {
    let abs = std::path::absolute(path).ok()?;
    abs.ancestors()
        .find(|a| {
            std::fs::metadata(a)
                .map(|m| m.mode() & 0o001 == 0)
                .unwrap_or(false)
        })
        .map(Path::to_path_buf)
}

/// Pids of the app processes this process started and keeps (hosts, import checks):
/// `reap_strays` leaves them alone. Held while spawning so a sweep never sees a new
/// root before it is registered.
static ROOTS: std::sync::Mutex<Vec<i32>> = std::sync::Mutex::new(Vec::new());

fn roots() -> std::sync::MutexGuard<'static, Vec<i32>> {
    ROOTS.lock().unwrap_or_else(|p| p.into_inner())
}

/// Spawns `cmd` and registers the child as a root app process.
pub fn spawn_root(cmd: &mut tokio::process::Command) -> std::io::Result<tokio::process::Child> {
    let mut roots = roots();
    let child = cmd.spawn()?;
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        roots.push(pid);
    }
    Ok(child)
}

/// Forgets a root app process (it was killed or has ended).
pub fn forget_root(pid: i32) {
    roots().retain(|p| *p != pid);
}

/// Makes this process a child subreaper: an app process orphaned when its root died
/// (an app that killed its own host) is re-parented here rather than to init, where
/// `reap_strays` finds it.
pub fn adopt_orphans() {
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        tracing::warn!(error = %e, "cannot become a child subreaper: orphaned app processes go to init");
    }
}

/// Whether `uid` is an app's: in `[base, base + count)`.
fn in_range(uid: u32, base: u32, count: u32) -> bool {
    uid >= base && u64::from(uid) < u64::from(base) + u64::from(count)
}

/// Kills app processes (uid in `[base, base + count)`) that init adopted: what a runner
/// or deploy killed outright (SIGKILL, the OOM killer) left running or stopped. A live
/// service's app processes are never init's children: each root is a child of its service
/// and everything under a root re-parents to a subreaper inside the tree. Skipped when
/// this process is init itself (a container's pid 1): its own are `reap_strays`'.
/// Returns how many trees it killed.
pub fn reap_orphans(base: u32, count: u32) -> usize {
    if std::process::id() == 1 {
        return 0;
    }
    let mut killed = 0;
    for pid in live_children(1) {
        let Some(uid) = owner(pid).filter(|u| in_range(*u, base, count)) else {
            continue;
        };
        kill_tree(pid, Some(uid));
        killed += 1;
    }
    killed
}

/// Kills app processes of the uid range that nothing else will: this process's strays
/// (`reap_strays`) and init's adoptees (`reap_orphans`); logs what init had adopted.
pub fn reap(base: u32, count: u32) {
    reap_strays(base, count);
    let orphans = reap_orphans(base, count);
    if orphans > 0 {
        tracing::warn!(
            orphans,
            "killed app processes left running by a runner or deploy that died"
        );
    }
}

/// [`reap`] every second (the first at once) until `stop`: for a service that starts app
/// processes and has no sweep of its own (deploy, between its import checks).
pub async fn reap_every_second(base: u32, count: u32, stop: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => reap(base, count),
        }
    }
}

/// Kills and reaps this process's children that run as an app uid in
/// `[base, base + count)` and are not registered roots.
pub fn reap_strays(base: u32, count: u32) {
    let me = std::process::id();
    let Ok(me) = i32::try_from(me) else { return };
    let roots = roots();
    for pid in children(me) {
        if roots.contains(&pid) {
            continue;
        }
        let Some(uid) = owner(pid).filter(|u| in_range(*u, base, count)) else {
            continue;
        };
        if !ended(pid) {
            kill_tree(pid, Some(uid));
        }
        let _ = nix::sys::wait::waitpid(
            Pid::from_raw(pid),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        );
    }
}

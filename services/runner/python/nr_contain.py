"""NodeRouter containment helpers, shared by the runner's app host (``nr_host.py``) and
the deploy import check (``nr_check.py``).

Both run as the app's OS user, with a scrubbed environment and this file in a
read-only directory on ``PYTHONPATH``; nothing here writes a file. The helpers: a
child subreaper (so whatever app code starts stays under the process to be killed),
the hard limits the platform sets, and the kill of every descendant. (Imports of one
app are kept apart by a lock the platform takes before starting them, not here.)
"""

import os
import signal
import sys
import time

_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_NO_NEW_PRIVS = 38
_WALL = 0x40000000  # waitpid's __WALL: children with any exit signal (clone() included)


def log(msg):
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def env_int(name):
    """A non-negative integer from the environment (0 when unset or not a number)."""
    try:
        return max(0, int(os.environ.get(name, "0")))
    except ValueError:
        return 0


def become_subreaper():
    """Orphans of this process's descendants (``setsid`` + double fork included) are
    re-parented here instead of to init, so they can always be found and killed."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            log("[noderouter] cannot become a child subreaper (errno %d)" % ctypes.get_errno())
    except Exception as exc:
        log("[noderouter] cannot become a child subreaper: %s" % exc)


def no_new_privs():
    """A set-user-ID or file-capability program the app runs gains nothing by it: it runs
    as the app's user, cannot act as root, and is killed with the rest of the app.
    Inherited by every descendant; nothing can undo it."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")


class CpuTimeLimitExceeded(BaseException):
    """Raised in app code that used its CPU seconds (a BaseException, so the app's own
    ``except Exception`` does not swallow it)."""


# What app code runs under the CPU limit ("the call", "the job", "the import of
# main.py"; empty between them, when SIGXCPU is ignored), the limit in seconds, how
# deep the host is in its own frame I/O (never cut half-way: the exception waits until
# the frame is whole), and whether the limit was reached meanwhile. Cleared by plain
# stores where it matters: a function call is where a pending signal is handled.
_CPU = {"for": "", "seconds": 0, "io": 0, "pending": False}


def cpu_limit_for(what):
    """Names the app code that runs from now on (empty: none)."""
    _CPU["pending"] = False
    _CPU["for"] = what


def _exceeded():
    return CpuTimeLimitExceeded(
        "%s used its CPU time limit of %s s and was stopped (limits.cpu_s in "
        "manifest.json sets it, up to the platform's NR_APP_CPU_S)" % (_CPU["for"], _CPU["seconds"])
    )


def _on_cpu_limit(signum, frame):
    """SIGXCPU: the soft CPU limit is reached. Raised in the app's code, so the caller
    gets an error naming the limit, with the traceback of where the code was; the kernel
    sends it again each CPU second while the code goes on. Inside the host's frame I/O
    it waits for the frame's end (:func:`cpu_io_end`). Code that never returns to
    Python (a long C loop) does not see it and is stopped otherwise (the runner, or the
    hard limit)."""
    if not _CPU["for"]:
        return
    if _CPU["io"]:
        _CPU["pending"] = True
        return
    raise _exceeded()


def cpu_io_begin():
    """The host starts a frame exchange that must not be cut (nests)."""
    _CPU["io"] += 1


def cpu_io_end():
    """The frame exchange is whole: a limit reached meanwhile is raised now."""
    _CPU["io"] = max(0, _CPU["io"] - 1)
    if not _CPU["io"] and _CPU["pending"] and _CPU["for"]:
        _CPU["pending"] = False
        raise _exceeded()


def catch_cpu_limit(seconds):
    """Turns SIGXCPU into :class:`CpuTimeLimitExceeded` in the app code named by
    :func:`cpu_limit_for`."""
    _CPU["seconds"] = seconds
    try:
        signal.signal(signal.SIGXCPU, _on_cpu_limit)
    except (ValueError, OSError, AttributeError) as exc:
        log("[noderouter] cannot catch SIGXCPU: %s" % exc)


def reap_ended():
    """Reaps the children that have ended and no one waited for (zombies), without
    waiting for those still running."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG | _WALL)
        except OSError:  # no child left (ChildProcessError) included
            return
        if pid == 0:
            return


def limit_process():
    """No privileges gained through set-user-ID programs (:func:`no_new_privs`); hard
    limits on processes of the app's uid and on file size (the app cannot raise them):
    ``NR_APP_MAX_PROCS`` and ``NR_APP_MAX_FILE_MB``. Files the app creates are
    its own (umask 077): what it writes to a shared directory such as ``/tmp`` is not
    readable by other apps' users."""
    import resource

    try:
        no_new_privs()
    except (OSError, AttributeError) as exc:
        log("[noderouter] cannot refuse new privileges: %s" % exc)
    os.umask(0o077)

    procs = env_int("NR_APP_MAX_PROCS")
    if procs > 0:
        resource.setrlimit(resource.RLIMIT_NPROC, (procs, procs))
    fsize = env_int("NR_APP_MAX_FILE_MB")
    if fsize > 0:
        limit = fsize * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def children(pid):
    """The direct children of ``pid``, from ``/proc`` (every thread's list)."""
    out = []
    try:
        tasks = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for tid in tasks:
        try:
            with open("/proc/%d/task/%s/children" % (pid, tid)) as fh:
                out.extend(int(x) for x in fh.read().split())
        except (OSError, ValueError):
            pass
    return out


def has_children():
    """One system call: false only when this process has no child at all, live or
    zombie. As a child subreaper, it then has no descendant either (orphans come back
    to it), so the /proc walk of :func:`kill_descendants` is needed only when something
    was started."""
    try:
        os.waitpid(-1, os.WNOHANG | _WALL)
    except ChildProcessError:
        return False
    except OSError:
        return True
    return True


def kill_descendants():
    """Kills every process this one started (and every orphan re-parented to it), then
    reaps them. Costs one waitpid when there are none."""
    if not has_children():
        return
    me = os.getpid()
    for _ in range(500):
        kids = children(me)
        if not kids:
            return
        todo, tree = list(kids), []
        while todo:
            pid = todo.pop()
            tree.append(pid)
            todo.extend(children(pid))
        for pid in tree:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
        time.sleep(0.001)

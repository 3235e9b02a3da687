"""NodeRouter app host.

One host process per app revision. It imports the app's ``main.py`` exactly once (so
module-level code such as the author guide's ``_migrate()`` runs once per version per
runner, under the app's import lock, which the runner holds in Postgres so imports of
one app never overlap across runners), then forks
workers on request. Each worker inherits the imported module, connects back to the
runner's Unix socket and serves calls one at a time.

Control channel (host <-> runner): JSON lines on the host's original stdin/stdout.
Worker channel: frames of ``[u32 header_len][u32 body_len][header JSON][body]``.
"""

import asyncio
import importlib.util
import inspect
import json
import math
import os
import select
import signal
import socket
import struct
import sys
import time
import traceback

import nr_contain  # next to this script: containment helpers shared with the deploy check
import nr_json  # next to this script: results as JSON
import nr_output  # next to this script: output of app code during calls

_LEN = struct.Struct(">II")


_log = nr_contain.log
_CPU = nr_contain._CPU  # cleared by plain stores (see nr_contain)


# ── Frames ────────────────────────────────────────────────────────────────────


def _recv_exact(reader, n):
    data = reader.read(n)
    if data is None or len(data) < n:
        raise EOFError
    return data


def recv_frame(reader):
    hlen, blen = _LEN.unpack(_recv_exact(reader, 8))
    # Decoded to text first: `json.loads` of bytes guesses their encoding each time.
    header = json.loads(_recv_exact(reader, hlen).decode()) if hlen else {}
    body = _recv_exact(reader, blen) if blen else b""
    return header, body


def send_frame(sock, header, body=b""):
    h = nr_json.encode_header(header).encode()
    # Whole or not at all: the CPU limit's exception waits for the frame's end.
    nr_contain.cpu_io_begin()
    try:
        sock.sendall(_LEN.pack(len(h), len(body)) + h + body)
    finally:
        nr_contain.cpu_io_end()


# ── Import ────────────────────────────────────────────────────────────────────


# The bundle's folder, once loaded (tracebacks name files relative to it).
_APP_DIR = None


def load_app(app_name, app_dir):
    global _APP_DIR
    _APP_DIR = app_dir
    libs = os.path.join(app_dir, "libs")
    if os.path.isdir(libs):
        sys.path.insert(0, libs)
    sys.path.insert(0, app_dir)
    os.chdir(app_dir)
    spec = importlib.util.spec_from_file_location("main", os.path.join(app_dir, "main.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules["main"] = module
    spec.loader.exec_module(module)
    execute = getattr(module, "execute", None)
    if not callable(execute):
        raise TypeError("main.py does not define a callable execute(data, conn=None)")
    params = inspect.signature(execute).parameters
    wants_conn = "conn" in params or any(p.kind == p.VAR_KEYWORD for p in params.values())
    is_async = inspect.iscoroutinefunction(execute)
    return module, execute, wants_conn, is_async


# ── Worker ────────────────────────────────────────────────────────────────────


class ConnHolder:
    """The worker's warm psycopg2 connection, handed back clean after every call.

    Before it is handed out again, a warm connection is checked without a round trip:
    an idle connection has nothing to read, so a readable socket means the server
    ended it (a restart, `pg_terminate_backend`, an idle timeout) and a new one is
    opened instead. A call that failed on a database error also leaves the connection
    to be replaced, so no call fails on a stale connection.
    """

    def __init__(self):
        self.conn = None
        # A poll object on the connection's socket, made once per connection: one
        # system call per check, no lists built.
        self._poll = None
        self._fd = -1
        self._ext = None

    def _stale(self, conn):
        if conn.closed:
            return True
        try:
            fd = conn.fileno()
            if fd != self._fd:
                self._poll = select.poll()
                self._poll.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)
                self._fd = fd
            return bool(self._poll.poll(0))
        except (OSError, ValueError):
            return True

    def _drop(self):
        conn, self.conn, self._fd = self.conn, None, -1
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

    def get(self):
        conn = self.conn
        if conn is not None:
            if not self._stale(conn):
                return conn
            self._drop()
        import psycopg2

        self.conn = psycopg2.connect(os.environ.get("DATABASE_URL", ""))
        return self.conn

    def clean(self):
        """After a call: an open transaction is rolled back; a connection in an unknown
        state is closed (the next `get` opens another; a server-side close is found by
        the check in `get`)."""
        conn = self.conn
        if conn is None:
            return
        try:
            if conn.closed:
                self._drop()
                return
            ext = self._ext
            if ext is None:
                import psycopg2.extensions as ext

                self._ext = ext
            status = conn.get_transaction_status()
            if status == ext.TRANSACTION_STATUS_UNKNOWN:
                self._drop()
            elif status != ext.TRANSACTION_STATUS_IDLE:
                conn.rollback()
        except Exception:
            self._drop()


def _actions_of(result):
    """The `_actions` of a result as `{"name", "payload"}` entries, and what was left out
    as not an action (the runner logs each, and publishes none of them). A payload the
    event cannot carry (NaN, an infinity, an integer beyond 64 bits) fails the call,
    naming where, as a result JSON cannot carry does."""
    if not isinstance(result, dict) or "_actions" not in result:
        return [], []
    raw = result.pop("_actions")
    if not isinstance(raw, list):
        return [], ["_actions is %s, not a list" % type(raw).__name__]
    out, dropped = [], []
    for n, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            dropped.append("_actions[%d] has no name (a non-empty string)" % n)
            continue
        payload = item.get("payload")
        found = nr_json.unjsonable(payload, "result['_actions'][%d]['payload']" % n, events=True)
        if found:
            raise TypeError("execute() returned an action its event cannot carry: %s is %s" % found)
        out.append({"name": item["name"], "payload": payload})
    return out, dropped


_env_int = nr_contain.env_int


def _limit_memory():
    """Caps the worker's address space so a runaway app gets MemoryError, not the box."""
    mb = _env_int("NR_WORKER_MEMORY_MB")
    if mb > 0:
        import resource

        limit = mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


# ── Containment ───────────────────────────────────────────────────────────────

def _limit_process():
    """Hard limits on processes of the app's uid, on file size and on address space,
    set before any app code runs (the app cannot raise a hard limit, and every worker
    forked later inherits them), and a CPU-time limit for the import."""
    nr_contain.limit_process()
    _limit_memory()
    _limit_cpu()


_CPU_HARD = []  # the hard RLIMIT_CPU, read once (the app can only lower it)


def _limit_cpu():
    """CPU seconds for what comes next (the import, one call, one job), counted from now.
    Two system calls per call: the process's CPU clock and the new soft limit (always
    set, so a call that raised its own soft limit does not leave it raised)."""
    cpu = _CPU_S[0] if _CPU_S else _env_int("NR_APP_CPU_S")
    if cpu <= 0:
        return
    import resource

    # Whole seconds (rounded up) already used, so a call always gets its full budget.
    used = int(math.ceil(time.process_time()))
    for _ in range(2):
        if not _CPU_HARD:
            _CPU_HARD.append(resource.getrlimit(resource.RLIMIT_CPU)[1])
        hard = _CPU_HARD[0]
        soft = used + cpu
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        try:
            resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
            return
        except (ValueError, OSError):
            _CPU_HARD.clear()  # the app lowered the hard limit: read it again


# NR_APP_CPU_S, read once by serve_worker before the first call, so the app cannot
# lift its own limit by changing the environment.
_CPU_S = []


def serve_worker(sock, execute, wants_conn, is_async):
    """Serves calls one at a time. Per call: one frame in, `execute`, one frame out, the
    connection handed back clean, the CPU limit reset and a check that nothing the call
    started is still running (one waitpid when nothing was)."""
    reader = sock.makefile("rb")
    holder = ConnHolder()
    output = nr_output.CallOutput(lambda header, body=b"": send_frame(sock, header, body))
    output.install()
    try:
        import noderouter as sdk
    except ImportError:
        sdk = None
    if sdk is not None:
        sdk._emit = output.frame

        def _request(header, body=b""):
            with output.lock:
                # The request and its answer are one exchange: the CPU limit's
                # exception never leaves the answer unread in the socket.
                nr_contain.cpu_io_begin()
                try:
                    send_frame(sock, header, body)
                    return recv_frame(reader)
                finally:
                    nr_contain.cpu_io_end()

        sdk._request = _request
    if wants_conn:
        try:
            holder.get()
        except Exception as exc:
            _log("[noderouter] cannot open the worker's database connection: %s" % exc)
    _CPU_S[:] = [_env_int("NR_APP_CPU_S")]
    loop = asyncio.new_event_loop() if is_async else None
    loads, isawaitable = json.loads, inspect.isawaitable
    while True:
        try:
            header, body = recv_frame(reader)
        except (EOFError, OSError):
            os._exit(0)
        reply = {"id": header.get("id")}
        out = b""
        extra = header.get("inject") or {}
        job = extra.get("_job_id") if isinstance(extra, dict) else None
        rid = header.get("rid") or ""
        # A job keeps its output (`capture` bytes); a sync call logs it (`cap` bytes).
        keep = header.get("capture")
        keep = keep if isinstance(keep, int) and keep > 0 else None
        output.begin(rid, job or "", keep or header.get("cap"), keep is not None)
        if sdk is not None:
            sdk._job_id, sdk._request_id = job, rid or None
        try:
            data = loads(body.decode()) if body else {}
            if extra and isinstance(data, dict):
                data.update(extra)
            _limit_cpu()
            nr_contain.cpu_limit_for("the job" if job is not None else "the call")
            if wants_conn:
                try:
                    conn = holder.get()
                except Exception as exc:
                    # The platform's trouble, not the app's: the runner retries the job.
                    reply["unavailable"] = True
                    raise RuntimeError("database connection unavailable: %s" % exc)
                result = execute(data, conn=conn)
            else:
                result = execute(data)
            if isawaitable(result):
                result = (loop or asyncio.new_event_loop()).run_until_complete(result)
            actions, dropped = _actions_of(result)
            if dropped:
                reply["dropped_actions"] = dropped
            if not isinstance(result, dict):
                raise TypeError("execute() returned %s; it must return a dict" % type(result).__name__)
            try:
                out = nr_json.dumps(result)
            except (TypeError, ValueError) as exc:
                found = nr_json.unjsonable(result)
                where = "%s is %s" % found if found else str(exc)
                raise TypeError("execute() returned a dict that JSON cannot carry: %s" % where)
            if job is not None:
                # A job's result is kept in the job queue and read back: what it would
                # change (a huge integer becomes a float) or lose fails the job instead.
                found = nr_json.unstorable(result, out)
                if found:
                    raise TypeError("execute() returned a result a job cannot keep: %s is %s" % found)
            reply["ok"] = True
            if actions:
                reply["actions"] = actions
        except BaseException as exc:  # includes SystemExit from app code
            _CPU["for"] = ""
            reply["ok"] = False
            if isinstance(exc, nr_contain.CpuTimeLimitExceeded):
                # Stopped at an arbitrary point (threads, an event loop, locks may be
                # left half-way): the worker answers and is not used again.
                reply["retire"] = True
            # Cut as a job's error is kept (16 KiB): a huge message is still an error,
            # not a result over the bus's limit.
            reply["error"] = _cut("%s: %s" % (type(exc).__name__, exc), 16384)
            reply["traceback"] = _cut(_app_traceback(exc), 65536)
            if keep is not None:  # kept with the job, as a script's stderr would
                sys.stderr.write(reply["traceback"])
        finally:
            _CPU["for"] = ""
            holder.clean()
            # Nothing the call started outlives it (forks, setsid daemons, subprocesses).
            nr_contain.kill_descendants()
            logs = output.end()
            if keep is not None:
                reply["logs"] = logs or ""
        try:
            output.frame(reply, out)
        except OSError:
            os._exit(0)
        if reply.get("retire"):
            os._exit(0)


def _app_traceback(exc):
    """The traceback from the app's first frame on, with paths relative to its bundle:
    whoever reads it (a job's submitter) sees the app's code, not this script's frames
    or the server's directories."""
    try:
        me = os.path.realpath(__file__)
        tb = exc.__traceback__
        while tb is not None and os.path.realpath(tb.tb_frame.f_code.co_filename) == me:
            tb = tb.tb_next
        text = "".join(traceback.format_exception(type(exc), exc, tb))
        for d in {_APP_DIR, os.path.realpath(_APP_DIR)} if _APP_DIR else ():
            text = text.replace(os.path.join(d, ""), "")
        return text
    except Exception:
        return "%s: %s\n" % (type(exc).__name__, exc)


_CONTROL_FDS = []

# The runner reads one control line of at most 64 KiB; a longer one is a flood.
_CONTROL_LINE_MAX = 60 * 1024


def _cut(text, limit):
    if len(text) <= limit:
        return text
    return text[:limit] + "\u2026 [cut: %d characters in all]" % len(text)


def _import_failure(exc):
    """The control line saying the import failed: the error and its traceback, cut to
    fit a control line however large the exception's message is."""
    try:
        error = "%s: %s" % (type(exc).__name__, exc)
    except Exception:
        error = type(exc).__name__
    try:
        tb = traceback.format_exc()
    except Exception:
        tb = ""
    # Uncut only when it is small anyway: a huge message is never encoded whole.
    small = len(error) + len(tb) < _CONTROL_LINE_MAX // 2
    for limit in ((None,) if small else ()) + (8000, 2000, 500):
        e, t = (error, tb) if limit is None else (_cut(error, limit // 4), _cut(tb, limit))
        # Lone surrogates (undecodable bytes) would not be valid JSON for the runner.
        e, t = (x.encode("utf-8", "backslashreplace").decode("utf-8") for x in (e, t))
        line = json.dumps({"ok": False, "error": e, "traceback": t})
        if len(line) < _CONTROL_LINE_MAX:
            return line
    return json.dumps({"ok": False, "error": _cut(error, 100), "traceback": ""})


def fork_worker(token, sock_path, execute, wants_conn, is_async):
    pid = os.fork()
    if pid:
        return pid
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()
        nr_contain.become_subreaper()
        for fd in _CONTROL_FDS:  # the host's control pipes are not the worker's
            try:
                os.close(fd)
            except OSError:
                pass
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(sock_path)
        send_frame(sock, {"hello": token, "pid": os.getpid()})
        _limit_memory()
        serve_worker(sock, execute, wants_conn, is_async)
    except BaseException:
        traceback.print_exc()
    os._exit(1)


def main():
    app_name, app_dir, sock_path = sys.argv[1:4]
    # Keep the control channel private: app prints go to stderr, which the runner logs.
    ctl = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    ctl_in = os.fdopen(os.dup(0), "r")
    _CONTROL_FDS.extend([ctl.fileno(), ctl_in.fileno()])

    def reply(obj):
        ctl.write(json.dumps(obj) + "\n")
        ctl.flush()

    nr_contain.become_subreaper()
    nr_output.install_record_factory()
    try:
        _limit_process()
    except Exception as exc:
        _log("[noderouter] cannot set process limits: %s" % exc)

    nr_contain.catch_cpu_limit(_env_int("NR_APP_CPU_S"))
    nr_contain.cpu_limit_for("the import of main.py")
    try:
        _, execute, wants_conn, is_async = load_app(app_name, app_dir)
    except BaseException as exc:
        _CPU["for"] = ""
        ctl.write(_import_failure(exc) + "\n")
        ctl.flush()
        return
    _CPU["for"] = ""
    # Import what every worker needs once, here, and freeze the heap the app built, so
    # forked workers share these pages instead of redoing the work and copying them.
    try:
        import gc
        import resource  # noqa: F401  (used by _limit_memory in workers)

        import noderouter  # noqa: F401  (the SDK; imported by workers)

        gc.freeze()
    except Exception:
        pass
    # The import's CPU limit ends with it: the host lives as long as the revision and
    # only forks from now on (each worker sets its own limit per call).
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CPU, (resource.RLIM_INFINITY, resource.getrlimit(resource.RLIMIT_CPU)[1]))
    except (ValueError, OSError):
        pass
    reply({"ok": True, "wants_conn": wants_conn, "is_async": is_async})
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # workers are reaped automatically
    # Children the app's import started that have ended already: the setting above
    # reaps only those that end from now on.
    nr_contain.reap_ended()
    for line in ctl_in:
        try:
            cmd = json.loads(line)
        except ValueError:
            continue
        if cmd.get("cmd") == "fork":
            # Each answer names its command's token: the runner skips answers to
            # forks it gave up on, so the channel never falls out of step.
            token = cmd.get("token")
            try:
                pid = fork_worker(token, sock_path, execute, wants_conn, is_async)
                reply({"token": token, "pid": pid})
            except OSError as exc:
                reply({"token": token, "error": str(exc)})
        elif cmd.get("cmd") == "exit":
            break


if __name__ == "__main__":
    main()

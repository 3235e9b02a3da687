"""NodeRouter deploy import check.

Run by the deploy service (and `noderouter app lint`) in a fresh interpreter on an
unpacked bundle: compiles main.py, imports it the way the runner does (module-level code
included, `libs/` on sys.path, the working directory the app's folder; the deploy
service holds the app's import lock meanwhile), and checks that it exposes a
callable ``execute`` that accepts ``data``.

Usage: python nr_check.py <app_name> <app_dir>
Prints one JSON line on the original stdout; the app's own prints go to stderr.
"""

import importlib.util
import inspect
import json
import os
import sys
import traceback

import nr_contain  # next to this script (the runner's containment helpers)


def _out(stream, obj):
    stream.write(json.dumps(obj) + "\n")
    stream.flush()


def _app_frame_line(tb, app_dir):
    """Line of the innermost traceback frame inside the app's main.py."""
    main = os.path.realpath(os.path.join(app_dir, "main.py"))
    line = None
    for frame in traceback.extract_tb(tb):
        try:
            if os.path.realpath(frame.filename) == main:
                line = frame.lineno
        except (OSError, ValueError):
            pass
    return line


def _app_traceback(exc, app_dir):
    """The traceback from the app's first frame on, with paths relative to its folder."""
    me = os.path.realpath(__file__)
    tb = exc.__traceback__
    while tb is not None and os.path.realpath(tb.tb_frame.f_code.co_filename) == me:
        tb = tb.tb_next
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    return text.replace(os.path.join(app_dir, ""), "")


def _contain():
    """The runner's limits, and a child subreaper so whatever module code starts
    (``setsid`` + double fork included) stays under this process to be killed."""
    nr_contain.become_subreaper()
    try:
        import resource

        nr_contain.limit_process()
        memory = nr_contain.env_int("NR_WORKER_MEMORY_MB") * 1024 * 1024
        if memory > 0:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        cpu = nr_contain.env_int("NR_APP_CPU_S")
        if cpu > 0:
            # At the soft limit the import gets CpuTimeLimitExceeded, which the check
            # reports; the hard limit kills code that never returns to Python.
            nr_contain.catch_cpu_limit(cpu)
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 2))
    except Exception as exc:
        nr_contain.log("[noderouter] cannot set process limits: %s" % exc)


def check(app_name, app_dir):
    path = os.path.join(app_dir, "main.py")
    try:
        with open(path, "rb") as fh:
            source = fh.read()
    except OSError as exc:
        return {"ok": False, "rule": "bundle.main_py", "line": None,
                "message": "main.py cannot be read: %s" % exc, "traceback": ""}
    try:
        code = compile(source, path, "exec")
    except SyntaxError as exc:
        tb = "".join(traceback.format_exception_only(type(exc), exc))
        return {"ok": False, "rule": "main.syntax", "line": exc.lineno,
                "message": "main.py does not compile: %s: %s (line %s)" % (type(exc).__name__, exc.msg, exc.lineno),
                "traceback": tb}
    except (ValueError, TypeError) as exc:  # NUL bytes, bad encoding declaration
        return {"ok": False, "rule": "main.syntax", "line": None,
                "message": "main.py does not compile: %s: %s" % (type(exc).__name__, exc), "traceback": ""}

    libs = os.path.join(app_dir, "libs")
    if os.path.isdir(libs):
        sys.path.insert(0, libs)
    sys.path.insert(0, app_dir)
    os.chdir(app_dir)
    nr_contain.cpu_limit_for("the import of main.py")
    try:
        spec = importlib.util.spec_from_file_location("main", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["main"] = module
        exec(code, module.__dict__)
    except BaseException as exc:  # SystemExit and KeyboardInterrupt from app code too
        nr_contain._CPU["for"] = ""
        tb = _app_traceback(exc, app_dir)
        return {"ok": False, "rule": "main.import", "line": _app_frame_line(exc.__traceback__, app_dir),
                "message": "main.py fails on import: %s: %s" % (type(exc).__name__, exc), "traceback": tb}

    nr_contain._CPU["for"] = ""
    execute = getattr(module, "execute", None)
    if execute is None:
        return {"ok": False, "rule": "main.execute", "line": None,
                "message": "main.py does not define execute: add def execute(data: dict, conn=None) -> dict",
                "traceback": ""}
    if not callable(execute):
        return {"ok": False, "rule": "main.execute", "line": None,
                "message": "main.py's execute is not a function but an object of type %s: define def execute(data: dict, conn=None) -> dict" % type(execute).__name__,
                "traceback": ""}
    line = None
    try:
        line = inspect.getsourcelines(execute)[1]
    except (OSError, TypeError):
        pass
    try:
        inspect.signature(execute).bind({})
    except TypeError as exc:
        return {"ok": False, "rule": "main.execute", "line": line,
                "message": "execute cannot be called as execute(data): %s; define def execute(data: dict, conn=None) -> dict" % exc,
                "traceback": ""}
    except ValueError:
        pass  # builtins without a signature: callable all the same
    return {"ok": True}


def main():
    app_name, app_dir = sys.argv[1], os.path.abspath(sys.argv[2])
    # Keep the result channel private: whatever the app prints goes to stderr.
    result_stream = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    # Line by line, in the order printed and written: an import stopped by the time
    # limit still shows what it printed.
    try:
        sys.stdout.reconfigure(line_buffering=True)
    except (AttributeError, ValueError):
        pass
    _contain()
    try:
        result = check(app_name, app_dir)
    except BaseException as exc:
        result = {"ok": False, "rule": "main.import", "line": None,
                  "message": "the import check failed: %s: %s" % (type(exc).__name__, exc),
                  "traceback": traceback.format_exc()}
    # What the app printed is still in sys.stdout's buffer (fd 1 is now stderr).
    try:
        sys.stdout.flush()
    except Exception:
        pass
    # Nothing the module started outlives the check.
    nr_contain.kill_descendants()
    _out(result_stream, result)
    sys.stderr.flush()
    # Threads or atexit hooks the app started must not keep the check alive.
    os._exit(0)


if __name__ == "__main__":
    main()

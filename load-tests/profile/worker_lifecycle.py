"""Per-job worker cost, without Rust, NATS or the job queue.

Drives services/runner/python/nr_host.py the way the runner's `AppHost::run_job` does
(same arguments and environment), and for each "job": asks the host to fork a worker
(control line), waits for the worker's hello on the Unix socket, sends one call frame
with `_job_id` injected, reads the reply, and kills the worker's process group. Prints
per-phase p50/p99, jobs/s at the given concurrency and the machine's CPU per job (from
/proc/stat, minus this driver's own), then the same calls on one reused worker (the
sync path's pooled worker) for contrast.

--variant runs an experimental copy of nr_host.py (the original is not touched):
  stock       nr_host.py as it is
  preimport   the host imports the SDK (`noderouter`) and `resource` before forking,
              so a worker does not import them itself (no .pyc: PYTHONDONTWRITEBYTECODE)
  freeze      preimport, and gc.freeze() after the app's import, so the GC in a worker
              does not write to (and copy) the pages of objects inherited from the host

    .venv/bin/python load-tests/profile/worker_lifecycle.py load-tests/apps/bench_noop
    .venv/bin/python load-tests/profile/worker_lifecycle.py examples/hello --jobs 500 --concurrency 4
    .venv/bin/python load-tests/profile/worker_lifecycle.py load-tests/apps/bench_noop --variant freeze
"""

import argparse
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PY_DIR = os.path.join(ROOT, "services", "runner", "python")
_LEN = struct.Struct(">II")


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def recv_frame(sock):
    hlen, blen = _LEN.unpack(recv_exact(sock, 8))
    header = json.loads(recv_exact(sock, hlen)) if hlen else {}
    body = recv_exact(sock, blen) if blen else b""
    return header, body


def send_frame(sock, header, body=b"{}"):
    h = json.dumps(header).encode()
    sock.sendall(_LEN.pack(len(h), len(body)) + h + body)


def pct(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, round((len(s) - 1) * q))] * 1000 if s else 0.0


def line(label, values):
    print("  %-34s p50 %7.2f ms   p99 %7.2f ms" % (label, pct(values, 0.5), pct(values, 0.99)))


def host_script(variant, tmp):
    """Path of the host script for a variant: the original, or a patched copy in tmp."""
    original = os.path.join(PY_DIR, "nr_host.py")
    if variant == "stock":
        return original
    with open(original) as f:
        src = f.read()
    patches = [("import uuid\n", "import uuid\nimport resource  # experiment\nimport noderouter  # experiment\n")]
    if variant == "freeze":
        patches.append(
            (
                '    reply({"ok": True, "wants_conn"',
                '    import gc; gc.collect(); gc.freeze()  # experiment\n    reply({"ok": True, "wants_conn"',
            )
        )
    for old, new in patches:
        if src.count(old) != 1:
            raise SystemExit("nr_host.py changed; cannot apply the %r experiment" % variant)
        src = src.replace(old, new)
    path = os.path.join(tmp, "nr_host_%s.py" % variant)
    with open(path, "w") as f:
        f.write(src)
    return path


def cpu_busy():
    """Seconds of CPU used by the whole machine so far (all cores, idle and iowait excluded)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class Host:
    def __init__(self, app_dir, python, variant):
        self.tmp = tempfile.mkdtemp(prefix="nr-lifecycle-")
        self.sock_path = os.path.join(self.tmp, "w.sock")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.sock_path)
        self.listener.listen(256)
        app = os.path.basename(os.path.abspath(app_dir))
        env = dict(os.environ)
        env.update(
            {
                "DATABASE_URL": os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/noderouter"),
                "PYTHONPATH": PY_DIR,
                "PYTHONDONTWRITEBYTECODE": "1",
                "NR_APP_NAME": app,
                "NR_RUNNER_ID": "lifecycle",
                "NR_WORKER_MEMORY_MB": "2048",
                "NR_APP_VERSION": "0",
            }
        )
        self.proc = subprocess.Popen(
            [python, "-u", host_script(variant, self.tmp), app, os.path.abspath(app_dir), self.sock_path],
            cwd=app_dir,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        first = json.loads(self.proc.stdout.readline())
        if not first.get("ok"):
            raise SystemExit("import failed: %s" % first)
        self.ctl = threading.Lock()
        self.waiting = {}
        self.cond = threading.Condition()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.listener.accept()
                hello, _ = recv_frame(conn)
            except OSError:
                return
            with self.cond:
                self.waiting[hello["hello"]] = (time.perf_counter(), conn)
                self.cond.notify_all()

    def fork(self):
        """Returns (pid, connection, seconds to the fork reply, seconds from it to hello)."""
        token = str(uuid.uuid4())
        t0 = time.perf_counter()
        with self.ctl:
            self.proc.stdin.write(json.dumps({"cmd": "fork", "token": token}) + "\n")
            self.proc.stdin.flush()
            reply = json.loads(self.proc.stdout.readline())
        t1 = time.perf_counter()
        with self.cond:
            ok = self.cond.wait_for(lambda: token in self.waiting, timeout=10)
            if not ok:
                raise SystemExit("worker did not connect")
            t2, conn = self.waiting.pop(token)
        return reply["pid"], conn, t1 - t0, max(0.0, t2 - t1)

    def close(self):
        try:
            self.proc.stdin.write('{"cmd":"exit"}\n')
            self.proc.stdin.flush()
        except OSError:
            pass
        self.proc.wait(timeout=10)
        self.listener.close()
        for name in os.listdir(self.tmp):
            os.unlink(os.path.join(self.tmp, name))
        os.rmdir(self.tmp)


def per_job(host, jobs, concurrency):
    phases = {"fork": [], "hello": [], "call": [], "kill": [], "total": []}
    lock = threading.Lock()
    todo = iter(range(jobs))

    def worker():
        while True:
            with lock:
                if next(todo, None) is None:
                    return
            t0 = time.perf_counter()
            pid, conn, t_fork, t_hello = host.fork()
            t1 = time.perf_counter()
            job_id = str(uuid.uuid4())
            send_frame(conn, {"id": 1, "rid": job_id, "inject": {"_job_id": job_id}})
            while True:
                h, _ = recv_frame(conn)
                if "progress" not in h:
                    break
            if not h.get("ok"):
                raise SystemExit("call failed: %s" % h)
            t2 = time.perf_counter()
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            conn.close()
            t3 = time.perf_counter()
            with lock:
                phases["fork"].append(t_fork)
                phases["hello"].append(t_hello)
                phases["call"].append(t2 - t1)
                phases["kill"].append(t3 - t2)
                phases["total"].append(t3 - t0)

    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return phases, wall


def pooled(host, calls):
    pid, conn, _, _ = host.fork()
    send_frame(conn, {"id": 0, "rid": "warm"})  # the worker's first call opens its conn
    recv_frame(conn)
    times = []
    start = time.perf_counter()
    for i in range(calls):
        t0 = time.perf_counter()
        send_frame(conn, {"id": i + 1, "rid": "r"})
        recv_frame(conn)
        times.append(time.perf_counter() - t0)
    wall = time.perf_counter() - start
    os.killpg(pid, signal.SIGKILL)
    conn.close()
    return times, wall


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("app_dir")
    ap.add_argument("--jobs", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--variant", choices=["stock", "preimport", "freeze"], default="stock")
    args = ap.parse_args()
    host = Host(args.app_dir, args.python, args.variant)
    try:
        per_job(host, 20, 1)  # warm-up
        busy0, own0 = cpu_busy(), os.times()
        phases, wall = per_job(host, args.jobs, args.concurrency)
        busy1, own1 = cpu_busy(), os.times()
        own = (own1.user - own0.user) + (own1.system - own0.system)
        print(
            "forked worker per job (%s, %s, %d jobs, concurrency %d): %.0f jobs/s, %.2f ms CPU per job (machine, without this driver's %.2f ms)"
            % (
                os.path.basename(os.path.abspath(args.app_dir)),
                args.variant,
                args.jobs,
                args.concurrency,
                args.jobs / wall,
                (busy1 - busy0 - own) * 1000 / args.jobs,
                own * 1000 / args.jobs,
            )
        )
        line("control: fork cmd -> pid reply", phases["fork"])
        line("pid reply -> worker hello", phases["hello"])
        line("call -> reply (worker init + call)", phases["call"])
        line("killpg", phases["kill"])
        line("total per job", phases["total"])
        times, wall = pooled(host, args.jobs)
        print("one reused worker, same calls: %.0f calls/s" % (args.jobs / wall))
        line("call -> reply", times)
    finally:
        host.close()


if __name__ == "__main__":
    main()

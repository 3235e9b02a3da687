"""The floor under a sync call and a job, measured with the platform's own pieces:

  floor.py worker <app dir> <seconds>   bare calls into one warm Python worker
      (nr_host.serve_worker, the runner's frame protocol over a Unix socket pair, the
      app imported once, its warm connection), from a client in this process: no
      gateway, no NATS, no runner.
  floor.py commit <seconds>             one Postgres commit (INSERT of one row into a
      scratch table, commit), on one warm psycopg2 connection.

Each prints one line: `<label>: <n>/s p50 <ms> p99 <ms> n=<count>`.
"""

import os
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "services", "runner", "python"))


def report(label, micros, elapsed):
    micros.sort()
    pct = lambda q: micros[min(len(micros) - 1, round((len(micros) - 1) * q))] / 1000  # noqa: E731
    print("%s: %.0f/s p50 %.3f ms p99 %.3f ms n=%d" % (label, len(micros) / elapsed, pct(0.5), pct(0.99), len(micros)))


def worker(app_dir, seconds):
    import nr_host

    _, execute, wants_conn, is_async = nr_host.load_app("floor", os.path.abspath(app_dir))
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:
        parent.close()
        nr_host.serve_worker(child, execute, wants_conn, is_async)
        os._exit(0)
    child.close()
    reader = parent.makefile("rb")
    micros, i = [], 0
    begin = time.perf_counter()
    end = begin + seconds
    while True:
        t = time.perf_counter()
        if t >= end:
            break
        i += 1
        nr_host.send_frame(parent, {"id": i, "rid": "floor"}, b"{}")
        header, _ = nr_host.recv_frame(reader)
        if not header.get("ok"):
            raise SystemExit("the worker failed: %s" % header)
        micros.append((time.perf_counter() - t) * 1e6)
    elapsed = time.perf_counter() - begin
    reader.close()
    parent.close()
    os.waitpid(pid, 0)
    report("warm python worker c=1", micros, elapsed)


def commit(seconds):
    import psycopg2

    conn = psycopg2.connect(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"))
    cur = conn.cursor()
    # A real table: a temporary one writes no WAL, and its commit does not wait for a flush.
    cur.execute("CREATE TABLE IF NOT EXISTS nr_floor_commit (id bigint)")
    conn.commit()
    micros = []
    begin = time.perf_counter()
    end = begin + seconds
    i = 0
    while True:
        t = time.perf_counter()
        if t >= end:
            break
        i += 1
        cur.execute("INSERT INTO nr_floor_commit VALUES (%s)", (i,))
        conn.commit()
        micros.append((time.perf_counter() - t) * 1e6)
    elapsed = time.perf_counter() - begin
    cur.execute("DROP TABLE nr_floor_commit")
    conn.commit()
    report("postgres commit c=1", micros, elapsed)


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        worker(sys.argv[2], float(sys.argv[3]))
    elif sys.argv[1:2] == ["commit"]:
        commit(float(sys.argv[2]))
    else:
        raise SystemExit(__doc__)

"""Sync req/s and async jobs/s on the running topology (scripts/topology), with three
runners and then one. Bounded: each sync run lasts SECONDS (wrk), each async run submits
JOBS jobs and waits at most 120 s. Called by load-tests/topology.sh."""

import os
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import fault_tests as ft  # noqa: E402

SECONDS = int(os.environ.get("SECONDS_PER_RUN", "10"))
CONNECTIONS = int(os.environ.get("CONNECTIONS", "16"))
JOBS = int(os.environ.get("JOBS", "300"))
CLIENTS = int(os.environ.get("CLIENTS", "8"))


def sync_rps(p):
    env = dict(os.environ, NR_TOKEN=p.token, BODY="{}")
    out = subprocess.run(
        ["wrk", "-t", "2", "-c", str(CONNECTIONS), "-d", f"{SECONDS}s", "--latency",
         "-s", os.path.join(os.path.dirname(os.path.abspath(__file__)), "post.lua"),
         f"{p.url}/api/sync/{ft.APP}"],
        env=env, capture_output=True, text=True, timeout=SECONDS + 30,
    ).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"50%\s+(\S+)", out)
    p99 = re.search(r"99%\s+(\S+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return (float(rps.group(1)) if rps else 0.0, p50.group(1) if p50 else "?",
            p99.group(1) if p99 else "?", int(non2xx.group(1)) if non2xx else 0)


def async_jps(p):
    ids, lock = [], threading.Lock()
    per = JOBS // CLIENTS

    def client():
        got, refused = ft.submit_many(p, per, {})
        with lock:
            ids.extend(got)

    t0 = time.time()
    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    rows = p.wait_jobs_final(ids, 120)
    took = time.time() - t0
    done = sum(1 for v in rows.values() if v[0] == "completed")
    return done / took, done, len(ids), took


def main():
    ft.load_env()
    p = ft.Platform()
    status, body = p.deploy("1.0.%d" % int(time.time()))
    if status not in (200, 201):
        print(f"deploy refused: {status} {body[:300]}")
        return 1
    print(f"sync: wrk {CONNECTIONS} connections, {SECONDS} s; async: {JOBS} jobs from {CLIENTS} clients")
    print("| runners | sync req/s | p50 | p99 | non-2xx | async jobs/s | jobs completed |")
    print("|---|---|---|---|---|---|---|")
    runners = int(os.environ.get("NR_TOPOLOGY_RUNNERS", "3"))
    try:
        for n in (runners, 1):
            if n == 1:
                for r in range(2, runners + 1):
                    ft.topology("kill", f"runner-{r}", "TERM")
            rps, p50, p99, bad = sync_rps(p)
            jps, done, total, took = async_jps(p)
            print(f"| {n} | {rps:.0f} | {p50} | {p99} | {bad} | {jps:.1f} | {done}/{total} in {took:.1f} s |", flush=True)
    finally:
        for r in range(2, runners + 1):
            ft.topology("start", f"runner-{r}", check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())

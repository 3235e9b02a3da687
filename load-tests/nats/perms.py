"""nats-server's CPU per request/reply with and without the platform's NATS locks.

A requester as the `gateway` user and a responder as the `runner` user (32 requests in
flight, headers of the size the platform sends) on a private nats-server, in four
configurations, round after round, each on a fresh server and port:

  open     no authorization (as with NR_INSECURE_DEV and an open server)
  users    the platform's users and passwords, no permissions
  inbox    the permission table, the runner publishing replies through an explicit
           `_INBOX_gateway.>` permission instead of `allow_responses`
  locked   the permission table as shipped (`noderouter nats-config`)

Prints req/s and nats-server's CPU (utime + stime from /proc) per request/reply, then
the medians. The client is Python: req/s is the client's limit, not the server's; the
server's CPU per message is the figure.

  .venv/bin/python load-tests/nats/perms.py [--rounds 5] [--seconds 5]
      [--noderouter target/release/noderouter] [--nats-server nats-server]
"""

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import tempfile
import time

import nats

HEADERS_REQ = {"Nr-App-Rev": "1", "Nr-Request-Id": "x" * 36,
               "Nr-Sig": "1" * 13 + "." + "b" * 32 + "." + "c" * 64}
HEADERS_REP = {"Nr-Status": "200", "Nr-Sig": "a" * 64}


def ticks(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def configs(work, noderouter):
    subprocess.run([noderouter, "nats-config", "--passwords", f"{work}/pw.json",
                    "--out", f"{work}/locked.conf"], check=True)
    table = open(f"{work}/locked.conf").read()
    start, end = table.index('user: "runner"'), table.index('user: "runner_jobs"')
    runner = table[start:end].replace("publish: { allow: [", 'publish: { allow: ["_INBOX_gateway.>", ', 1)
    runner = re.sub(r"\n\s*allow_responses: \{[^}]*\}", "", runner)
    open(f"{work}/inbox.conf", "w").write(table[:start] + runner + table[end:])
    open(f"{work}/users.conf", "w").write(re.sub(r"permissions: \{.*?\n      \}\n", "", table, flags=re.S))
    return json.load(open(f"{work}/pw.json"))


async def one(mode, work, passwords, nats_server, seconds):
    port = free_port()
    conf = f"{work}/{mode}-{port}.conf"
    with open(conf, "w") as f:
        f.write(f"listen: 127.0.0.1:{port}\n")
        if mode != "open":
            f.write(f"include ./{mode}.conf\n")
    server = subprocess.Popen([nats_server, "-c", conf], stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            try:
                with __import__("socket").create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.1)
        url = f"nats://127.0.0.1:{port}"

        def creds(role):
            if mode == "open":
                return {}
            return dict(user=role, password=passwords[role], inbox_prefix=f"_INBOX_{role}")

        responder = await nats.connect(url, **creds("runner"))
        requester = await nats.connect(url, **creds("gateway"))

        async def answer(msg):
            await responder.publish(msg.reply, b'{"ok":true}', headers=HEADERS_REP)

        await responder.subscribe("runner.exec.*", queue="nr-runners", cb=answer)
        await responder.flush()
        # The queue subscription is in place once one request is answered.
        for _ in range(50):
            try:
                await requester.request("runner.exec.starter", b"{}", timeout=1, headers=HEADERS_REQ)
                break
            except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
                await asyncio.sleep(0.1)
        done = 0
        stop = time.time() + seconds

        async def caller():
            nonlocal done
            while time.time() < stop:
                await requester.request("runner.exec.starter", b"{}", timeout=5, headers=HEADERS_REQ)
                done += 1

        before = ticks(server.pid)
        await asyncio.gather(*[caller() for _ in range(32)])
        used = ticks(server.pid) - before
        await requester.close()
        await responder.close()
        return done / seconds, used * 1e6 / os.sysconf("SC_CLK_TCK") / max(done, 1)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=10)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--noderouter", default="target/release/noderouter")
    p.add_argument("--nats-server", default=shutil.which("nats-server") or "/usr/sbin/nats-server")
    a = p.parse_args()
    version = subprocess.run([a.nats_server, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"nats-server CPU per request/reply, {version}, {os.cpu_count()} cores, "
          f"{a.rounds} rounds of {a.seconds:g} s per configuration")
    cpu = {}
    with tempfile.TemporaryDirectory() as work:
        passwords = configs(work, a.noderouter)
        for r in range(a.rounds):
            for mode in ("open", "users", "inbox", "locked"):
                rate, us = asyncio.run(one(mode, work, passwords, a.nats_server, a.seconds))
                cpu.setdefault(mode, []).append(us)
                print(f"round {r + 1}  {mode:6s} {rate:8.0f} req/s  nats-server {us:6.2f} µs per request/reply", flush=True)
    base = statistics.median(cpu["open"])
    for mode, v in cpu.items():
        m = statistics.median(v)
        print(f"median {mode:6s} {m:6.2f} µs  ({m - base:+.2f} against open)")


if __name__ == "__main__":
    main()

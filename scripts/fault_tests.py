"""Fault tests on the multi-process topology (scripts/topology), each under bounded load.

Run by scripts/fault-tests, which brings a topology up, runs each test in a process of
its own under a time limit and takes the topology down. Every load is bounded in calls
and seconds; every wait has a deadline. Prints one line per test and `N passed, N
failed`; exits 1 when any failed.

  fault_tests.py --list [WORD...]   the tests whose name contains a WORD (all without)
  fault_tests.py [WORD...]          deploys the fault app when it is not, runs those tests
"""

import asyncio
import io
import json
import os
import subprocess
import sys
import threading
import time
import zipfile

import msgpack
import nats
import psycopg2
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOPOLOGY = os.path.join(ROOT, "scripts", "topology")
APP = "faultapp"


def topology(*args, check=True):
    out = subprocess.run([TOPOLOGY, *args], capture_output=True, text=True, timeout=120)
    if check and out.returncode != 0:
        raise RuntimeError(f"scripts/topology {' '.join(args)} failed: {out.stderr[-2000:]}")
    return out.stdout


def load_env():
    for line in topology("env").splitlines():
        for pair in line.removeprefix("export ").split(" "):
            if "=" in pair:
                k, v = pair.split("=", 1)
                os.environ[k] = v


class Platform:
    def __init__(self):
        self.url = os.environ["NR_URL"]
        self.token = os.environ["NR_TOKEN"]
        self.db_url = os.environ["NR_TOPOLOGY_DATABASE_URL"]

    def session(self):
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {self.token}"
        return s

    def deploy(self, version, timeout=60):
        """Uploads the fault app at `version`; returns (status, body)."""
        manifest = {
            "app_name": APP, "display_name": "Fault app", "version": version,
            "api_version": "1.0.0", "description": "fault tests", "required_permission": "",
            "actions": [{"name": "tick", "display_name": "Tick"}],
        }
        main = (
            "import time\n"
            f"VERSION = {version!r}\n"
            "def execute(data, conn=None):\n"
            "    if data.get('sleep'):\n"
            "        time.sleep(float(data['sleep']))\n"
            "    out = {'n': data.get('n'), 'version': VERSION}\n"
            "    if data.get('action'):\n"
            "        out['_actions'] = [{'name': 'tick', 'payload': {'n': data.get('n')}}]\n"
            "    return out\n"
        )
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("manifest.json", json.dumps(manifest))
            z.writestr("main.py", main)
            z.writestr("index.html", "<p>fault app</p>")
        files = {"file": (f"{APP}.zip", buf.getvalue(), "application/zip")}
        r = self.session().post(f"{self.url}/admin/api/apps/deploy", files=files, timeout=timeout)
        return r.status_code, r.text

    def sync(self, session, data, timeout=10):
        return session.post(f"{self.url}/api/sync/{APP}", json=data, timeout=timeout)

    def submit(self, session, data):
        return session.post(f"{self.url}/api/async/{APP}", json=data, timeout=10)

    def jobs(self, ids):
        with psycopg2.connect(self.db_url) as c, c.cursor() as cur:
            cur.execute(
                "SELECT id::text, status, attempt FROM noderouter_core.job_queue WHERE id::text = ANY(%s)",
                (list(ids),),
            )
            return {r[0]: (r[1], r[2]) for r in cur.fetchall()}

    def wait_jobs_final(self, ids, seconds):
        deadline = time.time() + seconds
        while True:
            rows = self.jobs(ids)
            done = {k: v for k, v in rows.items() if v[0] in ("completed", "failed", "cancelled")}
            if len(done) == len(ids) or time.time() > deadline:
                return rows
            time.sleep(0.5)


class SyncLoad:
    """`threads` callers, each calling until `seconds` pass or `max_calls` are made."""

    def __init__(self, p, threads=4, seconds=6.0, max_calls=20000, data=None):
        self.p, self.threads, self.seconds, self.max_calls = p, threads, seconds, max_calls
        self.data = data or {}
        self.results = []  # (start, end, status or exception text, body)
        self.lock = threading.Lock()

    def _run(self, t0):
        s = self.p.session()
        n = 0
        while time.time() - t0 < self.seconds:
            with self.lock:
                if len(self.results) >= self.max_calls:
                    return
            start = time.time()
            try:
                r = self.p.sync(s, dict(self.data, n=n))
                res = (start, time.time(), r.status_code, r.text[:300])
            except requests.RequestException as e:
                res = (start, time.time(), type(e).__name__, str(e)[:300])
            with self.lock:
                self.results.append(res)
            n += 1

    def start(self):
        t0 = time.time()
        self.workers = [threading.Thread(target=self._run, args=(t0,)) for _ in range(self.threads)]
        for w in self.workers:
            w.start()
        return self

    def join(self):
        for w in self.workers:
            w.join(self.seconds + 30)
        return self

    def failures(self):
        return [r for r in self.results if r[2] != 200]


async def _stream_messages(stream, subject):
    """Every message of `subject` in `stream`, read as the admin NATS user."""
    nc = await nats.connect(
        os.environ["NATS_URL"].split(","), user=os.environ["NATS_USER"],
        password=os.environ["NATS_PASSWORD"], connect_timeout=5,
    )
    try:
        js = nc.jetstream()
        sub = await js.subscribe(subject, stream=stream, ordered_consumer=True,
                                 deliver_policy=nats.js.api.DeliverPolicy.ALL)
        out = []
        info = await js.stream_info(stream)
        last = info.state.last_seq
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                m = await sub.next_msg(timeout=1)
            except nats.errors.TimeoutError:
                break
            out.append((m.metadata.sequence.stream, msgpack.unpackb(m.data, raw=False)))
            if m.metadata.sequence.stream >= last:
                break
        return out
    finally:
        await nc.close()


def stream_messages(stream, subject):
    return asyncio.run(_stream_messages(stream, subject))


def final_events(ids):
    counts = {i: 0 for i in ids}
    for _, env in stream_messages("NR_JOB_EVENTS", f"job.progress.{APP}.*"):
        d = env.get("data", {})
        if d.get("job_id") in counts and d.get("status") in ("completed", "failed", "cancelled"):
            counts[d["job_id"]] += 1
    return counts


def submit_many(p, n, data, spacing=0.0):
    s = p.session()
    ids, refused = [], []
    for i in range(n):
        t = time.time()
        try:
            r = p.submit(s, dict(data, n=i))
            if r.status_code in (200, 202):
                ids.append(r.json()["job_id"])
            else:
                refused.append((r.status_code, t, r.text[:200]))
        except requests.RequestException as e:
            refused.append((type(e).__name__, t, str(e)[:200]))
        time.sleep(spacing)
    return ids, refused


def check_jobs_exactly_once(p, ids, seconds=60):
    rows = p.wait_jobs_final(ids, seconds)
    missing = [i for i in ids if i not in rows]
    not_done = {i: v for i, v in rows.items() if v[0] != "completed"}
    assert not missing, f"{len(missing)} acknowledged jobs have no row"
    assert not not_done, f"jobs not completed: {list(not_done.items())[:5]}"
    counts = final_events(ids)
    wrong = {i: c for i, c in counts.items() if c != 1}
    assert not wrong, f"jobs without exactly one final job.progress event: {list(wrong.items())[:5]}"
    return f"{len(ids)} jobs completed, each with one final event"


# ── The tests ─────────────────────────────────────────────────────────────────


def test_runner_killed_during_async_load(p):
    ids, refused = submit_many(p, 40, {"sleep": 0.3})
    assert not refused, f"submits refused: {refused}"
    time.sleep(1.0)
    topology("kill", "runner-2", "KILL")
    try:
        more, refused = submit_many(p, 20, {"sleep": 0.1})
        assert not refused, f"submits refused with a runner down: {refused}"
        return check_jobs_exactly_once(p, ids + more, seconds=90)
    finally:
        topology("start", "runner-2")


def test_nats_node_killed_under_load(p):
    load = SyncLoad(p, threads=4, seconds=8).start()
    time.sleep(2.0)
    killed_at = time.time()
    topology("kill", "nats-2", "KILL")
    try:
        ids, refused = submit_many(p, 30, {}, spacing=0.2)
        load.join()
        late_refused = [r for r in refused if r[1] > killed_at + 5]
        assert not late_refused, f"submits still refused 5 s after the node died: {late_refused[:3]}"
        assert ids, f"no submit accepted after the node died: {refused[:3]}"
        late = [r for r in load.failures() if r[0] > killed_at + 3]
        assert not late, f"calls still failing 3 s after the node died: {late[:3]}"
        ok_after = [r for r in load.results if r[0] > killed_at + 3 and r[2] == 200]
        assert ok_after, "no call succeeded after the node died"
        summary = check_jobs_exactly_once(p, ids, seconds=60)
        return (f"{len(load.results)} sync calls, {len(load.failures())} failed around the kill; "
                f"{len(refused)} submits refused within {max([r[1] - killed_at for r in refused] or [0]):.1f} s "
                f"of the kill ({sorted({str(r[0]) for r in refused})}); {summary}")
    finally:
        topology("start", "nats-2")


def test_postgres_cut_and_restored(p):
    # More jobs than worker slots: some are claimed, waiting for a worker, when the
    # database goes (their worker cannot open the app's connection then).
    ids, refused = submit_many(p, 30, {"sleep": 0.2})
    assert not refused, refused
    topology("kill", "pg-proxy", "KILL")
    statuses = []
    try:
        s = p.session()
        deadline = time.time() + 10
        while time.time() < deadline:
            t = time.time()
            try:
                r = p.submit(s, {"n": -1})
                statuses.append((r.status_code, round(time.time() - t, 2)))
                if r.status_code == 503:
                    break
            except requests.RequestException as e:
                statuses.append((type(e).__name__, round(time.time() - t, 2)))
            time.sleep(0.5)
    finally:
        topology("start", "pg-proxy")
    deadline = time.time() + 30
    after = None
    s = p.session()
    while time.time() < deadline:
        try:
            r = p.submit(s, {"n": -2})
            if r.status_code == 202:
                after = r.json()["job_id"]
                break
        except requests.RequestException:
            pass
        time.sleep(0.5)
    assert after, "submits did not recover within 30 s of Postgres coming back"
    load = SyncLoad(p, threads=2, seconds=3).start().join()
    assert not load.failures(), f"sync calls failing after Postgres came back: {load.failures()[:3]}"
    summary = check_jobs_exactly_once(p, ids + [after], seconds=60)
    # Checked last, so a wrong status does not hide whether the platform recovered.
    assert any(st == 503 for st, _ in statuses), (
        f"recovered and {summary}, but with Postgres cut submits answered {statuses} "
        "(status, seconds), not 503"
    )
    return f"503 while cut ({statuses[-1]}), recovered; {summary}"


def test_gateway_killed_behind_the_load_balancer(p):
    load = SyncLoad(p, threads=4, seconds=6).start()
    time.sleep(2.0)
    killed_at = time.time()
    topology("kill", "gateway-1", "KILL")
    try:
        load.join()
        fails = load.failures()
        # Only calls in flight on the dead gateway may fail: at most one per caller.
        assert len(fails) <= load.threads, f"{len(fails)} failed calls: {fails[:3]}"
        late = [r for r in fails if r[0] > killed_at + 1.5]
        assert not late, f"calls started after the kill failed: {late[:3]}"
        return f"{len(load.results)} calls, {len(fails)} failed (in flight on the killed gateway)"
    finally:
        topology("start", "gateway-1")


def serving_version(p):
    r = p.sync(p.session(), {})
    assert r.status_code == 200, f"the fault app does not answer: {r.status_code} {r.text[:300]}"
    return r.json().get("version")


def test_deploy_during_sync_load(p):
    before = serving_version(p)
    new = f"{int(before.split('.')[0]) + 1}.0.0"
    load = SyncLoad(p, threads=4, seconds=8).start()
    time.sleep(2.0)
    status, body = p.deploy(new)
    assert status in (200, 201), f"deploy refused: {status} {body[:300]}"
    load.join()
    fails = load.failures()
    assert not fails, f"{len(fails)} calls failed during the deploy: {fails[:3]}"
    last = [json.loads(r[3]).get("version") for r in load.results[-8:]]
    assert set(last) == {new}, f"still serving the old version at the end: {last}"
    return f"{len(load.results)} calls across both gateways, 0 failed, all on {new} after"


def test_object_store_down_during_deploy(p):
    before = serving_version(p)
    topology("kill", "s3", "KILL")
    try:
        load = SyncLoad(p, threads=2, seconds=4).start()
        t = time.time()
        status, body = p.deploy("99.0.0", timeout=60)
        took = time.time() - t
        load.join()
        assert status == 503, f"deploy with the object store down answered {status}: {body[:300]}"
        assert "object store" in body.lower(), f"the refusal does not name the object store: {body[:300]}"
        assert not load.failures(), f"serving affected: {load.failures()[:3]}"
        current = json.loads(load.results[-1][3]).get("version")
        assert current == before, f"serving {current} after a refused deploy (was {before})"
        return f"refused 503 in {took:.1f} s naming the object store; {len(load.results)} calls, 0 failed"
    finally:
        topology("start", "s3")


def test_notify_restart_misses_no_retained_event(p):
    import websockets  # noqa: PLC0415 (only this test needs it)

    s = p.session()
    r = s.post(f"{p.url}/api/notify/subscribe", json={"app_name": APP, "action_name": "tick"}, timeout=10)
    assert r.ok, r.text
    start_seq = max([seq for seq, _ in stream_messages("NR_ACTIONS", f"action.triggered.{APP}.tick")] or [0])
    ws_url = p.url.replace("http://", "ws://") + "/api/ws/notify"
    received = []
    sockets = []  # (connection number, last_id it was opened with, first id it sent)
    stop = threading.Event()

    def fire():
        fs = p.session()
        n = 0
        while not stop.is_set() and n < 200:
            try:
                p.sync(fs, {"action": 1, "n": n})
            except requests.RequestException:
                pass
            n += 1
            time.sleep(0.05)

    async def listen(seconds):
        # From the subscription on: what was published before the socket opened too.
        last_id, reconnects = start_seq, 0
        deadline = time.time() + seconds
        while time.time() < deadline:
            url = ws_url + (f"?last_id={last_id}" if last_id is not None else "")
            try:
                async with websockets.connect(
                    url, additional_headers={"Authorization": f"Bearer {p.token}"}, open_timeout=5
                ) as ws:
                    sockets.append([reconnects, last_id, None])
                    while time.time() < deadline:
                        try:
                            raw = await asyncio.wait_for(ws.recv(), timeout=0.5)
                        except asyncio.TimeoutError:
                            continue
                        msg = json.loads(raw)
                        if msg.get("type") == "action" and msg.get("app_name") == APP:
                            received.append(msg["id"])
                            if sockets[-1][2] is None:
                                sockets[-1][2] = msg["id"]
                            last_id = msg["id"]
            except (OSError, websockets.exceptions.WebSocketException):
                reconnects += 1
                await asyncio.sleep(0.2)
        return reconnects

    firer = threading.Thread(target=fire)

    def restarts():
        time.sleep(2.0)
        for name in ("notify-1", "notify-2"):
            topology("kill", name, "TERM")
            topology("start", name)
            time.sleep(1.0)
        time.sleep(2.0)
        stop.set()

    restarter = threading.Thread(target=restarts)
    firer.start()
    restarter.start()
    try:
        reconnects = asyncio.run(listen(25))
    finally:
        stop.set()
        firer.join(30)
        restarter.join(60)
    # Whatever was published after the subscription, as the stream holds it.
    expected = sorted(seq for seq, _ in stream_messages("NR_ACTIONS", f"action.triggered.{APP}.tick")
                      if seq > start_seq)
    dupes = len(received) - len(set(received))
    missing = sorted(set(expected) - set(received))
    assert reconnects >= 1, "the socket was never closed by a restart"
    twice = sorted({i for i in received if received.count(i) > 1})
    assert not dupes, (f"{dupes} duplicate events (ids {twice[:5]}..{twice[-1:]}); sockets "
                       f"(reconnect, last_id, first id sent): {sockets}")
    assert not missing, f"{len(missing)} of {len(expected)} events missed: {missing[:10]}"
    return f"{len(expected)} events, {reconnects} reconnect(s), none missed, none twice"


TESTS = [
    test_runner_killed_during_async_load,
    test_nats_node_killed_under_load,
    test_postgres_cut_and_restored,
    test_gateway_killed_behind_the_load_balancer,
    test_deploy_during_sync_load,
    test_object_store_down_during_deploy,
    test_notify_restart_misses_no_retained_event,
]


def selected(words):
    return [t for t in TESTS if not words or any(w in t.__name__ for w in words)]


def main():
    args = sys.argv[1:]
    if args[:1] == ["--list"]:
        print("\n".join(t.__name__ for t in selected(args[1:])))
        return 0
    load_env()
    p = Platform()
    # The fault app, once: a later test process finds it deployed.
    try:
        deployed = p.sync(p.session(), {}).status_code == 200
    except requests.RequestException:
        deployed = False
    if not deployed:
        status, body = p.deploy("1.0.0")
        if status not in (200, 201):
            print(f"setup: deploy refused: {status} {body[:500]}")
            return 1
    passed = failed = 0
    for test in selected(args):
        t = time.time()
        try:
            note = test(p)
            passed += 1
            print(f"PASS {test.__name__} ({time.time() - t:.1f} s): {note}", flush=True)
        except Exception as e:  # noqa: BLE001 (a failed test is reported, the next runs)
            failed += 1
            print(f"FAIL {test.__name__} ({time.time() - t:.1f} s): {type(e).__name__}: {e}", flush=True)
        # Every test leaves the topology whole for the next.
        topology("status", check=False)
    if passed + failed > 1:
        print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""What the fault tests (scripts/fault_tests.py) share: the topology's controls, the
platform as a client sees it, bounded sync load, and checks on jobs and their events."""

import asyncio
import io
import json
import os
import subprocess
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


def process_pid(name):
    """The pid `topology status` gives for a process of the topology."""
    for line in topology("status", check=False).splitlines():
        fields = line.split()
        if len(fields) > 1 and fields[0] == name and fields[1].isdigit():
            return int(fields[1])
    raise AssertionError(f"no pid for {name}")


def descendants(root):
    """The live processes under `root`, from /proc."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                state, ppid = f.read().rsplit(")", 1)[1].split()[:2]
        except (OSError, ValueError):
            continue
        if state not in ("Z", "X"):
            children.setdefault(int(ppid), []).append(int(entry))
    out, todo = [], [root]
    while todo:
        for kid in children.get(todo.pop(), []):
            out.append(kid)
            todo.append(kid)
    return out


def still_running(pids):
    """Those of `pids` that are live processes (not gone, not zombies)."""
    alive = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X"):
                    alive.append(pid)
        except (OSError, IndexError):
            pass
    return alive


def gateway_ready(n):
    """(status, body) of gateway `n`'s /readyz, straight to the gateway."""
    port = int(os.environ.get("NR_TOPOLOGY_PORT", "8080")) + 10000 + 30 + n
    try:
        r = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        return r.status_code, r.text
    except requests.RequestException as e:
        return type(e).__name__, str(e)


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
    # A final event the bus refused while it moved leaders is published again when the
    # job's work item comes back (a second after the stream has a leader again): wait
    # for it within the same budget, then hold each job to exactly one.
    deadline = time.time() + 15
    while True:
        counts = final_events(ids)
        wrong = {i: c for i, c in counts.items() if c != 1}
        if not wrong or any(c > 1 for c in wrong.values()) or time.time() > deadline:
            break
        time.sleep(0.5)
    assert not wrong, f"jobs without exactly one final job.progress event: {list(wrong.items())[:5]}"
    return f"{len(ids)} jobs completed, each with one final event"

"""Fault tests on the multi-process topology (scripts/topology), each under bounded load.

Run by scripts/fault-tests, which brings a topology up, runs each test in a process of
its own under a time limit and takes the topology down. Every load is bounded in calls
and seconds; every wait has a deadline. Prints one line per test and `N passed, N
failed`; exits 1 when any failed.

  fault_tests.py --list [WORD...]   the tests whose name contains a WORD (all without)
  fault_tests.py [WORD...]          deploys the fault app when it is not, runs those tests
"""

import asyncio
import json
import os
import socket
import sys
import threading
import time

import requests

from fault_lib import (APP, Platform, SyncLoad, check_jobs_exactly_once, descendants,
                       gateway_ready, load_env, process_pid, still_running, stream_messages,
                       submit_many, topology)


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


def runner_names():
    return [line.split()[0] for line in topology("status", check=False).splitlines()
            if line.startswith("runner-")]


def test_runner_killed_holding_sync_calls(p):
    """A runner dies holding sync calls: each ends 502 within seconds of the death (its
    heartbeats stop), not after the 30 s time limit, and the next call is served; its app
    processes end with it."""
    runners = runner_names()
    victim, others = runners[-1], runners[:-1]
    # Every call on one runner: the others stop first, holding nothing.
    for name in others:
        topology("kill", name, "TERM")
    results, lock = [], threading.Lock()

    def call(i):
        t = time.time()
        try:
            r = p.sync(p.session(), {"sleep": 15, "n": i}, timeout=45)
            res = (t, time.time(), r.status_code, r.text[:300])
        except requests.RequestException as e:
            res = (t, time.time(), type(e).__name__, str(e)[:300])
        with lock:
            results.append(res)

    try:
        time.sleep(1.0)  # the stopped runners' unsubscriptions reach every node
        # More calls than the runner has workers: some wait for one, held all the same.
        threads = [threading.Thread(target=call, args=(i,)) for i in range(6)]
        for th in threads:
            th.start()
        time.sleep(2.0)
        # Its Python hosts and workers, two of them inside a 15 s call: none outlives
        # the runner for long (a host ends with its control pipe and takes its workers;
        # what init adopts instead, the runners started again kill).
        apps = descendants(process_pid(victim))
        assert apps, f"{victim} runs no app process"
        killed_at = time.time()
        topology("kill", victim, "KILL")
        for name in others:
            topology("start", name)
        for th in threads:
            th.join(50)
        assert len(results) == len(threads), f"calls still waiting: {len(threads) - len(results)}"
        wrong = [r for r in results if r[2] != 502 or "stopped before answering" not in r[3]]
        assert not wrong, f"calls on the killed runner did not end 502 naming it: {wrong[:3]}"
        slowest = max(r[1] - killed_at for r in results)
        assert slowest < 10, f"the last call ended {slowest:.1f} s after the kill (time limit 30 s)"
        after = p.sync(p.session(), {"n": -1})
        assert after.status_code == 200, f"no runner serves after the kill: {after.status_code} {after.text[:200]}"
        # Before the calls' own end (15 s from their start, 13 s after the kill).
        deadline = killed_at + 8
        while still_running(apps) and time.time() < deadline:
            time.sleep(0.2)
        left = still_running(apps)
        assert not left, (f"{len(left)} of the killed runner's {len(apps)} app processes "
                          f"still run {time.time() - killed_at:.0f} s after the kill")
        return (f"{len(results)} calls held by the killed runner ended 502 within "
                f"{slowest:.1f} s of the kill; the next call was served; its {len(apps)} "
                f"app processes were gone {time.time() - killed_at:.1f} s after the kill")
    finally:
        for name in runners:
            topology("start", name)


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
    """A gateway dies under load: only calls that reached it before it was gone fail
    (a POST is never retried by the load balancer, as it may have run); every call
    started once it is gone is served by the other gateway."""
    # Gone is when its port refuses connections (its sockets closed), not when the
    # process is reaped.
    gw1 = int(os.environ.get("NR_TOPOLOGY_PORT", "8080")) + 10000 + 31
    load = SyncLoad(p, threads=4, seconds=6).start()
    time.sleep(2.0)
    killed_at = time.time()
    # The kill waits for the process to be reaped: the port is watched meanwhile.
    killer = threading.Thread(target=topology, args=("kill", "gateway-1", "KILL"))
    killer.start()
    gone_at = None
    while gone_at is None and time.time() < killed_at + 5:
        try:
            socket.create_connection(("127.0.0.1", gw1), timeout=0.2).close()
            time.sleep(0.01)
        except OSError:
            gone_at = time.time()
    killer.join(60)
    try:
        assert gone_at is not None, f"port {gw1} still open 5 s after the kill"
        assert gone_at - killed_at < 1.0, f"port {gw1} closed {gone_at - killed_at:.2f} s after the kill"
        load.join()
        fails = load.failures()
        # A caller whose call failed calls again at once, and that call may still reach
        # the dying process: the bound is in time, not one per caller.
        late = [r for r in fails if r[0] > gone_at]
        assert not late, (
            f"calls started after the gateway was gone ({gone_at - killed_at:.3f} s after "
            f"the kill) failed: {late[:3]}"
        )
        after = [r for r in load.results if r[0] > gone_at]
        assert len(after) > 100, f"only {len(after)} calls after the kill: the load stalled"
        return (f"{len(load.results)} calls, {len(fails)} failed, all started before the "
                f"gateway was gone ({gone_at - killed_at:.2f} s after the kill); "
                f"{len(after)} after it, 0 failed")
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


def test_deploy_right_after_the_deploy_service_restarts(p):
    """The deploy service restarts beside running runners: the first deploy after it
    is up waits for every runner, not for none or some, and answers once the new
    version is what every call gets."""
    before = serving_version(p)
    new = f"{int(before.split('.')[0]) + 1}.0.0"
    topology("kill", "deploy", "TERM")
    topology("start", "deploy")
    status, body = p.deploy(new)
    assert status in (200, 201), f"deploy right after a restart refused: {status} {body[:300]}"
    s = p.session()
    got = [p.sync(s, {"n": i}).json().get("version") for i in range(12)]
    assert set(got) == {new}, f"calls right after the deploy answered: {got}"
    return f"deployed {new} at once; the next 12 calls all on it"


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


def test_nats_quorum_lost_and_restored(p):
    """Two of the three NATS nodes die: JetStream has no quorum. Each gateway's /readyz
    says NATS is down, a submit answers 503 (not 500, not a hang), and once the nodes are
    back the platform is ready again and every acknowledged job completes once."""
    ids, refused = submit_many(p, 10, {"sleep": 0.2})
    assert not refused, refused
    killed_at = time.time()
    topology("kill", "nats-2", "KILL")
    topology("kill", "nats-3", "KILL")
    try:
        # nats-server gives up a leader without quorum within about 20 s (21 s seen).
        unready, deadline = {}, time.time() + 45
        while len(unready) < 2 and time.time() < deadline:
            for n in (1, 2):
                status, body = gateway_ready(n)
                if status == 503 and "NATS" in body:
                    unready.setdefault(n, round(time.time() - killed_at, 1))
            time.sleep(0.5)
        assert len(unready) == 2, f"gateways still ready 45 s after the quorum was lost: {unready}"
        t = time.time()
        r = p.submit(p.session(), {"n": -1})
        took = time.time() - t
        assert r.status_code == 503, f"a submit without quorum answered {r.status_code}: {r.text[:300]}"
    finally:
        topology("start", "nats-2")
        topology("start", "nats-3")
    back_at, deadline = time.time(), time.time() + 60
    ready = set()
    while len(ready) < 2 and time.time() < deadline:
        ready |= {n for n in (1, 2) if gateway_ready(n)[0] == 200}
        time.sleep(0.5)
    assert len(ready) == 2, f"gateways not ready 60 s after the nodes came back: {[gateway_ready(n) for n in (1, 2)]}"
    ready_in = time.time() - back_at
    after, statuses = None, []
    while after is None and time.time() < deadline:
        r = p.submit(p.session(), {"n": -2})
        statuses.append(r.status_code)
        if r.status_code == 202:
            after = r.json()["job_id"]
        else:
            time.sleep(0.5)
    assert after, f"submits not accepted again after the nodes came back: {statuses[-5:]}"
    summary = check_jobs_exactly_once(p, ids + [after], seconds=60)
    return (f"unready within {max(unready.values())} s, submit 503 in {took:.1f} s; "
            f"ready {ready_in:.1f} s after the nodes came back; {summary}")


def test_runners_started_while_the_object_store_is_down(p):
    """Runners (re)started while the object store is away cannot load the app: a sync
    call answers 503 naming the platform's failure, jobs wait without using up their
    attempts, and once the store is back calls are served and every job completes once."""
    runners = runner_names()
    topology("kill", "s3", "KILL")
    try:
        for name in runners:
            topology("kill", name, "TERM")
        for name in runners:
            topology("start", name)
        r = p.sync(p.session(), {}, timeout=30)
        assert r.status_code == 503, f"a call no runner can load answered {r.status_code}: {r.text[:300]}"
        assert "platform" in r.text, f"the 503 does not say whose failure it is: {r.text[:300]}"
        ids, refused = submit_many(p, 10, {})
        assert not refused, refused
        # Past three runs' worth of retries (1 + 2 + 4 s): none may have used them up.
        time.sleep(9)
        gave_up = {k: v for k, v in p.jobs(ids).items() if v[0] == "failed"}
        assert not gave_up, f"jobs failed while the object store was away: {list(gave_up.items())[:3]}"
    finally:
        topology("start", "s3")
    back_at, deadline, last = time.time(), time.time() + 30, None
    while time.time() < deadline:
        last = p.sync(p.session(), {}, timeout=30)
        if last.status_code == 200:
            break
        time.sleep(0.5)
    assert last is not None and last.status_code == 200, (
        f"calls not served 30 s after the object store came back: {last.status_code} {last.text[:200]}"
    )
    served_in = time.time() - back_at
    summary = check_jobs_exactly_once(p, ids, seconds=60)
    return f"503 while away; served {served_in:.1f} s after the store came back; {summary}"


TESTS = [
    test_runner_killed_during_async_load,
    test_runner_killed_holding_sync_calls,
    test_nats_node_killed_under_load,
    test_postgres_cut_and_restored,
    test_gateway_killed_behind_the_load_balancer,
    test_deploy_during_sync_load,
    test_deploy_right_after_the_deploy_service_restarts,
    test_object_store_down_during_deploy,
    test_runners_started_while_the_object_store_is_down,
    test_nats_quorum_lost_and_restored,
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

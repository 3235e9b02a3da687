"""Closed-batch Celery load, shaped like `nr-load async`: JOBS jobs submitted from
CONCURRENCY threads, then every result awaited. A job's end is the `date_done` the
worker stored in the result backend (the job's own clock, as the platform's final
UPDATE is), so waiting on results does not count. Prints one line:

    celery: <jobs/s> jobs/s p50 <ms> p99 <ms> completed <n>/<jobs>
"""

import datetime
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from celery_app import app, execute  # noqa: E402

JOBS = int(os.environ.get("JOBS", "2000"))
CONCURRENCY = int(os.environ.get("CONCURRENCY", "64"))
TIMEOUT = float(os.environ.get("TIMEOUT_S", "120"))


def main():
    # Warm-up: every worker process opens its connection.
    for r in [execute.delay({}) for _ in range(20)]:
        r.get(timeout=30)
    submitted = []
    lock = threading.Lock()
    counter = iter(range(JOBS))

    def submitter():
        mine = []
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            t = time.time()
            mine.append((t, execute.delay({})))
        with lock:
            submitted.extend(mine)

    begin = time.time()
    threads = [threading.Thread(target=submitter) for _ in range(CONCURRENCY)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    deadline = time.time() + TIMEOUT
    lat, last, done = [], begin, 0
    for t, res in submitted:
        try:
            res.get(timeout=max(0.1, deadline - time.time()))
        except Exception:
            continue
        end = res.date_done
        if isinstance(end, str):
            end = datetime.datetime.fromisoformat(end)
        if end.tzinfo is None:
            end = end.replace(tzinfo=datetime.timezone.utc)
        end = end.timestamp()
        done += 1
        last = max(last, end)
        lat.append(max(0.0, end - t) * 1000)
    lat.sort()
    pct = lambda q: lat[min(len(lat) - 1, round((len(lat) - 1) * q))] if lat else 0.0  # noqa: E731
    rate = done / max(1e-9, last - begin)
    print("celery: %.0f jobs/s p50 %.2f ms p99 %.2f ms completed %d/%d" % (rate, pct(0.5), pct(0.99), done, JOBS))


if __name__ == "__main__":
    main()

"""Async baseline: Celery (prefork, Redis broker and result backend) running the
guide's starter `execute` with one warm psycopg2 connection per worker process."""

import os
import sys

import psycopg2
from celery import Celery
from celery.signals import worker_process_init

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "apps", "starter"))
import main as starter  # noqa: E402

REDIS = os.environ.get("NR_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
app = Celery("nr_bench", broker=REDIS, backend=REDIS)
app.conf.update(task_ignore_result=False, worker_prefetch_multiplier=4, result_expires=600)
_conn = None


@worker_process_init.connect
def _open(**_):
    global _conn
    _conn = psycopg2.connect(os.environ["DATABASE_URL"])


@app.task(name="starter.execute")
def execute(data):
    global _conn
    if _conn is None or _conn.closed:
        _conn = psycopg2.connect(os.environ["DATABASE_URL"])
    try:
        return starter.execute(data, conn=_conn)
    finally:
        if _conn.get_transaction_status() != psycopg2.extensions.TRANSACTION_STATUS_IDLE:
            _conn.rollback()

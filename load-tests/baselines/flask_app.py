"""Sync baseline: a plain Flask app serving the guide's starter `execute` (run under
gunicorn with 4 sync workers by `load-tests/run.sh`). Each worker process opens one
psycopg2 connection on first use and passes it as `conn`, as the platform does."""

import os
import sys

import psycopg2
from flask import Flask, jsonify, request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "apps", "starter"))
import main as starter  # noqa: E402

app = Flask(__name__)
_conn = None


def _connection():
    global _conn
    if _conn is None or _conn.closed:
        _conn = psycopg2.connect(os.environ["DATABASE_URL"])
    return _conn


@app.post("/api/sync/starter")
def sync_call():
    data = request.get_json(silent=True) or {}
    conn = _connection()
    try:
        return jsonify(starter.execute(data, conn=conn))
    finally:
        if conn.get_transaction_status() != psycopg2.extensions.TRANSACTION_STATUS_IDLE:
            conn.rollback()

"""Signed webhooks in, a list out.

Set the shared secret once:  noderouter app env set webhook_receiver GITHUB_WEBHOOK_SECRET --secret
then point GitHub (or any sender signing the raw body with HMAC-SHA256 as
X-Hub-Signature-256: sha256=<hex>, with a unique X-GitHub-Delivery) at
https://<platform>/apps/webhook_receiver/api/github. The gateway checks the signature
and refuses replays before this code runs."""
import contextlib
import json
import os

import psycopg2


def _migrate() -> None:
    dsn = os.getenv("DATABASE_URL", "")
    if not dsn:
        return
    with psycopg2.connect(dsn) as conn:
        with conn.cursor() as cur:
            cur.execute("""
                CREATE TABLE IF NOT EXISTS webhook_receiver_items (
                    id SERIAL PRIMARY KEY,
                    event TEXT,
                    delivery TEXT,
                    body TEXT NOT NULL,
                    received_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
                )
            """)
        conn.commit()


_migrate()


@contextlib.contextmanager
def _get_conn(conn=None):
    if conn is not None:
        yield conn
    else:
        with psycopg2.connect(os.getenv("DATABASE_URL")) as own:
            yield own


def execute(data: dict, conn=None) -> dict:
    action = data.get("action")
    headers = data.get("headers", {})
    if action == "received":
        with _get_conn(conn) as c, c.cursor() as cur:
            cur.execute(
                "INSERT INTO webhook_receiver_items (event, delivery, body) VALUES (%s, %s, %s)",
                (headers.get("x-github-event"), headers.get("x-github-delivery"),
                 json.dumps(data.get("body"))),
            )
            c.commit()
        return {"json": {"ok": True},
                "_actions": [{"name": "received", "payload": {"event": headers.get("x-github-event")}}]}
    if action == "events":
        with _get_conn(conn) as c, c.cursor() as cur:
            cur.execute("SELECT id, event, delivery, received_at::text FROM webhook_receiver_items ORDER BY id DESC LIMIT 50")
            rows = [dict(zip(("id", "event", "delivery", "received_at"), r)) for r in cur.fetchall()]
        return {"json": {"events": rows}}
    return {"error": f"unknown action {action!r}"}

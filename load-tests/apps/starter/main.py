"""The author guide's starter app, as written to the guide (load tests run it unchanged
on the platform and in the Flask and Celery baselines)."""

import contextlib
import logging
import os

import psycopg2

log = logging.getLogger(__name__)


def _migrate() -> None:
    """Idempotent DDL, run on every load before any request arrives."""
    dsn = os.getenv("DATABASE_URL", "")
    if not dsn:
        log.warning("[starter] DATABASE_URL not set; skipping migration")
        return
    with psycopg2.connect(dsn) as conn:
        with conn.cursor() as cur:
            cur.execute("""
                CREATE TABLE IF NOT EXISTS starter_items (
                    id SERIAL PRIMARY KEY,
                    name TEXT NOT NULL,
                    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
                )
            """)
        conn.commit()
    log.info("[starter] migration ok")


_migrate()


@contextlib.contextmanager
def _get_conn(conn=None):
    if conn is not None:
        yield conn
    else:
        with psycopg2.connect(os.getenv("DATABASE_URL")) as own:
            yield own


def execute(data: dict, conn=None) -> dict:
    action = str(data.get("action", "")).strip()
    if action == "list":
        return _list(conn=conn)
    if action == "create":
        return _create(data, conn=conn)
    return {"message": "ok"}


def _list(conn=None) -> dict:
    with _get_conn(conn) as c:
        with c.cursor() as cur:
            cur.execute("SELECT id, name FROM starter_items ORDER BY id DESC")
            rows = cur.fetchall()
    return {"rows": [{"id": r[0], "name": r[1]} for r in rows]}


def _create(data: dict, conn=None) -> dict:
    name = str(data.get("name", "")).strip()
    if not name:
        raise ValueError("name is required")
    with _get_conn(conn) as c:
        with c.cursor() as cur:
            cur.execute("INSERT INTO starter_items (name) VALUES (%s) RETURNING id", (name,))
            new_id = cur.fetchone()[0]
    return {"id": new_id, "name": name}

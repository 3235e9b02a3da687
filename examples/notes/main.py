import os, contextlib, logging, psycopg2

log = logging.getLogger(__name__)


def _migrate() -> None:
    """Idempotent DDL, run once per deploy before any request arrives."""
    dsn = os.getenv("DATABASE_URL", "")
    if not dsn:
        log.warning("[notes] DATABASE_URL not set; skipping migration")
        return
    with psycopg2.connect(dsn) as conn:
        with conn.cursor() as cur:
            cur.execute("""
                CREATE TABLE IF NOT EXISTS notes_items (
                    id SERIAL PRIMARY KEY,
                    name TEXT NOT NULL,
                    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
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
    action = str(data.get("action", "")).strip()
    if action == "list":
        return _list(conn=conn)
    if action == "create":
        return _create(data, conn=conn)
    return {"message": "ok"}


def _list(conn=None) -> dict:
    with _get_conn(conn) as c:
        with c.cursor() as cur:
            cur.execute("SELECT id, name FROM notes_items ORDER BY id DESC")
            rows = cur.fetchall()
    return {"rows": [{"id": r[0], "name": r[1]} for r in rows]}


MAX_NAME = 500


def _create(data: dict, conn=None) -> dict:
    # Bad input is the user's to fix: answer with what is wrong (the page shows
    # `error`), not with an exception (HTTP 500).
    raw = data.get("name")
    if raw is not None and not isinstance(raw, str):
        return {"error": "the note must be text"}
    name = (raw or "").strip()
    if not name:
        return {"error": "the note is empty: write something first"}
    if len(name) > MAX_NAME:
        return {"error": "the note is %d characters long; at most %d fit" % (len(name), MAX_NAME)}
    with _get_conn(conn) as c:
        with c.cursor() as cur:
            cur.execute("INSERT INTO notes_items (name) VALUES (%s) RETURNING id", (name,))
            new_id = cur.fetchone()[0]
        c.commit()
    return {
        "id": new_id,
        "name": name,
        "_actions": [{"name": "note_created", "payload": {"id": new_id, "name": name}}],
    }

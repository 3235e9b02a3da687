"""A report written every night by a schedule (manifest `schedules`), read back over
a route (manifest `routes`): GET /apps/nightly_report/api/reports, or as a CSV file
(GET /apps/nightly_report/api/reports.csv answers a short-lived download link)."""
import contextlib
import os

import psycopg2

from noderouter import download


def _migrate() -> None:
    dsn = os.getenv("DATABASE_URL", "")
    if not dsn:
        return
    with psycopg2.connect(dsn) as conn:
        with conn.cursor() as cur:
            cur.execute("""
                CREATE TABLE IF NOT EXISTS nightly_report_items (
                    id SERIAL PRIMARY KEY,
                    tick TEXT NOT NULL,
                    late BOOLEAN NOT NULL,
                    written_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
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
    if action == "report":
        # A scheduled run: `_schedule` names the schedule and the tick it stands for.
        tick = data.get("_schedule", {}).get("tick", "manual")
        late = bool(data.get("_schedule", {}).get("late", False))
        with _get_conn(conn) as c, c.cursor() as cur:
            cur.execute(
                "INSERT INTO nightly_report_items (tick, late) VALUES (%s, %s) RETURNING id",
                (tick, late),
            )
            report_id = cur.fetchone()[0]
            c.commit()
        return {"report": report_id, "tick": tick,
                "_actions": [{"name": "report", "payload": {"report": report_id, "tick": tick}}]}
    if action == "latest":
        with _get_conn(conn) as c, c.cursor() as cur:
            cur.execute("SELECT id, tick, late FROM nightly_report_items ORDER BY id DESC LIMIT 30")
            rows = [{"id": r[0], "tick": r[1], "late": r[2]} for r in cur.fetchall()]
        return {"json": {"reports": rows}, "headers": {"Cache-Control": "no-store"}}
    if action == "export":
        with _get_conn(conn) as c, c.cursor() as cur:
            cur.execute("SELECT id, tick, late FROM nightly_report_items ORDER BY id")
            lines = ["id,tick,late"] + [f"{r[0]},{r[1]},{str(r[2]).lower()}" for r in cur.fetchall()]
        # The caller gets {"download_url": "/files/<token>", ...}, served as an attachment.
        return download("\n".join(lines) + "\n", "nightly-reports.csv", "text/csv")
    return {"error": f"unknown action {action!r}"}

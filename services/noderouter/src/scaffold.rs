//! `noderouter app new`: the author guide's five starter files, name and prefix filled in.

use std::path::Path;

use anyhow::Context as _;

/// CSS prefix from the app name: initials of its words (`app_sales_report` → `sr`).
pub fn css_prefix(name: &str) -> String {
    let words: Vec<&str> = name
        .split(['_', '-'])
        .filter(|w| !w.is_empty() && !w.eq_ignore_ascii_case("app"))
        .collect();
    let prefix: String = match words.as_slice() {
        [] => name.chars().take(3).collect(),
        [one] if one.len() <= 6 => (*one).to_owned(),
        [one] => one.chars().take(3).collect(),
        many => many.iter().filter_map(|w| w.chars().next()).collect(),
    };
    let prefix = prefix.to_ascii_lowercase();
    if prefix
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
    {
        prefix
    } else {
        format!("a{prefix}")
    }
}

pub fn new_app(name: &str, parent: &Path) -> anyhow::Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid {
        anyhow::bail!("app name {name:?} must match ^[a-zA-Z0-9][a-zA-Z0-9_-]{{0,63}}$");
    }
    let dir = parent.join(name);
    if dir.exists() {
        anyhow::bail!("{} already exists", dir.display());
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let prefix = css_prefix(name);
    let fill = |t: &str| t.replace("<slug>", name).replace("<prefix>", &prefix);
    for (file, template) in [
        ("manifest.json", MANIFEST),
        ("main.py", MAIN_PY),
        ("index.html", INDEX_HTML),
        ("index.js", INDEX_JS),
        ("style.css", STYLE_CSS),
    ] {
        std::fs::write(dir.join(file), fill(template))?;
    }
    outln!("created {} (CSS prefix {prefix}-)", dir.display());
    Ok(())
}

const MANIFEST: &str = r#"{
  "app_name": "<slug>",
  "display_name": "<slug>",
  "version": "1.0.0",
  "api_version": "1.0.0",
  "description": "One-line description shown in the admin UI.",
  "required_permission": "",
  "actions": []
}
"#;

const MAIN_PY: &str = r#"import os, contextlib, logging, psycopg2

log = logging.getLogger(__name__)


def _migrate() -> None:
    """Idempotent DDL, run once per deploy before any request arrives."""
    dsn = os.getenv("DATABASE_URL", "")
    if not dsn:
        log.warning("[<slug>] DATABASE_URL not set; skipping migration")
        return
    with psycopg2.connect(dsn) as conn:
        with conn.cursor() as cur:
            cur.execute("""
                CREATE TABLE IF NOT EXISTS <slug>_items (
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
            cur.execute("SELECT id, name FROM <slug>_items ORDER BY id DESC")
            rows = cur.fetchall()
    return {"rows": [{"id": r[0], "name": r[1]} for r in rows]}


def _create(data: dict, conn=None) -> dict:
    name = str(data.get("name", "")).strip()
    if not name:
        raise ValueError("name is required")
    with _get_conn(conn) as c:
        with c.cursor() as cur:
            cur.execute("INSERT INTO <slug>_items (name) VALUES (%s) RETURNING id", (name,))
            new_id = cur.fetchone()[0]
        c.commit()
    return {"id": new_id, "name": name}
"#;

const INDEX_HTML: &str = r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="UTF-8" />
  <meta name="viewport" content="width=device-width, initial-scale=1.0" />
  <title><slug></title>
  <link rel="stylesheet" href="/static/css/bootstrap.min.css" />
  <link rel="stylesheet" href="style.css" />
</head>
<body>
  <div class="container py-4">
    <h1 class="h3 mb-3"><slug></h1>
    <form class="<prefix>-form d-flex gap-2 mb-3" data-action="create">
      <input class="form-control" name="name" placeholder="New item" required />
      <button class="btn btn-primary" type="submit">Add</button>
    </form>
    <ul class="<prefix>-list list-group"></ul>
  </div>
  <script src="index.js"></script>
</body>
</html>
"#;

const INDEX_JS: &str = r#"(function () {
  "use strict";

  var root = document.querySelector(".nr-app") || document.body;

  function esc(str) {
    return String(str == null ? "" : str)
      .replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
  }

  async function syncCall(body) {
    var res = await fetch("/api/sync/<slug>", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    var data = await res.json();
    if (!res.ok) throw new Error(data.error || "HTTP " + res.status);
    return data;
  }

  async function refresh() {
    var data = await syncCall({ action: "list" });
    root.querySelector(".<prefix>-list").innerHTML = data.rows
      .map(function (r) { return '<li class="list-group-item <prefix>-item">' + esc(r.name) + "</li>"; })
      .join("");
  }

  root.addEventListener("submit", async function (e) {
    var form = e.target.closest("[data-action='create']");
    if (!form) return;
    e.preventDefault();
    await syncCall({ action: "create", name: form.elements.name.value });
    form.reset();
    refresh();
  });

  refresh();
})();
"#;

const STYLE_CSS: &str = r#"/* All classes are prefixed <prefix>- and all colours use var(--bs-*) tokens. */
.<prefix>-item {
  background: var(--bs-secondary-bg);
  border-color: var(--bs-border-color);
}
"#;

#[cfg(test)]
mod tests {
    use super::css_prefix;

    #[test]
    fn prefix_is_the_initials_of_the_words_without_app() {
        assert_eq!(css_prefix("app_sales_report"), "sr");
        assert_eq!(css_prefix("calculator"), "cal");
        assert_eq!(css_prefix("notes"), "notes");
        assert_eq!(css_prefix("hello-world"), "hw");
        assert_eq!(css_prefix("9lives"), "a9lives");
        assert_eq!(css_prefix("123456789"), "a123");
    }
}

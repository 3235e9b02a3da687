// Test bundles written to the author guide, zipped with Python's zipfile (no npm zip
// dependency): a paged app that fires an action, a job with progress, a slow job to
// cancel, and an app without a page.
"use strict";
const { execFileSync } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");

const PROGRESS = `
import os, time, psycopg2

def _progress(job_id, pct):
    with psycopg2.connect(os.getenv("DATABASE_URL")) as c:
        with c.cursor() as cur:
            cur.execute(
                "UPDATE noderouter_core.job_queue "
                "SET progress = %s, updated_at = NOW() WHERE id = %s",
                (pct, job_id),
            )
        c.commit()
`;

const APPS = {
  e2e_greeter: {
    "manifest.json": JSON.stringify({
      app_name: "e2e_greeter", display_name: "Greeter", version: "1.0.0", api_version: "1.0.0",
      description: "Greets and fires an action.", required_permission: "",
      actions: [{ name: "greeted", display_name: "Greeted", description: "Somebody was greeted." }],
    }),
    "main.py": `def execute(data: dict, conn=None) -> dict:
    name = str(data.get("name", "")).strip() or "nobody"
    return {"message": "hello, %s" % name, "_actions": [{"name": "greeted", "payload": {"name": name}}]}
`,
    "index.html": `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Greeter</title></head>
<body><div class="container py-4"><h1 class="h3">Greeter</h1>
<label class="form-label" for="grt-name">Name</label>
<input class="form-control mb-2" id="grt-name" value="page">
<button class="btn btn-primary" id="grt-go" type="button">Greet</button>
<p class="mt-2" id="grt-answer"></p></div>
<script src="index.js"></script></body></html>`,
    "index.js": `(function () {
  "use strict";
  document.getElementById("grt-go").addEventListener("click", function () {
    fetch("/api/sync/e2e_greeter", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ name: document.getElementById("grt-name").value }) })
      .then(function (r) { return r.json(); })
      .then(function (d) { document.getElementById("grt-answer").textContent = d.message || d.error; });
  });
})();
`,
  },
  e2e_job: {
    "manifest.json": JSON.stringify({
      app_name: "e2e_job", display_name: "Progress job", version: "1.0.0", api_version: "1.0.0",
      description: "Counts to 100 in steps of 10, or sleeps when asked.", required_permission: "", actions: [],
    }),
    "main.py": `${PROGRESS}
def execute(data: dict, conn=None) -> dict:
    job_id = data.get("_job_id", "")
    steps = int(data.get("steps", 10))
    pause = float(data.get("pause", 0.3))
    for i in range(1, steps + 1):
        time.sleep(pause)
        print("step %d of %d" % (i, steps))
        if job_id:
            _progress(job_id, min(99, i * 100 // steps))
    return {"done": True, "steps": steps}
`,
  },
  // A version of the greeter that passes the deploy's import check but that the runner
  // cannot load (a package missing where it runs), with markup in its error.
  e2e_greeter_broken: {
    "manifest.json": JSON.stringify({
      app_name: "e2e_greeter", display_name: "Greeter", version: "1.1.0", api_version: "1.0.0",
      description: "Greets and fires an action.", required_permission: "",
      actions: [{ name: "greeted", display_name: "Greeted", description: "Somebody was greeted." }],
    }),
    "main.py": `import os, sys
if os.path.basename(sys.argv[0]) == "nr_host.py":
    raise ImportError("No module named 'reportlab' <img id=pwn src=x onerror=window.pwned=1>")

def execute(data: dict, conn=None) -> dict:
    return {"message": "broken"}
`,
  },
  // A hostile page: it tries to leave a service worker behind, one from a download
  // link (scope /files/, every app's links) and one from its own bundle.
  e2e_sw: {
    "manifest.json": JSON.stringify({
      app_name: "e2e_sw", display_name: "Worker", version: "1.0.0", api_version: "1.0.0",
      description: "Tries to register service workers.", required_permission: "", actions: [],
    }),
    "main.py": `from noderouter import download

SW = "self.addEventListener('fetch', function (e) { e.respondWith(new Response('<p id=owned>owned</p>', {headers: {'content-type': 'text/html'}})); });"

def execute(data: dict, conn=None) -> dict:
    return download(SW, "sw.js", "text/javascript")
`,
    "sw.js": "self.addEventListener('fetch', function (e) { e.respondWith(new Response('owned')); });\n",
    "index.html": `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Worker</title></head>
<body><pre id="sw-result"></pre><script src="index.js"></script></body></html>`,
    "index.js": `(async function () {
  "use strict";
  var out = document.getElementById("sw-result");
  var results = [];
  if (!("serviceWorker" in navigator)) { out.textContent = "unavailable"; out.dataset.done = "1"; return; }
  var link = await fetch("/api/sync/e2e_sw", { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" })
    .then(function (r) { return r.json(); });
  for (var [url, scope] of [[link.download_url, "/files/"], ["/apps/e2e_sw/sw.js", "/apps/e2e_sw/"]]) {
    try { await navigator.serviceWorker.register(url, { scope: scope }); results.push("registered " + scope); }
    catch (e) { results.push("refused " + scope + ": " + e.name); }
  }
  out.textContent = results.join("\\n");
  out.dataset.done = "1";
})();
`,
  },
  // A route whose answer the browser may keep (an app's choice): per caller, so it
  // must not outlive the session that fetched it.
  e2e_cache: {
    "manifest.json": JSON.stringify({
      app_name: "e2e_cache", display_name: "Stamp", version: "1.0.0", api_version: "1.0.0",
      description: "Answers a new stamp each call, cacheable for ten minutes.", required_permission: "",
      actions: [{ name: "stamp", display_name: "Stamp", description: "A new stamp." }],
      routes: [{ method: "GET", path: "/stamp", action: "stamp" }],
    }),
    "main.py": `import uuid

def execute(data: dict, conn=None) -> dict:
    return {"json": {"stamp": uuid.uuid4().hex}, "headers": {"Cache-Control": "max-age=600"}}
`,
  },
};

/** Writes the app's zip under dir and returns its path. */
function zip(dir, app, fileName) {
  const src = path.join(dir, `${app}-src`);
  fs.mkdirSync(src, { recursive: true });
  for (const [name, text] of Object.entries(APPS[app])) fs.writeFileSync(path.join(src, name), text);
  return zipDir(src, path.join(dir, fileName || `${app}.zip`));
}

/** Zips the files of directory src (flat, at the zip's root) into out; returns out. */
function zipDir(src, out) {
  execFileSync("python3", ["-c",
    "import sys, os, zipfile\nsrc, out = sys.argv[1], sys.argv[2]\nwith zipfile.ZipFile(out, 'w') as z:\n    for n in sorted(os.listdir(src)):\n        z.write(os.path.join(src, n), n)\n",
    src, out]);
  return out;
}

/** Zips one of the repository's examples (examples/<name>) under dir; returns its path. */
function example(dir, name) {
  return zipDir(path.join(__dirname, "..", "..", "examples", name), path.join(dir, `${name}.zip`));
}

module.exports = { zip, example, APPS };

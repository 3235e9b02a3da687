// The admin console as a person uses it, in headless Chromium against a real platform
// (`noderouter up`, Postgres, NATS, Python workers). Bounded: each step has its own
// time limit, the whole file 4 minutes (package.json).
"use strict";
const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const platform = require("../lib/platform");
const bundles = require("../lib/bundles");
const { launch, axe, shot } = require("../lib/browser");

const STEP = 30000;

describe("admin console", { timeout: 240000 }, () => {
  let nr, browser, context, page;
  const foreign = [];

  before(async () => {
    nr = await platform.start();
    browser = await launch();
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    context.setDefaultTimeout(STEP);
    // Every request the pages make must stay on the platform's origin.
    context.on("request", (req) => {
      const u = req.url();
      if (!u.startsWith(nr.url) && !u.startsWith("data:") && !u.startsWith("blob:") && !u.startsWith("about:")) foreign.push(u);
    });
    page = await context.newPage();
  });

  after(async () => {
    if (browser) await browser.close();
    if (nr) await nr.stop();
  });

  async function api(method, url, body) {
    return page.evaluate(async ([m, u, b]) => {
      const r = await fetch(u, { method: m, headers: { "Content-Type": "application/json" }, body: b === undefined ? undefined : JSON.stringify(b) });
      return { status: r.status, data: await r.json().catch(() => null) };
    }, [method, url, body]);
  }

  it("logs in and lands on the dashboard", async () => {
    await page.goto(`${nr.url}/admin`);
    await page.waitForURL(/\/login/);
    await page.fill("#nr-username", "admin");
    await page.fill("#nr-password", nr.password);
    await page.click("#nr-login-submit");
    await page.waitForURL(`${nr.url}/admin`);
    await page.waitForSelector("#nr-runners-health");
  });

  it("stays on the platform after login whatever the next parameter says", async () => {
    // A fresh visitor (no session) following a crafted link: each of these resolves, in
    // a browser, to a path that starts with "//" and so names another host.
    const visitor = await browser.newContext();
    visitor.setDefaultTimeout(STEP);
    const p = await visitor.newPage();
    const off = [];
    p.on("request", (req) => { if (!req.url().startsWith(nr.url)) off.push(req.url()); });
    for (const next of ["/.//evil.example/phish/", "/apps/../..//evil.example/", "/%2e%2e/%2f%2fevil.example/"]) {
      await p.context().clearCookies();
      await p.goto(`${nr.url}/login?next=${encodeURIComponent(next)}`);
      await p.fill("#nr-username", "admin");
      await p.fill("#nr-password", nr.password);
      await p.click("#nr-login-submit");
      await p.waitForURL((u) => !u.pathname.startsWith("/login"));
      assert.equal(new URL(p.url()).origin, new URL(nr.url).origin, `${next} led to ${p.url()}`);
    }
    assert.deepEqual(off, []);
    await visitor.close();
  });

  it("deploys through the form and reads the report", async () => {
    await page.goto(`${nr.url}/admin/apps`);
    for (const [app, file] of [["e2e_greeter", "e2e_greeter.zip"], ["e2e_job", "e2e_job.zip"]]) {
      const zip = bundles.zip(nr.dir, app, file);
      await page.locator("form input[type=file]").first().setInputFiles(zip);
      await page.locator("form input[type=file]").first().evaluate((i) => i.form.requestSubmit());
      // The report names the app and its version (or the refusal, which fails here).
      await page.waitForFunction((a) => new RegExp(`Deployed ${a} version 1\\.0\\.0|refused|rejected|failed`, "i").test(document.querySelector("main").innerText), app);
      assert.match(await page.locator("main").innerText(), new RegExp(`Deployed ${app} version 1\\.0\\.0`));
    }
    const listed = await api("GET", "/admin/api/apps");
    assert.deepEqual(listed.data.apps.map((a) => a.app_name).sort(), ["e2e_greeter", "e2e_job"], JSON.stringify(listed.data));
  });

  it("runs an app from its page and from the run form", async () => {
    await page.goto(`${nr.url}/apps/e2e_greeter/`);
    await page.fill("#grt-name", "Ada");
    await page.click("#grt-go");
    await page.waitForFunction(() => document.getElementById("grt-answer").textContent === "hello, Ada");

    await page.goto(`${nr.url}/admin/run/e2e_greeter`);
    await page.fill("#nr-run-body", '{"name": "Form"}');
    await page.click("#nr-run-form button[type=submit]");
    await page.waitForSelector("#nr-run-status");
    assert.equal(await page.textContent("#nr-run-status"), "HTTP 200");
    assert.match(await page.textContent("#nr-run-result"), /hello, Form/);
    assert.match(await page.textContent("#nr-run-time"), /ms$/);

    // A bad body is refused in the page with a reason, nothing is sent.
    await page.fill("#nr-run-body", "{nope");
    await page.click("#nr-run-form button[type=submit]");
    await page.waitForFunction(() => /not JSON/.test(document.getElementById("nr-run-result").textContent));

    // An app without a page is no dead end: its page links to the run form.
    await page.goto(`${nr.url}/apps/e2e_job/`);
    await page.click("a[href='/admin/run/e2e_job']");
    await page.waitForURL(/\/admin\/run\/e2e_job$/);
  });

  it("watches a job's bar reach 100 % live", async () => {
    await page.goto(`${nr.url}/admin/run/e2e_job`);
    await page.fill("#nr-run-body", '{"steps": 10, "pause": 0.3}');
    await page.selectOption("#nr-run-mode", "async");
    await page.click("#nr-run-form button[type=submit]");
    const bar = page.locator("#nr-run-progress .progress-bar");
    await bar.waitFor();
    // Intermediate values arrive over the socket, then the final one.
    await page.waitForFunction(() => {
      const b = document.querySelector("#nr-run-progress .progress-bar");
      const v = Number(b && b.getAttribute("aria-valuenow"));
      return v > 0 && v < 100;
    });
    await page.waitForFunction(() => document.querySelector("#nr-run-progress .progress-bar").getAttribute("aria-valuenow") === "100");
    await page.waitForFunction(() => /"done": true/.test(document.getElementById("nr-run-final").textContent));
  });

  it("cancels a job from the jobs page, which follows it live", async () => {
    const r = await api("POST", "/api/async/e2e_job", { steps: 100, pause: 0.5 });
    assert.equal(r.status, 202, JSON.stringify(r));
    const id = r.data.job_id;
    await page.goto(`${nr.url}/admin/jobs`);
    const row = page.locator(`#nr-job-${id}`);
    await row.waitFor();
    await page.waitForFunction((i) => Number(document.querySelector(`#nr-job-${i} .progress-bar`).getAttribute("aria-valuenow")) > 0, id);
    page.once("dialog", (d) => d.accept());
    await row.locator(".nr-job-cancel").click();
    await page.waitForFunction((i) => document.querySelector(`#nr-job-${i}`).getAttribute("data-status") === "cancelled", id);
    const after = await api("GET", `/api/async/jobs/${id}`);
    assert.equal(after.data.status, "cancelled");
  });

  it("shows a job's logs line by line in its details", async () => {
    const r = await api("POST", "/api/async/e2e_job", { steps: 2, pause: 0.05 });
    assert.equal(r.status, 202, JSON.stringify(r));
    const id = r.data.job_id;
    for (let i = 0; i < 100; i++) {
      const j = await api("GET", `/api/async/jobs/${id}`);
      if (j.data.status === "completed") { break; }
      await new Promise((done) => setTimeout(done, 100));
    }
    await page.goto(`${nr.url}/admin/jobs`);
    const row = page.locator(`#nr-job-${id}`);
    await row.waitFor();
    await row.getByRole("button", { name: "Details" }).click();
    const logs = page.locator("#nr-job-details .nr-job-logs");
    await logs.waitFor();
    const text = await logs.textContent();
    // The lines themselves (each prefixed with its request id), not the API's JSON.
    assert.match(text, /step 1 of 2\n.*step 2 of 2/, text);
    assert.ok(!text.includes('"job_id"'), text);
  });

  it("creates a user, a role and a token", async () => {
    await page.goto(`${nr.url}/admin/roles`);
    await page.fill("#nr-role-name", "e2e_viewers");
    await page.fill("#nr-role-desc", "Made by the browser test");
    await page.click("#nr-role-form button[type=submit]");
    await page.waitForSelector("[data-role='e2e_viewers']");
    await page.selectOption("select[aria-label='Permission to grant to e2e_viewers']", "apps:read");
    await page.waitForFunction(() => /apps:read granted/.test(document.body.innerText));

    await page.goto(`${nr.url}/admin/users`);
    await page.fill("#nr-user-name", "e2e_ann");
    await page.fill("#nr-user-password", "a-long-password-42");
    await page.fill("#nr-user-roles", "e2e_viewers");
    await page.click("#nr-user-form button[type=submit]");
    await page.waitForSelector("[data-user='e2e_ann']");

    await page.goto(`${nr.url}/admin/tokens`);
    await page.fill("#nr-token-name", "e2e_ci");
    await page.fill("#nr-token-roles", "e2e_viewers");
    await page.click("#nr-token-form button[type=submit]");
    const secret = await page.locator("#nr-token-value").textContent();
    assert.ok(secret.length > 20, secret);
    // The secret works once shown, and is never listed again.
    const me = await fetch(`${nr.url}/api/auth/me`, { headers: { Authorization: `Bearer ${secret}` } });
    assert.equal(me.status, 200);
    await page.reload();
    await page.waitForSelector("[data-token='e2e_ci']");
    assert.ok(!(await page.content()).includes(secret));

    // The audit trail names what happened.
    await page.goto(`${nr.url}/admin/audit`);
    await page.waitForSelector("#nr-audit-rows tr");
    const audit = await page.locator("#nr-audit-rows").innerText();
    for (const needle of ["user created", "role created", "token issued", "deployed"]) assert.match(audit, new RegExp(needle));
    assert.ok(!/argon2/.test(audit));
  });

  it("sees an action arrive and stay in the history", async () => {
    const s = await api("POST", "/api/notify/subscribe", { app_name: "e2e_greeter", action_name: "greeted" });
    assert.ok(s.status < 300, JSON.stringify(s));
    await page.goto(`${nr.url}/admin/inbox`);
    await page.waitForFunction(() => window.AdminWS && window.AdminWS.state === "open");
    await api("POST", "/api/sync/e2e_greeter", { name: "Grace" });
    await page.waitForSelector("[data-action='e2e_greeter/greeted']");
    await page.reload();
    await page.waitForSelector("[data-action='e2e_greeter/greeted']");
    assert.match(await page.locator("#nr-inbox-items").innerText(), /Grace/);
  });

  it("deletes an app, lists it as deleted with who deployed it, and restores it", async () => {
    await page.goto(`${nr.url}/admin/apps`);
    const card = page.locator("#nr-admin-apps-list .nr-admin-app[data-app='e2e_greeter']");
    await card.waitFor();
    page.once("dialog", (d) => d.accept());
    await card.locator("[data-nr-admin='delete']").click();
    const gone = page.locator("#nr-admin-deleted-list .nr-admin-deleted-app[data-app='e2e_greeter']");
    await gone.waitFor();
    assert.equal(await card.count(), 0);
    await page.waitForFunction(() => !document.querySelector("#nr-sidebar a[href='/apps/e2e_greeter/']"));
    // Its kept versions, with who deployed each.
    await gone.locator("summary").click();
    const row = gone.locator(".nr-version[data-version='1.0.0']");
    await row.waitFor();
    assert.equal((await row.locator(".nr-deployed-by").innerText()).trim(), "admin");

    page.once("dialog", (d) => { assert.match(d.message(), /Restore e2e_greeter with version 1\.0\.0/); d.accept(); });
    await gone.locator(".card-header [data-nr-admin='restore']").click();
    await card.waitFor();
    await page.waitForSelector(".nr-toast.nr-notice");
    assert.match(await page.locator(".nr-toast.nr-notice").last().innerText(), /Restored e2e_greeter[\s\S]*1\.0\.0/);
    assert.equal(await gone.count(), 0);
    assert.ok(await page.locator("#nr-admin-deleted").isHidden());
    await page.waitForSelector("#nr-sidebar a[href='/apps/e2e_greeter/']");
    assert.match(await card.locator(".nr-admin-app-message").innerText(), /Restored with version 1\.0\.0/);

    // The audit trail names who deleted and restored it.
    const audit = await api("GET", "/admin/api/audit?kind=apps&q=e2e_greeter");
    const actions = audit.data.entries.map((e) => `${e.action} by ${e.actor}`);
    assert.deepEqual(actions.slice(0, 3), ["rolled_back by admin", "deleted by admin", "deployed by admin"], JSON.stringify(audit.data));
    // The restored app serves again.
    const run = await api("POST", "/api/sync/e2e_greeter", { name: "again" });
    assert.equal(run.data.message, "hello, again", JSON.stringify(run));
  });

  it("refuses a version the runner cannot load, keeps the previous and marks it refused", async () => {
    await page.goto(`${nr.url}/admin/apps`);
    await page.locator("form input[type=file]").first().setInputFiles(bundles.zip(nr.dir, "e2e_greeter_broken", "e2e_greeter_1.1.0.zip"));
    await page.locator("form input[type=file]").first().evaluate((i) => i.form.requestSubmit());
    const refusal = page.locator(".nr-deploy-refusal");
    await refusal.waitFor();
    const said = await refusal.innerText();
    assert.match(said, /Refused \(422\)/, said);
    assert.match(said, /could not load e2e_greeter 1\.1\.0/, said);
    assert.match(said, /1\.0\.0 keeps serving/, said);
    // The previous version serves.
    const run = await api("POST", "/api/sync/e2e_greeter", { name: "still" });
    assert.equal(run.data.message, "hello, still", JSON.stringify(run));
    // Its versions mark 1.1.0 refused, saying why, as text.
    await page.reload();
    const card = page.locator("#nr-admin-apps-list .nr-admin-app[data-app='e2e_greeter']");
    await card.locator(".nr-admin-versions-fold summary").click();
    const row = card.locator(".nr-version[data-version='1.1.0']");
    await row.locator(".nr-refused").waitFor();
    const why = await row.locator(".nr-refused-why").innerText();
    assert.match(why, /could not load it: ImportError: No module named 'reportlab' <img id=pwn/, why);
    assert.equal(await card.locator(".nr-version[data-version='1.0.0'] .nr-refused").count(), 0);
    assert.ok(await page.evaluate(() => !window.pwned && !document.getElementById("pwn")), "the app's error ran as markup");
  });

  it("refuses every service worker an app's page tries to leave behind", async () => {
    // Before, both registered: the one on /files/ then answered every download link's
    // page, script included, in whoever's session came next, after the app was deleted.
    await page.goto(`${nr.url}/admin/apps`);
    await page.locator("form input[type=file]").first().setInputFiles(bundles.zip(nr.dir, "e2e_sw"));
    await page.locator("form input[type=file]").first().evaluate((i) => i.form.requestSubmit());
    await page.waitForFunction(() => /Deployed e2e_sw version|refused|failed/i.test(document.getElementById("nr-deploy-result").innerText));
    await page.goto(`${nr.url}/apps/e2e_sw/`);
    const result = page.locator("#sw-result[data-done='1']");
    await result.waitFor({ state: "attached" });
    const text = await result.innerText();
    assert.match(text, /^refused \/files\/: \w+\nrefused \/apps\/e2e_sw\/: \w+$/, text);
    assert.equal(await page.evaluate(async () => (await navigator.serviceWorker.getRegistrations()).length), 0);
  });

  it("keeps no answer an app let the browser cache past the session that fetched it", async () => {
    // Before, a route answer kept for ten minutes was shown again from the browser's cache
    // after its user logged out, to whoever logged in next on that browser.
    const zip = bundles.zip(nr.dir, "e2e_cache");
    const deployed = await page.evaluate(async (bytes) => {
      const form = new FormData();
      form.append("file", new Blob([new Uint8Array(bytes)]), "e2e_cache.zip");
      const r = await fetch("/admin/api/apps/deploy", { method: "POST", body: form });
      return r.status;
    }, [...fs.readFileSync(zip)]);
    assert.equal(deployed, 200);
    const other = await browser.newContext();
    other.setDefaultTimeout(STEP);
    const p = await other.newPage();
    const login = async () => {
      await p.goto(`${nr.url}/login`);
      await p.fill("#nr-username", "admin");
      await p.fill("#nr-password", nr.password);
      await p.click("#nr-login-submit");
      await p.waitForURL((u) => !u.pathname.startsWith("/login"));
    };
    const stamp = async () => {
      const r = await p.goto(`${nr.url}/apps/e2e_cache/api/stamp`);
      return JSON.parse(await r.text()).stamp;
    };
    await login();
    const first = await stamp();
    assert.match(first, /^[0-9a-f]{32}$/);
    assert.equal(await stamp(), first, "the browser keeps the answer within the session, as the app asked");
    const out = await p.evaluate(async () => (await fetch("/api/auth/logout", { method: "POST" })).status);
    assert.equal(out, 200);
    await login();
    const next = await stamp();
    assert.notEqual(next, first, "an answer of the session that ended was shown again");
    await other.close();
  });

  it("the notes example tells the user what is wrong with a blank note", async () => {
    await page.goto(`${nr.url}/admin/apps`);
    await page.locator("form input[type=file]").first().setInputFiles(bundles.example(nr.dir, "notes"));
    await page.locator("form input[type=file]").first().evaluate((i) => i.form.requestSubmit());
    await page.waitForFunction(() => /Deployed notes version|refused|failed/i.test(document.getElementById("nr-deploy-result").innerText));
    assert.match(await page.locator("main").innerText(), /Deployed notes version/);

    await page.goto(`${nr.url}/apps/notes/`);
    await page.waitForSelector(".notes-form");
    await page.fill(".notes-name", "   ");
    await page.click(".notes-form button[type=submit]");
    const error = page.locator(".notes-error");
    await error.waitFor({ state: "visible" });
    assert.match(await error.innerText(), /Not saved: the note is empty/);
    // A real note is saved, and the message goes away.
    await page.fill(".notes-name", "buy milk");
    await page.click(".notes-form button[type=submit]");
    await page.waitForSelector(".notes-item:has-text('buy milk')");
    assert.ok(await error.isHidden());
    // The app answered the blank note itself, not with a server error.
    const blank = await api("POST", "/api/sync/notes", { action: "create", name: "" });
    assert.equal(blank.status, 200, JSON.stringify(blank));
    assert.match(blank.data.error, /empty/);
  });

  it("runs a schedule's job again without the fields the platform sets", async () => {
    // A job a schedule started carries `_schedule` (and the queue may add `_job_id`);
    // POST /api/async refuses both from a caller. Before, Run again sent them back: 400.
    const r = await api("POST", "/api/async/e2e_job", { steps: 1, pause: 0 });
    assert.equal(r.status, 202, JSON.stringify(r));
    const id = r.data.job_id;
    for (let i = 0; i < 150; i++) {
      const j = await api("GET", `/api/async/jobs/${id}`);
      if (j.data && j.data.status === "completed") break;
      await new Promise((res) => setTimeout(res, 200));
    }
    // The job's stored body as the scheduler would have left it.
    const payloadUrl = (u) => u.pathname === `/admin/api/console/jobs/${id}/payload`;
    await page.route(payloadUrl, async (route) => {
      const res = await route.fetch();
      const json = await res.json();
      json.payload = { ...json.payload, _schedule: { name: "nightly", tick: "2026-01-01T02:00:00Z", late: false }, _job_id: id };
      await route.fulfill({ response: res, json });
    });
    const posted = [];
    const onRequest = (req) => { if (req.method() === "POST" && new URL(req.url()).pathname === "/api/async/e2e_job") posted.push(req.postDataJSON()); };
    page.on("request", onRequest);
    try {
      await page.goto(`${nr.url}/admin/jobs`);
      const row = page.locator(`#nr-job-${id}`);
      await row.waitFor();
      await row.getByRole("button", { name: "Run again" }).click();
      const notice = page.locator("#nr-console-notice .alert");
      await notice.waitFor();
      assert.match(await notice.innerText(), /Queued again as job [0-9a-f-]{36}/);
      assert.deepEqual(posted, [{ steps: 1, pause: 0 }]);
    } finally {
      page.off("request", onRequest);
      await page.unroute(payloadUrl);
    }
  });

  it("marks Run in the menu on one app's run form", async () => {
    await page.goto(`${nr.url}/admin/run/e2e_greeter`);
    const current = await page.locator("#nr-sidebar [aria-current]").evaluateAll((es) => es.map((e) => `${e.id}=${e.getAttribute("aria-current")}`));
    assert.deepEqual(current, ["nr-link-run=page"]);
  });

  it("asks for a password as long as the server's minimum", async () => {
    await page.goto(`${nr.url}/admin/users`);
    const row = page.locator("tr", { has: page.locator("[data-user='e2e_ann']") });
    await row.waitFor();
    await row.getByRole("button", { name: "Reset password" }).click();
    const dialog = page.getByRole("dialog", { name: "Reset the password of e2e_ann" });
    await dialog.waitFor({ state: "visible" });
    assert.match(await dialog.innerText(), /at least 12 characters/i);
    await page.keyboard.press("Escape");
    await dialog.waitFor({ state: "hidden" });
  });

  it("links each app's variables from Manage apps, for those who may see them", async () => {
    await page.goto(`${nr.url}/admin/apps`);
    const link = page.locator("#nr-admin-apps-list .nr-admin-app[data-app='e2e_greeter'] a.nr-admin-env");
    await link.waitFor();
    assert.equal(await link.getAttribute("href"), "/admin/apps/e2e_greeter/env");
    await link.click();
    await page.waitForURL(`${nr.url}/admin/apps/e2e_greeter/env`);
    await page.waitForSelector("#nr-console[data-page='env']");
    // e2e_ann holds apps:read, not apps:env: the apps, no link.
    const ann = await browser.newContext();
    ann.setDefaultTimeout(STEP);
    try {
      const p = await ann.newPage();
      await p.goto(`${nr.url}/login?next=/admin/apps`);
      await p.fill("#nr-username", "e2e_ann");
      await p.fill("#nr-password", "a-long-password-42");
      await p.click("#nr-login-submit");
      await p.waitForURL(`${nr.url}/admin/apps`);
      await p.locator("#nr-admin-apps-list .nr-admin-app[data-app='e2e_greeter']").waitFor();
      assert.equal(await p.locator("a.nr-admin-env").count(), 0);
    } finally {
      await ann.close();
    }
  });

  it("loads pages without a missing icon or a policy violation", async () => {
    const fresh = await browser.newContext({ storageState: await context.storageState() });
    fresh.setDefaultTimeout(STEP);
    const problems = [];
    const icons = [];
    fresh.on("response", (res) => { if (res.status() >= 400) problems.push(`${res.status()} ${res.url()}`); });
    try {
      const p = await fresh.newPage();
      p.on("console", (m) => { if (m.type() === "error") problems.push(`console: ${m.text()}`); });
      for (const path of ["/login", "/admin", "/admin/jobs", "/admin/apps", "/apps/e2e_greeter/"]) {
        await p.goto(`${nr.url}${path}`);
        await p.waitForLoadState("networkidle");
        icons.push(await p.locator("link[rel=icon]").evaluateAll((ls) => ls.map((l) => l.href.slice(0, 19)).join() || "none"));
      }
      // The browser asks for /favicon.ico when a page names no icon.
      await new Promise((res) => setTimeout(res, 500));
    } finally {
      await fresh.close();
    }
    assert.deepEqual(problems, []);
    assert.deepEqual(icons, Array(5).fill("data:image/svg+xml,"));
  });

  it("switches themes, and every page passes axe in both, with screenshots", async () => {
    const pages = ["/admin", "/admin/apps", "/admin/jobs", "/admin/run", "/admin/run/e2e_greeter", "/admin/users", "/admin/roles",
      "/admin/tokens", "/admin/profile", "/admin/audit", "/admin/apps/e2e_greeter/env", "/admin/inbox", "/admin/notifications", "/apps/e2e_greeter/"];
    const problems = [];
    for (const theme of ["light", "dark"]) {
      await page.goto(`${nr.url}/admin/profile`);
      const now = await page.getAttribute("html", "data-bs-theme");
      if (now !== theme) {
        await page.click("#nr-theme-toggle");
        await page.waitForFunction((t) => document.documentElement.getAttribute("data-bs-theme") === t, theme);
      }
      for (const p of pages) {
        await page.goto(`${nr.url}${p}`);
        await page.waitForLoadState("networkidle");
        assert.equal(await page.getAttribute("html", "data-bs-theme"), theme, p);
        await shot(page, `${theme}${p.replace(/\//g, "_")}`);
        for (const v of await axe(page)) problems.push(`${theme} ${p}: ${v.impact} ${v.id} (${v.help}) at ${v.nodes.join(", ")}`);
      }
    }
    assert.deepEqual(problems, []);
  });

  it("fits a phone's width without sideways scrolling", async () => {
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, storageState: await context.storageState() });
    const p = await phone.newPage();
    try {
      for (const path of ["/admin", "/admin/jobs", "/admin/run/e2e_greeter", "/admin/users", "/admin/tokens", "/admin/audit"]) {
        await p.goto(`${nr.url}${path}`);
        await p.waitForLoadState("networkidle");
        const [width, wide] = await p.evaluate(() => [document.documentElement.scrollWidth,
          [...document.querySelectorAll("body *")].filter((e) => e.getBoundingClientRect().right > 391 && !e.closest(".table-responsive"))
            .slice(0, 5).map((e) => `${e.tagName.toLowerCase()}#${e.id}.${e.className}`)]);
        await shot(p, `phone${path.replace(/\//g, "_")}`);
        assert.ok(width <= 390, `${path} is ${width}px wide at 390px: ${wide.join(", ")}`);
      }
      // Tables scroll sideways in their own box rather than wrap a character a line.
      for (const [path, tall] of [["/admin/audit", 160], ["/admin/jobs", 120], ["/admin/users", 160], ["/admin/tokens", 160]]) {
        await p.goto(`${nr.url}${path}`);
        await p.waitForSelector(".table-responsive tbody tr");
        await p.waitForLoadState("networkidle");
        const t = await p.evaluate(() => {
          const box = document.querySelector(".table-responsive");
          const cells = [...box.querySelectorAll("tbody tr:first-child td")].filter((td) => td.textContent.trim());
          return {
            page: document.documentElement.scrollWidth,
            scrolls: box.scrollWidth > box.clientWidth && getComputedStyle(box).overflowX === "auto",
            row: Math.round(box.querySelector("tbody tr").getBoundingClientRect().height),
            narrowest: Math.round(Math.min(...cells.map((td) => td.getBoundingClientRect().width))),
          };
        });
        assert.equal(t.page, 390, `${path}: ${JSON.stringify(t)}`);
        assert.ok(t.row < tall, `${path}: the first row is ${t.row}px tall: ${JSON.stringify(t)}`);
        assert.ok(t.narrowest >= 40, `${path}: a column is ${t.narrowest}px wide: ${JSON.stringify(t)}`);
        if (path === "/admin/audit") assert.ok(t.scrolls, `${path}: the table's box does not scroll: ${JSON.stringify(t)}`);
      }
    } finally {
      await phone.close();
    }
  });

  it("sent no request outside the platform's origin", () => {
    assert.deepEqual(foreign, []);
    assert.ok(fs.existsSync(nr.logFile));
  });
});

// Usability of the admin console, each test failing on the build before its fix: a
// refused deploy shows its warnings too, an app the runners never served is not listed
// as deleted, the versions fold an operator opened stays open, deleting a role names who
// holds it, a password reset is the console's own dialog (no window.prompt), logging out
// keeps the theme, and a long user name is cut with an ellipsis instead of breaking the
// layout.
"use strict";
const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const platform = require("../lib/platform");
const bundles = require("../lib/bundles");
const { launch } = require("../lib/browser");

const STEP = 30000;

// Two more versions of the greeter, to deploy one and roll back to another.
for (const version of ["1.1.0", "1.2.0"]) {
  const files = { ...bundles.APPS.e2e_greeter };
  files["manifest.json"] = JSON.stringify({ ...JSON.parse(files["manifest.json"]), version });
  bundles.APPS[`e2e_greeter_${version}`] = files;
}

// Passes deploy's import check and fails in the runner's host only: what a package
// installed where deploy runs but missing on the runners looks like.
bundles.APPS.e2e_unloadable = {
  "manifest.json": JSON.stringify({ app_name: "e2e_unloadable", version: "1.0.0", api_version: "1.0.0" }),
  "main.py": `import os, sys
if os.path.basename(sys.argv[0]) == "nr_host.py":
    raise ImportError("No module named 'reportlab' (missing on this runner)")

def execute(data, conn=None):
    return {}
`,
};

// A misspelt optional field (a warning) and a module that fails to import (refused).
bundles.APPS.e2e_typo = {
  "manifest.json": JSON.stringify({ app_name: "e2e_typo", version: "1.0.0", api_version: "1.0.0", timout_s: 5 }),
  "main.py": "import missing_mod\n",
};

describe("console usability", { timeout: 240000 }, () => {
  let nr, browser, context, page;

  before(async () => {
    nr = await platform.start();
    browser = await launch();
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    context.setDefaultTimeout(STEP);
    page = await context.newPage();
    await login(page, "admin", nr.password, "/admin");
  });

  after(async () => {
    if (browser) await browser.close();
    if (nr) await nr.stop();
  });

  async function login(p, user, password, next) {
    await p.goto(`${nr.url}/login?next=${encodeURIComponent(next)}`);
    await p.fill("#nr-username", user);
    await p.fill("#nr-password", password);
    await p.click("#nr-login-submit");
    await p.waitForURL(`${nr.url}${next}`);
  }

  async function api(method, url, body) {
    return page.evaluate(async ([m, u, b]) => {
      const r = await fetch(u, { method: m, headers: { "Content-Type": "application/json" }, body: b === undefined ? undefined : JSON.stringify(b) });
      return { status: r.status, data: await r.json().catch(() => null) };
    }, [method, url, body]);
  }

  async function deploy(zip) {
    await page.locator("#nr-deploy-file").setInputFiles(zip);
    await page.locator("#nr-deploy-file").evaluate((i) => i.form.requestSubmit());
    await page.waitForSelector("#nr-deploy-result[data-nr-outcome]");
    assert.equal(await page.getAttribute("#nr-deploy-result", "data-nr-outcome"), "deployed", await page.innerText("#nr-deploy-result"));
  }

  it("lists an app whose first version the runners refused as never served, with their reason", async () => {
    await page.goto(`${nr.url}/admin/apps`);
    await page.locator("#nr-deploy-file").setInputFiles(bundles.zip(nr.dir, "e2e_unloadable"));
    await page.locator("#nr-deploy-file").evaluate((i) => i.form.requestSubmit());
    await page.waitForSelector("#nr-deploy-result[data-nr-outcome]");
    assert.equal(await page.getAttribute("#nr-deploy-result", "data-nr-outcome"), "refused");
    await page.goto(`${nr.url}/admin/apps`);
    const card = page.locator("#nr-admin-deleted-list .nr-admin-deleted-app[data-app='e2e_unloadable']");
    await card.waitFor();
    const text = await card.innerText();
    assert.match(text, /never served/, text);
    assert.doesNotMatch(text, /\bdeleted\b/, text);
    assert.match(await card.locator(".nr-admin-never-served").innerText(), /could not load it[\s\S]*reportlab/);
  });

  it("shows a refused deploy's warnings beside its errors", async () => {
    await page.goto(`${nr.url}/admin/apps`);
    await page.locator("#nr-deploy-file").setInputFiles(bundles.zip(nr.dir, "e2e_typo"));
    await page.locator("#nr-deploy-file").evaluate((i) => i.form.requestSubmit());
    await page.waitForSelector("#nr-deploy-result[data-nr-outcome]");
    assert.equal(await page.getAttribute("#nr-deploy-result", "data-nr-outcome"), "refused");
    const text = await page.innerText("#nr-deploy-result");
    assert.match(text, /missing_mod/, text);
    assert.match(await page.innerText("#nr-deploy-result .nr-deploy-also"), /Also 1 warning/, text);
    assert.match(text, /timout_s/, text);
  });

  it("keeps the versions fold the operator opened open when the list reloads", async () => {
    await page.goto(`${nr.url}/admin/apps`);
    await deploy(bundles.zip(nr.dir, "e2e_greeter"));
    await deploy(bundles.zip(nr.dir, "e2e_job"));
    await page.reload();
    const card = page.locator("#nr-admin-apps-list .nr-admin-app[data-app='e2e_greeter']");
    const fold = card.locator("details.nr-admin-versions-fold");
    const other = page.locator("#nr-admin-apps-list .nr-admin-app[data-app='e2e_job'] details.nr-admin-versions-fold");
    await card.locator("summary").click();
    await card.locator(".nr-version[data-version='1.0.0']").waitFor();

    // A deploy reloads the list: the fold is open, with the new version in it.
    await deploy(bundles.zip(nr.dir, "e2e_greeter_1.1.0", "e2e_greeter_1.1.0.zip"));
    await card.locator(".nr-version[data-version='1.1.0']").waitFor();
    assert.equal(await fold.evaluate((d) => d.open), true, "the fold closed after the deploy");
    // A rollback reloads it too.
    page.once("dialog", (d) => d.accept());
    await card.locator(".nr-version[data-version='1.0.0'] [data-nr-admin='rollback']").click();
    await card.locator(".nr-admin-app-message", { hasText: "Rolled back to version 1.0.0" }).waitFor();
    assert.equal(await fold.evaluate((d) => d.open), true, "the fold closed after the rollback");
    assert.equal(await other.evaluate((d) => d.open), false, "a fold nobody opened was opened");

    // So does coming back to the page (a reload, or Back from an app's Variables).
    await page.reload();
    await card.locator(".nr-version[data-version='1.1.0']").waitFor();
    assert.equal(await fold.evaluate((d) => d.open), true, "the fold closed when the page reloaded");
    assert.equal(await other.evaluate((d) => d.open), false);
    // Closed by the operator, it stays closed through a reload.
    await card.locator("summary").click();
    await page.waitForFunction(() => !document.querySelector(".nr-admin-app[data-app='e2e_greeter'] details").open);
    await page.reload();
    await card.locator("summary").waitFor();
    assert.equal(await fold.evaluate((d) => d.open), false, "the fold the operator closed opened again");
  });

  it("names the users who hold a role before deleting it", async () => {
    assert.equal((await api("POST", "/admin/api/roles", { name: "e2e_crew", description: "held by five" })).status < 300, true);
    assert.equal((await api("POST", "/admin/api/roles", { name: "e2e_nobody", description: "held by none" })).status < 300, true);
    for (const name of ["crew_a", "crew_b", "crew_c", "crew_d", "crew_e"]) {
      const r = await api("POST", "/admin/api/users", { username: name, password: "a-long-password-42", roles: ["e2e_crew"] });
      assert.ok(r.status < 300, JSON.stringify(r));
    }
    await page.goto(`${nr.url}/admin/roles`);
    const row = (role) => page.locator("tr", { has: page.locator(`[data-role='${role}']`) });
    await row("e2e_crew").waitFor();

    let asked = "";
    page.once("dialog", (d) => { asked = d.message(); d.dismiss(); });
    await row("e2e_crew").getByRole("button", { name: "Delete" }).click();
    for (let i = 0; i < 50 && !asked; i++) await page.waitForTimeout(100);
    assert.match(asked, /5 users hold e2e_crew: crew_a, crew_b, crew_c and 2 more/, asked);
    assert.match(asked, /They lose the permissions it grants/, asked);
    // Dismissed: the role is kept.
    await page.waitForTimeout(300);
    assert.equal(await row("e2e_crew").count(), 1);

    asked = "";
    page.once("dialog", (d) => { asked = d.message(); d.accept(); });
    await row("e2e_nobody").getByRole("button", { name: "Delete" }).click();
    await page.waitForFunction(() => /Role e2e_nobody deleted/.test(document.body.innerText));
    assert.match(asked, /No user holds e2e_nobody/, asked);
  });

  it("resets a password in the console's own dialog, with the server's refusal shown in it", async () => {
    const made = await api("POST", "/admin/api/users", { username: "e2e_pat", password: "a-long-password-42", roles: [] });
    assert.ok(made.status < 300, JSON.stringify(made));
    const native = [];
    const onDialog = (d) => { native.push(d.message()); d.dismiss(); };
    page.on("dialog", onDialog);
    try {
      await page.goto(`${nr.url}/admin/users`);
      const row = page.locator("tr", { has: page.locator("[data-user='e2e_pat']") });
      const open = row.getByRole("button", { name: "Reset password" });
      await open.click();
      const dialog = page.getByRole("dialog", { name: "Reset the password of e2e_pat" });
      await dialog.waitFor({ state: "visible" });
      assert.match(await dialog.innerText(), /at least 12 characters/i);
      // The labelled password field has the focus; Escape closes, focus goes back.
      const field = dialog.getByLabel("New password");
      assert.equal(await field.getAttribute("type"), "password");
      assert.ok(await field.evaluate((f) => f === document.activeElement), "the password field is not focused");
      await page.keyboard.press("Escape");
      await dialog.waitFor({ state: "hidden" });
      assert.ok(await open.evaluate((b) => b === document.activeElement), "the focus did not come back to the button");
      // Cancel closes too, nothing sent.
      await open.click();
      await dialog.waitFor({ state: "visible" });
      await dialog.getByRole("button", { name: "Cancel" }).click();
      await dialog.waitFor({ state: "hidden" });

      // Refused: the server's reason, in the dialog, which stays open.
      await open.click();
      await dialog.getByLabel("New password").fill("short");
      await dialog.getByRole("button", { name: "Reset password" }).click();
      const refusal = dialog.getByRole("alert");
      await refusal.waitFor({ state: "visible" });
      assert.match(await refusal.innerText(), /not reset: .*at least 12 characters/, await refusal.innerText());
      assert.ok(await dialog.isVisible());
      // Accepted with the keyboard (Enter submits): closed, said done, the password works.
      await dialog.getByLabel("New password").fill("a-fresh-password-43");
      await page.keyboard.press("Enter");
      await dialog.waitFor({ state: "hidden" });
      await page.waitForFunction(() => /Password of e2e_pat reset/.test(document.body.innerText));
      const r = await fetch(`${nr.url}/api/auth/login`, { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ username: "e2e_pat", password: "a-fresh-password-43" }) });
      assert.equal(r.status, 200);
      assert.deepEqual(native, [], "a native prompt or alert was shown");
    } finally {
      page.off("dialog", onDialog);
    }
  });

  it("keeps the chosen theme through logging out and in, and drops the session's data", async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: "light" });
    ctx.setDefaultTimeout(STEP);
    try {
      const p = await ctx.newPage();
      await login(p, "admin", nr.password, "/admin");
      await p.click("#nr-theme-toggle");
      await p.waitForFunction(() => document.documentElement.getAttribute("data-bs-theme") === "dark");
      await p.evaluate(() => window.NRHistory.add({ type: "action", id: 1, app_name: "e2e_greeter", action_name: "greeted", payload: { name: "x" } }));
      assert.equal(await p.evaluate(() => window.NRHistory.list().length), 1);

      await p.click("#nr-logout");
      await p.waitForURL(/\/login$/);
      assert.equal(await p.getAttribute("html", "data-bs-theme"), "dark", "the login page forgot the theme");
      assert.equal(await p.evaluate(() => localStorage.getItem("nr-theme")), "dark");
      assert.equal(await p.evaluate(() => localStorage.getItem("nr.console.history")), null, "the session's history was kept");

      await p.fill("#nr-username", "admin");
      await p.fill("#nr-password", nr.password);
      await p.click("#nr-login-submit");
      await p.waitForURL(`${nr.url}/admin`);
      assert.equal(await p.getAttribute("html", "data-bs-theme"), "dark", "logging in forgot the theme");
    } finally {
      await ctx.close();
    }
  });

  it("cuts a 200-character user name with an ellipsis, the layout intact", async () => {
    const long = "Maximiliane Alexandra von Hohenzollern-Sigmaringen ".repeat(4).slice(0, 199) + "Z";
    assert.equal(long.length, 200);
    for (const width of [1280, 390]) {
      const ctx = await browser.newContext({ viewport: { width, height: 800 }, storageState: await context.storageState() });
      ctx.setDefaultTimeout(STEP);
      try {
        const p = await ctx.newPage();
        await p.route((u) => u.pathname === "/api/auth/me", async (route) => {
          const res = await route.fetch();
          await route.fulfill({ response: res, json: { ...(await res.json()), username: long } });
        });
        await p.goto(`${nr.url}/admin`);
        const user = p.locator("#nr-user");
        await p.waitForFunction((n) => document.getElementById("nr-user").textContent === n, long);
        assert.equal(await user.getAttribute("title"), long, "the full name is not in a title");
        const m = await p.evaluate(() => {
          const u = document.getElementById("nr-user");
          const s = getComputedStyle(u);
          const box = (id) => document.getElementById(id).getBoundingClientRect();
          return {
            overflow: s.textOverflow, cut: u.scrollWidth > u.clientWidth, user: u.getBoundingClientRect(),
            top: box("nr-sidebar").top, bar: document.querySelector(".nr-topbar").getBoundingClientRect().height,
            logout: box("nr-logout"), theme: box("nr-theme-toggle"), sidebar: box("nr-sidebar").width,
            page: document.documentElement.scrollWidth,
          };
        });
        const at = `${width}px: ${JSON.stringify(m)}`;
        assert.equal(m.overflow, "ellipsis", at);
        assert.ok(m.cut, at);
        assert.ok(m.user.height < 30, `the name takes several lines at ${at}`);
        assert.ok(m.bar < 64, `the top bar grew at ${at}`);
        assert.ok(m.page <= width, `the page scrolls sideways at ${at}`);
        assert.ok(m.logout.right <= width && m.logout.width > 30 && m.theme.right <= width, `the buttons left the bar at ${at}`);
        if (width === 1280) {
          assert.equal(Math.round(m.sidebar), 240, at);
          assert.ok(m.top < 64, `the sidebar is pushed down at ${at}`);
        }
      } finally {
        await ctx.close();
      }
    }
  });
});

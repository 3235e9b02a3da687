// A console page learns at once that its session ended elsewhere (a logout in another
// tab: the notification hub closes the page's socket with 4401), and says so with a
// link back, before the operator types into a form that would be refused.
"use strict";
const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const platform = require("../lib/platform");
const { launch } = require("../lib/browser");

const STEP = 30000;

describe("a session that ends", { timeout: 120000 }, () => {
  let nr, browser;

  before(async () => {
    nr = await platform.start();
    browser = await launch();
  });

  after(async () => {
    if (browser) await browser.close();
    if (nr) await nr.stop();
  });

  it("is announced on an open page with a way back", async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    context.setDefaultTimeout(STEP);
    const page = await context.newPage();
    await page.goto(`${nr.url}/login?next=${encodeURIComponent("/admin/jobs")}`);
    await page.fill("#nr-username", "admin");
    await page.fill("#nr-password", nr.password);
    await page.click("#nr-login-submit");
    await page.waitForURL(`${nr.url}/admin/jobs`);
    await page.waitForFunction(() => window.AdminWS && window.AdminWS.state === "open");
    assert.equal(await page.locator("#nr-session-ended").count(), 0);

    // Another tab of the same browser logs out.
    const other = await context.newPage();
    await other.goto(`${nr.url}/admin`);
    const status = await other.evaluate(async () => (await fetch("/api/auth/logout", { method: "POST" })).status);
    assert.equal(status, 200);

    const notice = page.locator("#nr-session-ended");
    await notice.waitFor({ state: "visible" });
    assert.match(await notice.innerText(), /session has ended/);
    assert.equal(await notice.locator("a").getAttribute("href"), "/login?next=%2Fadmin%2Fjobs");
    await context.close();
  });

  it("is not announced to the tab that changed its own password (its session goes on)", async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    context.setDefaultTimeout(STEP);
    const page = await context.newPage();
    await page.goto(`${nr.url}/login?next=${encodeURIComponent("/admin/profile")}`);
    await page.fill("#nr-username", "admin");
    await page.fill("#nr-password", nr.password);
    await page.click("#nr-login-submit");
    await page.waitForURL(`${nr.url}/admin/profile`);
    await page.waitForFunction(() => window.AdminWS && window.AdminWS.state === "open");
    await page.evaluate(() => { window.nrClosed = 0; window.AdminWS.on("close", () => { window.nrClosed += 1; }); });
    const fresh = "e2e-admin-password-2";
    await page.fill("#nr-pw-current", nr.password);
    await page.fill("#nr-pw-new", fresh);
    await page.fill("#nr-pw-again", fresh);
    await page.click("#nr-password-form button[type=submit]");
    await page.waitForFunction(() => /Your password was changed/.test(document.body.innerText));
    // The hub closes the socket of the session the change renewed...
    await page.waitForFunction(() => window.nrClosed > 0);
    await page.waitForTimeout(1500);
    // ...but this tab's session goes on: nothing says it ended, and it still works.
    assert.equal(await page.locator("#nr-session-ended").count(), 0);
    const me = await page.evaluate(async () => (await fetch("/api/auth/me")).status);
    assert.equal(me, 200);
    nr.password = fresh;
    await context.close();
  });
});

// Debian's Chromium driven by playwright-core: no browser is downloaded. A missing
// Chromium fails the suite (it never skips).
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const { chromium } = require("playwright-core");

const CHROMIUM = process.env.NR_CHROMIUM || "/usr/bin/chromium";
const ARTIFACTS = path.resolve(__dirname, "..", "artifacts");

async function launch() {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`Chromium is missing at ${CHROMIUM}: apt-get install chromium (or set NR_CHROMIUM)`);
  }
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
}

/** Runs axe-core in the page; returns the serious and critical violations. */
async function axe(page) {
  // Evaluated through the DevTools protocol: the pages' CSP (scripts from the origin
  // only) rightly refuses an injected inline script.
  await page.evaluate(fs.readFileSync(require.resolve("axe-core/axe.min.js"), "utf8"));
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" ")) }));
  });
  return result.filter((v) => v.impact === "serious" || v.impact === "critical");
}

async function shot(page, name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

module.exports = { launch, axe, shot, ARTIFACTS };

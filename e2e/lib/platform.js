// Starts a real platform for the browser tests: a fresh Postgres database and
// `noderouter up` on free ports, running its own NATS with per-service credentials. Everything is torn down by stop().
"use strict";
const { spawn, execFileSync } = require("node:child_process");
const fs = require("node:fs");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");

const ROOT = path.resolve(__dirname, "..", "..");
const PG = process.env.NR_E2E_PG || "postgres://postgres@127.0.0.1:5432";

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function binary() {
  const candidates = [
    process.env.NR_BIN,
    process.env.CARGO_TARGET_DIR && path.join(process.env.CARGO_TARGET_DIR, "debug", "noderouter"),
    path.join(ROOT, "target", "debug", "noderouter"),
  ].filter(Boolean);
  const found = candidates.find((p) => fs.existsSync(p));
  if (!found) {
    throw new Error(`the noderouter binary is missing (looked at ${candidates.join(", ")}): run cargo build -p noderouter`);
  }
  return found;
}

function natsBinary() {
  for (const p of ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"]) {
    if (fs.existsSync(p)) return p;
  }
  throw new Error("nats-server is missing: apt-get install nats-server");
}

async function waitFor(what, fn, ms) {
  const until = Date.now() + ms;
  let last;
  while (Date.now() < until) {
    try {
      if (await fn()) return;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what} did not happen within ${ms} ms${last ? `: ${last.message}` : ""}`);
}

function psql(sql) {
  execFileSync("psql", [`${PG}/postgres`, "-qc", sql], { stdio: "pipe" });
}

/** Starts the platform; returns { url, password, stop() }. */
async function start() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nr-e2e-"));
  fs.chmodSync(dir, 0o755);
  const logFile = path.join(dir, "platform.log");
  const log = fs.openSync(logFile, "a");
  const children = [];
  const db = `nr_e2e_${process.pid}_${Date.now()}`;
  psql(`CREATE DATABASE "${db}"`);

  const natsPort = await freePort();
  const httpPort = await freePort();
  const password = "e2e-admin-password-1";
  const env = {
    ...process.env,
    NR_HTTP_ADDR: `127.0.0.1:${httpPort}`,
    // No NR_NATS_URL: `noderouter up` starts its own NATS with per-service credentials.
    NR_DATA_DIR: path.join(dir, "data"),
    NR_EMBEDDED_NATS_PORT: String(natsPort),
    NR_NATS_SERVER: natsBinary(),
    DATABASE_URL: `${PG}/${db}`,
    NR_OBJECT_STORE_URL: path.join(dir, "objects"),
    NR_ADMIN_PASSWORD: password,
    NR_SECRETS_KEY: "11".repeat(32),
    NR_CONSOLE_SAMPLE_S: "2",
    NR_PYTHON: process.env.NR_PYTHON || path.join(ROOT, ".venv", "bin", "python"),
    RUST_LOG: process.env.RUST_LOG || "warn",
  };
  delete env.NR_NATS_URL;
  const up = spawn(binary(), ["up"], { env, stdio: ["ignore", log, log], cwd: dir });
  children.push(up);
  const url = `http://127.0.0.1:${httpPort}`;
  let exited = null;
  up.on("exit", (code) => { exited = code; });
  try {
    await waitFor("the platform answering /readyz", async () => {
      if (exited !== null) throw new Error(`noderouter up exited with ${exited}; see ${logFile}`);
      const r = await fetch(`${url}/readyz`);
      return r.ok;
    }, 60000);
  } catch (e) {
    const tail = fs.readFileSync(logFile, "utf8").split("\n").slice(-30).join("\n");
    await stopAll();
    throw new Error(`${e.message}\n${tail}`);
  }

  async function stopAll() {
    for (const c of children.reverse()) {
      if (c.exitCode === null) {
        c.kill("SIGTERM");
        await Promise.race([new Promise((r) => c.once("exit", r)), new Promise((r) => setTimeout(r, 5000))]);
        if (c.exitCode === null) c.kill("SIGKILL");
      }
    }
    try { psql(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`); } catch (_) { /* best effort */ }
    fs.closeSync(log);
  }

  return { url, password, dir, logFile, stop: stopAll };
}

module.exports = { start, ROOT };

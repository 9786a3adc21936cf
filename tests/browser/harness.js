// Starts the product for the browser tests, in either run mode, the way tests/suite/harness.rs
// does: all-in-one (SQLite in a temporary directory) or split (identity, policy, analytics and a
// gateway as separate processes on a fresh PostgreSQL database and a unique Redis prefix).

import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(here, "../..");
const BIN = process.env.ZENOVAY_BIN ?? path.join(ROOT, "target/debug/zenovay");
export const OPERATOR_TOKEN = "browser-test-operator-token-0123456789";
const KEY_HASH_SECRETS = "1:browser-test-key-hash-secret-0123456789abcdef";
const POSTGRES = process.env.ZENOVAY_TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const REDIS = process.env.ZENOVAY_TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

const suffix = () => randomBytes(6).toString("hex");

/** Starts `zenovay <role>` and resolves with its address once it announces it. */
function start(role, args, dir) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("ZENOVAY_") && !name.startsWith("OTEL_")));
  env.ZENOVAY_LOG = "info,sqlx=warn";
  const child = spawn(BIN, role === "all" ? args : [role, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
  child.stderr.pipe(createWriteStream(path.join(dir, `${role}.log`)));
  const prefix = `zenovay ${role} listening on `;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`zenovay ${role} did not announce its address; see ${dir}`)), 60_000);
    child.on("exit", (code) => reject(new Error(`zenovay ${role} exited (${code}); see ${dir}`)));
    readline.createInterface({ input: child.stdout }).on("line", (line) => {
      if (line.startsWith(prefix)) {
        clearTimeout(timer);
        resolve({ child, addr: line.slice(prefix.length).trim() });
      }
    });
  });
}

/** A running product: `base` is the gateway's URL; `stop()` ends it and removes its data. */
export async function startProduct(mode) {
  const dir = mkdtempSync(path.join(tmpdir(), "zenovay-browser-"));
  const children = [];
  const cleanups = [() => rmSync(dir, { recursive: true, force: true })];
  const stop = async () => {
    for (const child of children.reverse()) {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGKILL");
        await exited;
      }
    }
    for (const cleanup of cleanups.reverse()) cleanup();
  };
  try {
    if (mode === "all-in-one") {
      const args = ["--http-addr", "127.0.0.1:0", "--data-dir", path.join(dir, "data"), "--operator-token", OPERATOR_TOKEN];
      const { child, addr } = await start("all", args, dir);
      children.push(child);
      return { base: `http://${addr}`, stop };
    }
    const database = `zv_browser_${suffix()}`;
    const admin = new URL(POSTGRES);
    execFileSync("psql", [POSTGRES, "-qc", `CREATE DATABASE ${database}`]);
    cleanups.push(() => execFileSync("psql", [POSTGRES, "-qc", `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`]));
    admin.pathname = `/${database}`;
    const redisPrefix = `zvbrowser:${suffix()}:`;
    cleanups.push(() => {
      const keys = execFileSync("redis-cli", ["-u", REDIS, "--scan", "--pattern", `${redisPrefix}*`]).toString().split("\n").filter(Boolean);
      if (keys.length) execFileSync("redis-cli", ["-u", REDIS, "del", ...keys]);
    });
    const shared = ["--database-url", admin.href, "--key-hash-secrets", KEY_HASH_SECRETS, "--redis-url", REDIS, "--redis-prefix", redisPrefix];
    const urls = {};
    for (const role of ["identity", "policy", "analytics"]) {
      const { child, addr } = await start(role, [...shared, `--${role}-listen`, "127.0.0.1:0"], dir);
      children.push(child);
      urls[role] = `http://${addr}`;
    }
    const gatewayArgs = [
      ...shared,
      "--http-addr", "127.0.0.1:0",
      "--identity-url", urls.identity,
      "--policy-url", urls.policy,
      "--analytics-url", urls.analytics,
      "--operator-token", OPERATOR_TOKEN,
    ];
    const { child, addr } = await start("gateway", gatewayArgs, dir);
    children.push(child);
    return { base: `http://${addr}`, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

export const CHROMIUM = {
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
};

/**
 * A JSON client of the product at `base()` (read at each call, as a test's product starts in its
 * `before`): `api` answers `{status, body, headers}`, the body parsed when it is JSON; `ok`
 * asserts a success and answers the envelope's `data`. `token` is sent as a Bearer token.
 */
export function jsonClient(base) {
  const api = async (method, path, { token, body, headers = {} } = {}) => {
    const response = await fetch(`${base()}${path}`, {
      method,
      headers: {
        ...(body === undefined ? {} : { "content-type": "application/json" }),
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...headers,
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    let parsed;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = text;
    }
    return { status: response.status, body: parsed, headers: response.headers };
  };
  const ok = async (method, path, options) => {
    const answer = await api(method, path, options);
    assert.ok(answer.status < 300, `${method} ${path}: ${answer.status} ${JSON.stringify(answer.body)}`);
    return answer.body.data;
  };
  return { api, ok };
}

/** Retries `check` until it stops throwing, every `every` ms for at most `timeout` ms: a page
 * fills itself from the API after loading, and the product counts events a moment after they
 * are acknowledged. */
export async function eventually(check, timeout = 15_000, every = 200) {
  const deadline = Date.now() + timeout;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, every));
    }
  }
}

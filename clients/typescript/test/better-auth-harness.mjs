// The real Better Auth (its own migration, admin and bearer plugins) on a
// PostgreSQL database made for the run, adopted by three real sessiond
// nodes clustered on it (`sessiond source install --source-preset
// better-auth`), as an application deploys them.

import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { betterAuth } from "better-auth";
import { admin, bearer } from "better-auth/plugins";
import { getMigrations } from "better-auth/db/migration";

import { closedPort, sessiondBinary } from "./harness.mjs";

export const SECRET = "better-auth-test-secret-0123456789-abcdefgh";
export const PASSWORD = "better-auth-password-1234";
const JWT_SECRET = "better-auth-sessiond-jwt-0123456789-abcdef";
const CLUSTER_COOKIE = "better-auth-cluster-cookie-0123456789-abc";

/** The server to make databases on: `SESSIOND_TEST_POSTGRES_URL`, else the local one. */
function serverUrl() {
  return process.env.SESSIOND_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";
}

/** A fresh database for this run; `drop()` removes it. */
export async function createDatabase(prefix = "ba_ts") {
  const name = `${prefix}_${Date.now().toString(36)}_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: serverUrl() });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(serverUrl());
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: serverUrl() });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

/** Better Auth's options for the tests, with `plugins` after admin and bearer. */
export function authOptions(pool, plugins = [], extra = {}) {
  return {
    database: pool,
    secret: SECRET,
    baseURL: "http://localhost:3000",
    emailAndPassword: { enabled: true },
    plugins: [admin(), bearer(), ...plugins],
    logger: { disabled: true },
    ...extra,
  };
}

/** Better Auth's own migration (its `getMigrations`), with the plugins the tests use. */
export async function migrate(pool) {
  const { runMigrations } = await getMigrations(authOptions(pool));
  await runMigrations();
}

export function auth(pool, plugins = [], extra = {}) {
  return betterAuth(authOptions(pool, plugins, extra));
}

/** The env every sessiond command and node of the tests runs with. */
function sessiondEnv(databaseUrl) {
  return {
    PATH: process.env.PATH ?? "",
    DATABASE_URL: databaseUrl,
    SESSIOND_JWT_SECRET: JWT_SECRET,
    SESSIOND_BETTER_AUTH_SECRET: SECRET,
    RUST_LOG: "warn",
  };
}

/** `sessiond ARGS` on the database: its output; throws when it fails. */
export function sessiondCli(databaseUrl, args) {
  return new Promise((resolve, reject) => {
    execFile(sessiondBinary(), args, { env: sessiondEnv(databaseUrl) }, (err, stdout, stderr) =>
      err ? reject(new Error(`sessiond ${args.join(" ")}: ${err.message}\n${stderr}`)) : resolve(stdout.trim()),
    );
  });
}

export const PRESET = ["--source-preset", "better-auth", "--better-auth"];

/**
 * One node: `serve` on a free port, clustered with `join`. Resolves once it
 * printed its URL. `stop()` ends it (SIGTERM), `pause()`/`resume()`
 * SIGSTOP/SIGCONT it (a node that accepts connections and answers nothing).
 */
export async function startNode(databaseUrl, name, join = [], args = []) {
  const clusterPort = await closedPort();
  const clusterAddr = `127.0.0.1:${clusterPort}`;
  const all = [
    "serve",
    ...PRESET,
    ...args,
    "--listen",
    "127.0.0.1:0",
    "--node-name",
    name,
    "--cluster-listen",
    clusterAddr,
    "--cluster-cookie",
    CLUSTER_COOKIE,
  ];
  for (const peer of join) all.push("--join", peer.clusterAddr);
  const child = spawn(sessiondBinary(), all, { env: sessiondEnv(databaseUrl), stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (d) => {
    stderr = (stderr + d).slice(-20_000);
  });
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  const url = await new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`sessiond ${name} printed no URL within 60 s\n${stderr}`));
    }, 60_000);
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (d) => {
      out += d;
      const m = /sessiond listening on (https?:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`sessiond ${name} exited (${code}) before listening\n${stderr}`));
    });
  });
  return {
    name,
    url,
    clusterAddr,
    logs: () => stderr,
    pause: () => child.kill("SIGSTOP"),
    resume: () => child.kill("SIGCONT"),
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGCONT");
        child.kill("SIGTERM");
      }
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

async function members(node) {
  try {
    const res = await fetch(`${node.url}/api/perf`);
    const v = await res.json();
    return Array.isArray(v.members) ? [...v.members].sort() : [];
  } catch {
    return [];
  }
}

/** Three nodes that see each other as members. */
export async function startCluster(databaseUrl, args = []) {
  const n1 = await startNode(databaseUrl, "p1", [], args);
  const [n2, n3] = await Promise.all([
    startNode(databaseUrl, "p2", [n1], args),
    startNode(databaseUrl, "p3", [n1], args),
  ]);
  const nodes = [n1, n2, n3];
  const deadline = Date.now() + 30_000;
  for (const n of nodes) {
    for (;;) {
      const m = await members(n);
      if (m.join(",") === "p1,p2,p3") break;
      if (Date.now() > deadline) {
        throw new Error(`node ${n.name} sees members ${m.join(",")}\n${nodes.map((x) => x.logs()).join("\n")}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return nodes;
}

/** The `Cookie` header a browser would send back for `res`'s `Set-Cookie`. */
export function cookieOf(res) {
  return res.headers
    .getSetCookie()
    .map((c) => c.split(";")[0])
    .filter((c) => !/=$/.test(c))
    .join("; ");
}

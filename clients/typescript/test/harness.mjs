// Starts the real sessiond binary on a free loopback port with a SQLite file
// of its own, and stops it with SIGTERM.

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ADMIN_EMAIL = "admin@localhost";
export const ADMIN_PASSWORD = "admin-password-for-tests";

const here = path.dirname(fileURLToPath(import.meta.url));

/** `SESSIOND_BIN`, else `$CARGO_TARGET_DIR/debug/sessiond`, else the workspace's `target/debug/sessiond`. */
export function sessiondBinary() {
  if (process.env.SESSIOND_BIN) return path.resolve(process.env.SESSIOND_BIN);
  const workspace = path.resolve(here, "..", "..", "..");
  const targetDir = process.env.CARGO_TARGET_DIR
    ? path.resolve(workspace, process.env.CARGO_TARGET_DIR)
    : path.join(workspace, "target");
  return path.join(targetDir, "debug", process.platform === "win32" ? "sessiond.exe" : "sessiond");
}

/**
 * Starts sessiond; resolves once it printed its URL.
 * @param {{ cacheTtl?: string, args?: string[] }} [options] `args`: more `serve` flags
 * @returns {Promise<{ url: string, databaseUrl: string, stop: () => Promise<void>, logs: () => string }>}
 */
export async function startSessiond(options = {}) {
  const bin = sessiondBinary();
  if (!existsSync(bin)) {
    throw new Error(`no sessiond binary at ${bin}: run \`cargo build --bin sessiond\` or set SESSIOND_BIN`);
  }
  const dir = mkdtempSync(path.join(tmpdir(), "sessiond-ts-"));
  const databaseUrl = `sqlite://${path.join(dir, "sessiond.db")}`;
  const args = ["serve", "--listen", "127.0.0.1:0", "--database-url", databaseUrl];
  if (options.cacheTtl) args.push("--cache-ttl", options.cacheTtl);
  if (options.args) args.push(...options.args);
  const child = spawn(bin, args, {
    env: {
      PATH: process.env.PATH ?? "",
      SESSIOND_ADMIN_PASSWORD: ADMIN_PASSWORD,
      SESSIOND_JWT_SECRET: "typescript-client-tests-secret-0123456789",
      RUST_LOG: "warn",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });

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
      reject(new Error(`sessiond printed no URL within 30 s\n${stderr}`));
    }, 30_000);
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
      reject(new Error(`sessiond exited (${code}) before listening\n${stderr}`));
    });
  });

  return {
    url,
    databaseUrl,
    logs: () => stderr,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      const { code, signal } = await exited;
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
      if (code !== 0 && signal !== "SIGTERM") {
        throw new Error(`sessiond did not stop cleanly (code ${code}, signal ${signal})\n${stderr}`);
      }
    },
  };
}

/** A loopback port nothing listens on (bound, then released). */
export async function closedPort() {
  const net = await import("node:net");
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = /** @type {import("node:net").AddressInfo} */ (server.address());
      server.close(() => resolve(port));
    });
  });
}

/**
 * `sessiond appkey create --name NAME --scope SCOPES` on a database: the key
 * it prints (once).
 */
export async function createAppKey(databaseUrl, name, scopes) {
  const { execFile } = await import("node:child_process");
  return new Promise((resolve, reject) => {
    execFile(
      sessiondBinary(),
      ["appkey", "create", "--name", name, "--scope", scopes, "--database-url", databaseUrl],
      { env: { PATH: process.env.PATH ?? "", RUST_LOG: "warn" } },
      (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout.trim())),
    );
  });
}

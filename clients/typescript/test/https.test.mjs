// The client against sessiond served over HTTPS (`--tls-cert`, `--tls-key`)
// with a private CA: Node's fetch trusts it through NODE_EXTRA_CA_CERTS
// (read when Node starts, so each case runs in a Node process of its own),
// and refuses the server without it.

import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";

import { ADMIN_EMAIL, ADMIN_PASSWORD, startSessiond } from "./harness.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const clientModule = path.join(here, "..", "dist", "index.js");

/** A CA and a certificate it signs for 127.0.0.1, made with openssl. */
function pki(dir) {
  const openssl = (...args) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  openssl("req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=test-ca");
  openssl("req", ...ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=sessiond");
  writeFileSync(path.join(dir, "server.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n");
  openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
    "-out", "server.pem", "-days", "2", "-extfile", "server.ext");
}

/** Runs the client in a fresh Node process: login, then a session lookup. */
function runClient(url, env) {
  const script = `
    import { SessiondClient } from ${JSON.stringify(clientModule)};
    const client = new SessiondClient({ baseUrl: ${JSON.stringify(url)}, retries: 0 });
    try {
      const { token } = await client.login(${JSON.stringify(ADMIN_EMAIL)}, ${JSON.stringify(ADMIN_PASSWORD)});
      const { user } = await client.getSession(token);
      console.log(JSON.stringify({ ok: true, email: user.email }));
    } catch (e) {
      console.log(JSON.stringify({ ok: false, code: e.code ?? String(e) }));
    }`;
  const out = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
    env: { PATH: process.env.PATH ?? "", ...env },
    encoding: "utf8",
    timeout: 30_000,
  });
  assert.equal(out.status, 0, out.stderr);
  return JSON.parse(out.stdout.trim().split("\n").pop());
}

describe("SessiondClient over HTTPS", () => {
  let dir;
  let server;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "sessiond-ts-tls-"));
    pki(dir);
    server = await startSessiond({
      args: ["--tls-cert", path.join(dir, "server.pem"), "--tls-key", path.join(dir, "server.key")],
    });
  });

  after(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("sessiond prints an https URL", () => {
    assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  });

  test("with the CA in NODE_EXTRA_CA_CERTS: login and session lookup", () => {
    const r = runClient(server.url, { NODE_EXTRA_CA_CERTS: path.join(dir, "ca.pem") });
    assert.deepEqual(r, { ok: true, email: ADMIN_EMAIL });
  });

  test("without the CA: refused, as an unreachable sessiond is", () => {
    const r = runClient(server.url, {});
    assert.equal(r.ok, false);
    assert.equal(r.code, "network_error");
  });
});

// Behind an app, every login reaches sessiond from the app's address; with
// `--trusted-proxies` sessiond takes the end user's address from the app's
// X-Forwarded-For instead, so a stranger's failed logins are counted against
// the stranger only. Run on its own: `npm run test:trusted-proxies`.
//
// sessiond here trusts 127.0.0.1 only (the app); 127.0.0.2, another
// loopback address, stands for a peer it does not trust.

import assert from "node:assert/strict";
import http from "node:http";
import { after, before, describe, test } from "node:test";

import { SessiondClient } from "../dist/index.js";
import { ADMIN_EMAIL, ADMIN_PASSWORD, startSessiond } from "./harness.mjs";
import { Browser, makeApp } from "./nextauth-app.mjs";

/** Failed logins per address before 429 (sessiond's default is 100; fewer keeps this quick). */
const PER_ADDRESS = 5;

/** A login sent from `localAddress`, with `forwardedFor` as X-Forwarded-For: the status. */
function rawLogin(url, { localAddress, forwardedFor, email, password }) {
  const { hostname, port } = new URL(url);
  const body = JSON.stringify({ email, password });
  const headers = { "content-type": "application/json", "content-length": Buffer.byteLength(body) };
  if (forwardedFor !== undefined) headers["x-forwarded-for"] = forwardedFor;
  return new Promise((resolve, reject) => {
    const req = http.request({ hostname, port, path: "/api/auth/login", method: "POST", localAddress, headers }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode));
    });
    req.on("error", reject);
    req.end(body);
  });
}

describe("sessiond --trusted-proxies behind a Next.js app", () => {
  let server;
  let client;
  let admin;
  let app;

  before(async () => {
    server = await startSessiond({
      args: ["--trusted-proxies", "127.0.0.1/32", "--login-max-failures-per-address", String(PER_ADDRESS)],
    });
    client = new SessiondClient({ baseUrl: server.url });
    admin = (await client.login(ADMIN_EMAIL, ADMIN_PASSWORD)).token;
    // The app is behind one proxy of its own (the Browser's address
    // arrives as the one hop it appended): the helper passes that hop on.
    app = makeApp(client, { proxyHops: 1 });
  });

  after(async () => {
    await server?.stop();
  });

  let n = 0;
  async function newUser() {
    n += 1;
    const email = `proxied${n}@example.com`;
    await client.createUser(admin, { email, password: "password-123", role: "editor" });
    return { email, password: "password-123" };
  }

  test("a stranger's failed logins lock the stranger out, not the app's other users", async () => {
    const stranger = new Browser(app, { ip: "203.0.113.66" });
    // One wrong password per account: only the per-address limit can stop it.
    for (let i = 0; i < PER_ADDRESS; i++) {
      const victim = await newUser();
      const to = await stranger.signIn(victim.email, "wrong-password");
      assert.equal(to.searchParams.get("code"), "credentials", `failure ${i + 1}`);
    }
    const next = await newUser();
    const refused = await stranger.signIn(next.email, next.password);
    assert.equal(refused.searchParams.get("code"), "rate_limited", "the stranger's address is limited");

    for (const ip of ["198.51.100.7", "198.51.100.8"]) {
      const u = await newUser();
      const to = await new Browser(app, { ip }).signIn(u.email, u.password);
      assert.equal(to.pathname, "/", `a user at ${ip} signs in: ${to}`);
    }
  });

  test("an untrusted peer's X-Forwarded-For is ignored", async () => {
    const untrusted = { localAddress: "127.0.0.2" };
    for (let i = 0; i < PER_ADDRESS; i++) {
      const victim = await newUser();
      const status = await rawLogin(server.url, {
        ...untrusted,
        forwardedFor: `192.0.2.${i + 1}`,
        email: victim.email,
        password: "wrong-password",
      });
      assert.equal(status, 401, `failure ${i + 1}`);
    }
    // A fresh forwarded address does not help: the failures were the peer's.
    const u = await newUser();
    assert.equal(await rawLogin(server.url, { ...untrusted, forwardedFor: "192.0.2.99", ...u }), 429);
    assert.equal(await rawLogin(server.url, { ...untrusted, ...u }), 429);
    // The trusted app's users are not affected.
    assert.equal(await rawLogin(server.url, { localAddress: "127.0.0.1", forwardedFor: "198.51.100.9", ...u }), 200);
  });
});

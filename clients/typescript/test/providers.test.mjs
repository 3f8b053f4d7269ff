// Auth.js with a provider other than credentials: the real next-auth and
// @auth/core with the email (Nodemailer) provider and an adapter, against
// the real sessiond binary. On sign-in the helper mints sessiond's token
// for the adapter's user id with an app key; role on every request, the
// outage behaviour and sign-out revocation are as for a credentials
// sign-in.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { SessiondClient } from "../dist/index.js";
import { hasRole } from "../dist/authjs.js";
import { ADMIN_EMAIL, ADMIN_PASSWORD, closedPort, createAppKey, startSessiond } from "./harness.mjs";
import { Browser, assertNoToken, makeEmailApp, memoryAdapter, recordingFetch } from "./nextauth-app.mjs";

describe("next-auth's email provider with sessiondAuth, minting with an app key", () => {
  let server;
  let admin;
  let adminClient;
  let client;
  let fetchLog;
  let adapter;
  let app;

  before(async () => {
    server = await startSessiond();
    adminClient = new SessiondClient({ baseUrl: server.url });
    admin = (await adminClient.login(ADMIN_EMAIL, ADMIN_PASSWORD)).token;
    const appKey = await createAppKey(server.databaseUrl, "next-app", "mint");
    assert.match(appKey, /^sdk_/);
    fetchLog = recordingFetch();
    client = new SessiondClient({ baseUrl: server.url, appKey, fetch: fetchLog });
    adapter = memoryAdapter(adminClient, admin);
    app = makeEmailApp(client, adapter);
  });

  after(async () => {
    await server?.stop();
  });

  let n = 0;
  async function existing(role) {
    n += 1;
    const user = await adminClient.createUser(admin, { email: `mail${n}@example.test`, password: "password-123", role });
    adapter.add(user.id, user.email);
    return user;
  }

  test("an email sign-in mints sessiond's token for the adapter's user; role on every request; no token in the session", async () => {
    const user = await existing("editor");
    const browser = new Browser(app);
    fetchLog.calls.length = 0;
    const to = await browser.signInEmail(user.email, app.outbox);
    assert.equal(to.pathname, "/", `signed in: ${to}`);
    assert.deepEqual(
      fetchLog.calls.filter((c) => c.path === "/api/sessions").map((c) => JSON.parse(c.body)),
      [{ user_id: user.id }],
    );
    assert.equal(fetchLog.calls.filter((c) => c.path === "/api/auth/login").length, 0);
    const claims = await browser.cookieClaims();
    assert.equal(claims.sub, String(user.id));
    const token = claims.sessiondToken;
    assert.equal((await adminClient.getSession(token)).user.id, user.id);

    const auth = await browser.auth("/admin");
    assert.deepEqual(auth.user, { id: String(user.id), email: user.email, role: "editor", status: "active" });
    assertNoToken(assert, auth, token, "req.auth");
    assertNoToken(assert, (await browser.session()).body, token, "/api/auth/session");

    await adminClient.setRole(admin, user.id, "admin");
    assert.ok(hasRole(await browser.auth("/admin"), "admin"), "the new role on the next request");
    await adminClient.setRole(admin, user.id, "viewer");
    assert.ok(!hasRole(await browser.auth("/admin"), "admin"));
  });

  test("a first email sign-in creates the user through the adapter and mints for its new id", async () => {
    const browser = new Browser(app);
    const to = await browser.signInEmail("newcomer@example.test", app.outbox);
    assert.equal(to.pathname, "/");
    const made = [...adapter.users.values()].find((u) => u.email === "newcomer@example.test");
    assert.ok(made, "the adapter created the user");
    const auth = await browser.auth();
    assert.equal(auth.user.id, made.id);
    assert.equal(auth.user.role, "user");
  });

  test("sign-out revokes the minted token; a deactivation signs out on the next request", async () => {
    const user = await existing("editor");
    const browser = new Browser(app);
    await browser.signInEmail(user.email, app.outbox);
    const token = (await browser.cookieClaims()).sessiondToken;
    const res = await browser.signOut();
    assert.equal(res.status, 302);
    assert.ok(!browser.hasSessionCookie());
    await assert.rejects(adminClient.getSession(token), (e) => e.code === "session_revoked");

    const again = new Browser(app);
    await again.signInEmail(user.email, app.outbox);
    assert.equal((await again.auth()).user.status, "active");
    await adminClient.deactivate(admin, user.id);
    assert.equal(await again.auth(), null);
    assert.ok(!again.hasSessionCookie());
  });

  test("a deactivated user is not signed in (sessiond refuses to mint)", async () => {
    const user = await existing("editor");
    await adminClient.deactivate(admin, user.id);
    const browser = new Browser(app);
    await browser.signInEmail(user.email, app.outbox);
    assert.ok(!browser.hasSessionCookie(), "no session cookie");
    assert.equal(await browser.auth(), null);
  });

  test("sessiond down: user null with an error, the cookie kept; back up, the same cookie works", async () => {
    const user = await existing("editor");
    const browser = new Browser(app);
    await browser.signInEmail(user.email, app.outbox);
    const down = makeEmailApp(
      new SessiondClient({ baseUrl: `http://127.0.0.1:${await closedPort()}`, retries: 0 }),
      adapter,
    );
    const during = new Browser(down);
    during.cookies = browser.cookies;
    const auth = await during.auth();
    assert.equal(auth.user, null);
    assert.equal(auth.error, "network_error");
    assert.ok(during.hasSessionCookie(), "the cookie is kept");
    assert.equal((await browser.auth()).user.id, String(user.id));
  });

  test("a revoked or wrong app key signs nobody in", async () => {
    const user = await existing("editor");
    const wrong = makeEmailApp(
      new SessiondClient({ baseUrl: server.url, appKey: "sdk_AAAAAAAAAAAAAAAA_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB" }),
      adapter,
    );
    const browser = new Browser(wrong);
    const csrfToken = await browser.csrfToken();
    await browser.postForm("/api/auth/signin/nodemailer", { csrfToken, email: user.email, callbackUrl: "/" });
    const link = new URL(wrong.outbox[0].url);
    await browser.get(link.pathname + link.search);
    assert.ok(!browser.hasSessionCookie());
    assert.ok(wrong.logged.length > 0, "Auth.js logged the failed sign-in");
  });
});

// The real next-auth (5, beta) and @auth/core, with the Credentials provider
// and sessiondAuth's callbacks, against the real sessiond binary: sign-in
// through Auth.js's own route handlers, `auth()` as middleware sees it, and
// `/api/auth/session` as `useSession()` fetches it.

import assert from "node:assert/strict";
import net from "node:net";
import util from "node:util";
import { after, before, describe, test } from "node:test";

import { CredentialsSignin } from "next-auth";
import { cookies } from "next/headers";

import { SessiondClient } from "../dist/index.js";
import { hasRole } from "../dist/authjs.js";
import { ADMIN_EMAIL, ADMIN_PASSWORD, closedPort, startSessiond } from "./harness.mjs";
import { Browser, assertNoToken, makeApp, recordingFetch, servedByNext } from "./nextauth-app.mjs";

/** A loopback server that accepts connections and never answers. */
async function silentServer() {
  const sockets = new Set();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(r);
      }),
  };
}

describe("next-auth and @auth/core with sessiondAuth, against sessiond", () => {
  let server;
  let client;
  let admin;
  let fetchLog;
  let app;

  before(async () => {
    server = await startSessiond();
    fetchLog = recordingFetch();
    client = new SessiondClient({ baseUrl: server.url, fetch: fetchLog });
    admin = (await client.login(ADMIN_EMAIL, ADMIN_PASSWORD)).token;
    app = makeApp(client);
  });

  after(async () => {
    await server?.stop();
  });

  let n = 0;
  async function newUser(role = "editor") {
    n += 1;
    const email = `nextauth${n}@example.com`;
    const user = await client.createUser(admin, { email, password: "password-123", role });
    return { user, email, password: "password-123" };
  }

  /** A browser signed in as a new user, and sessiond's token in its cookie. */
  async function signedIn(role, a = app) {
    const u = await newUser(role);
    const browser = new Browser(a);
    const to = await browser.signIn(u.email, u.password);
    assert.equal(to.pathname, "/", `signed in: ${to}`);
    const claims = await browser.cookieClaims();
    return { ...u, browser, token: claims.sessiondToken };
  }

  test("sign-in: the cookie holds the user id and sessiond's token only; the session holds no token", async () => {
    const { user, browser, token } = await signedIn("editor");
    const claims = await browser.cookieClaims();
    assert.deepEqual(Object.keys(claims).sort(), ["exp", "iat", "jti", "sessiondToken", "sub"]);
    assert.equal(claims.sub, String(user.id));
    assert.equal((await client.getSession(token)).user.id, user.id);

    const expected = { id: String(user.id), email: user.email, role: "editor", status: "active" };
    const auth = await browser.auth();
    assert.deepEqual(auth.user, expected);
    assert.equal(auth.error, undefined);
    assertNoToken(assert, auth, token, "req.auth");

    const { status, body } = await browser.session();
    assert.equal(status, 200);
    assert.deepEqual(body.user, expected);
    assertNoToken(assert, body, token, "/api/auth/session");
    assert.ok(browser.hasSessionCookie());
  });

  test("by default no address is passed at sign-in: X-Forwarded-For may be the browser's", async () => {
    const u = await newUser("editor");
    const browser = new Browser(app, { ip: "203.0.113.42" });
    fetchLog.calls.length = 0;
    assert.equal((await browser.signIn(u.email, u.password)).pathname, "/");
    const logins = fetchLog.calls.filter((c) => c.path === "/api/auth/login");
    assert.deepEqual(
      logins.map((c) => c.forwardedFor),
      [null],
    );
  });

  test("with proxyHops, only the hop the app's own proxy appended reaches sessiond", async () => {
    const u = await newUser("editor");
    const own = makeApp(client, { proxyHops: 1 });
    // The browser wrote 6.6.6.6 itself; the app's proxy appended 203.0.113.42.
    const browser = new Browser(own, { ip: "6.6.6.6, 203.0.113.42" });
    fetchLog.calls.length = 0;
    assert.equal((await browser.signIn(u.email, u.password)).pathname, "/");
    const logins = fetchLog.calls.filter((c) => c.path === "/api/auth/login");
    assert.deepEqual(
      logins.map((c) => c.forwardedFor),
      ["203.0.113.42"],
    );
    assert.throws(() => makeApp(client, { proxyHops: -1 }), TypeError);
  });

  test("clientAddress replaces the address read from the request; null sends none", async () => {
    const u = await newUser("editor");
    for (const [clientAddress, expected] of [
      [(request) => request.headers.get("x-real-ip"), "192.0.2.7"],
      [() => null, null],
    ]) {
      const own = makeApp(client, { clientAddress });
      const browser = new Browser(own, { ip: "203.0.113.42" });
      fetchLog.calls.length = 0;
      const csrfToken = await browser.csrfToken();
      const req = browser.request("/api/auth/callback/credentials", {
        method: "POST",
        body: new URLSearchParams({ csrfToken, email: u.email, password: u.password, callbackUrl: "/" }).toString(),
        headers: { "content-type": "application/x-www-form-urlencoded", "x-real-ip": "192.0.2.7" },
      });
      browser.store(await own.handlers.POST(req));
      assert.ok(browser.hasSessionCookie());
      const logins = fetchLog.calls.filter((c) => c.path === "/api/auth/login");
      assert.deepEqual(
        logins.map((c) => c.forwardedFor),
        [expected],
      );
    }
  });

  test("sessiondAuth without Auth.js's CredentialsSignin is refused at start-up", () => {
    assert.throws(() => makeApp(client, { CredentialsSignin: undefined }), TypeError);
  });

  test("a role change is seen on the very next request", async () => {
    const { user, browser, token } = await signedIn("admin");
    let auth = await browser.auth("/admin");
    assert.equal(auth.user.role, "admin");
    assert.ok(hasRole(auth, "admin"));

    await client.setRole(admin, user.id, "viewer");
    auth = await browser.auth("/admin");
    assert.equal(auth.user.role, "viewer");
    assert.ok(!hasRole(auth, "admin"));
    assert.equal((await browser.session()).body.user.role, "viewer");
    assert.equal((await browser.cookieClaims()).role, undefined, "the role is never in the cookie");
    assertNoToken(assert, auth, token);

    await client.setRole(admin, user.id, "admin");
    assert.equal((await browser.auth("/admin")).user.role, "admin");
  });

  test("a deactivation signs the user out on the next request, and the cookie is deleted", async () => {
    const { user, browser } = await signedIn("editor");
    assert.equal((await browser.auth()).user.status, "active");
    await client.deactivate(admin, user.id);
    assert.equal(await browser.auth(), null);
    assert.ok(!browser.hasSessionCookie(), "Auth.js deleted the session cookie");
    assert.equal((await browser.session()).body, null);
  });

  test("wrong credentials and a deactivated account are CredentialsSignin (code credentials)", async () => {
    const u = await newUser("editor");
    const browser = new Browser(app);
    const wrong = await browser.signIn(u.email, "wrong-password");
    assert.equal(wrong.pathname, "/login");
    assert.equal(wrong.searchParams.get("error"), "CredentialsSignin");
    assert.equal(wrong.searchParams.get("code"), "credentials");
    assert.ok(!browser.hasSessionCookie());

    await client.deactivate(admin, u.user.id);
    const off = await browser.signIn(u.email, u.password);
    assert.equal(off.searchParams.get("code"), "credentials");
    assert.ok(!browser.hasSessionCookie());
  });

  test("sign-out deletes the cookie and revokes sessiond's token", async () => {
    const { browser, token } = await signedIn("editor");
    const stolen = new Map(browser.cookies);
    const res = await browser.signOut();
    assert.equal(res.status, 302);
    assert.ok(!browser.hasSessionCookie());
    await assert.rejects(client.getSession(token), (e) => e.code === "session_revoked");
    // A copy of the cookie taken before the sign-out does not sign in either.
    const thief = new Browser(app);
    thief.cookies = stolen;
    assert.equal(await thief.auth(), null);
  });

  test("sessiond down: user null, no token anywhere, the cookie kept; back up, the same cookie works", async () => {
    const { browser, token } = await signedIn("editor");
    const down = makeApp(
      new SessiondClient({ baseUrl: `http://127.0.0.1:${await closedPort()}`, retries: 1, retryDelayMs: 1 }),
    );
    const during = new Browser(down);
    during.cookies = browser.cookies;

    const auth = await during.auth();
    assert.ok(auth !== null && typeof auth === "object");
    assert.ok("user" in auth, "the session carries the user key");
    assert.equal(auth.user, null, "user is null: the request is denied");
    assert.equal(auth.error, "network_error");
    assert.ok(typeof auth.expires === "string");
    assert.ok(!hasRole(auth));
    assertNoToken(assert, auth, token, "req.auth");
    assert.ok(during.hasSessionCookie(), "the cookie is kept");
    assert.equal(down.unavailable.length, 1);
    assertNoToken(assert, down.unavailable[0], token, "the reported error");

    const { body } = await during.session();
    assert.deepEqual(Object.keys(body).sort(), ["error", "expires", "user"]);
    assert.equal(body.user, null);
    assertNoToken(assert, body, token, "/api/auth/session");

    // An update() while down is denied the same way.
    const updated = await during.update({});
    assert.equal(updated.user, null);
    assertNoToken(assert, updated, token, "update()");

    // sessiond answers again: the cookie kept during the outage signs in.
    const back = new Browser(app);
    back.cookies = during.cookies;
    assert.equal((await back.auth()).user.role, "editor");
  });

  test("sign-in while sessiond is down is a retryable, named CredentialsSignin, not a configuration error", async () => {
    const u = await newUser("editor");
    const down = makeApp(
      new SessiondClient({ baseUrl: `http://127.0.0.1:${await closedPort()}`, retries: 1, retryDelayMs: 1 }),
    );
    const browser = new Browser(down);
    const to = await browser.signIn(u.email, u.password);
    assert.equal(to.pathname, "/login");
    assert.equal(to.searchParams.get("error"), "CredentialsSignin");
    assert.equal(to.searchParams.get("code"), "sessiond_unavailable");
    const e = down.logged.find((x) => x instanceof CredentialsSignin);
    assert.ok(e instanceof down.helper.errors.Unavailable);
    assert.equal(e.code, "sessiond_unavailable");
    assert.equal(e.name, "SessiondUnavailable");
    // The same sign-in works once sessiond answers.
    assert.equal((await new Browser(app).signIn(u.email, u.password)).pathname, "/");
  });

  test("sessiond hanging: each request is denied within the default session timeout (1 s)", async () => {
    const { browser, token } = await signedIn("editor");
    const silent = await silentServer();
    try {
      const hung = makeApp(new SessiondClient({ baseUrl: silent.url }));
      const during = new Browser(hung);
      during.cookies = browser.cookies;

      let started = performance.now();
      const auth = await during.auth();
      let took = performance.now() - started;
      assert.equal(auth.user, null);
      assert.equal(auth.error, "timeout");
      assertNoToken(assert, auth, token, "req.auth");
      assert.ok(during.hasSessionCookie(), "the cookie is kept");
      assert.ok(took >= 950 && took < 2000, `auth() took ${took.toFixed(0)} ms`);

      started = performance.now();
      const { body } = await during.session();
      took = performance.now() - started;
      assert.equal(body.user, null);
      assert.equal(body.error, "timeout");
      assert.ok(took >= 950 && took < 2000, `/api/auth/session took ${took.toFixed(0)} ms`);
    } finally {
      await silent.close();
    }
  });

  test("too many failed logins: a named CredentialsSignin with code rate_limited and retryAfter", async () => {
    const u = await newUser("editor");
    const browser = new Browser(app, { ip: "192.0.2.55" });
    for (let i = 0; i < 10; i++) {
      assert.equal((await browser.signIn(u.email, "wrong-password")).searchParams.get("code"), "credentials");
    }
    app.logged.length = 0;
    const to = await browser.signIn(u.email, u.password);
    assert.equal(to.pathname, "/login");
    assert.equal(to.searchParams.get("error"), "CredentialsSignin");
    assert.equal(to.searchParams.get("code"), "rate_limited");
    assert.ok(!browser.hasSessionCookie());

    const e = app.logged.find((x) => x instanceof CredentialsSignin);
    assert.ok(e instanceof app.helper.errors.RateLimited, `logged: ${app.logged}`);
    assert.equal(e.name, "SessiondRateLimited");
    assert.equal(e.code, "rate_limited");
    assert.equal(e.type, "CredentialsSignin");
    assert.ok(Number.isInteger(e.retryAfter) && e.retryAfter > 0 && e.retryAfter <= 900, `retryAfter ${e.retryAfter}`);
    assert.ok(!String(e.message).includes(u.password));
  });

  /** The device cookie's documented default name. */
  const DEVICE_COOKIE = "sessiond-device";

  /** An app whose helper keeps the device token with Next.js's `cookies()`, served as Next.js serves its route. */
  function deviceApp(options = {}) {
    const a = makeApp(client, { cookies, ...options });
    a.handlers = servedByNext(a.handlers);
    return a;
  }

  /** Wrong passwords sent straight to sessiond (no device token) until it answers 429: how many it took. */
  async function exhaustStrangers(email) {
    for (let guesses = 0; guesses <= 10; guesses++) {
      try {
        await client.login(email, "wrong-password");
        assert.fail("a wrong password signed in");
      } catch (e) {
        if (e.code === "rate_limited") return guesses;
        assert.equal(e.code, "invalid_credentials");
      }
    }
    assert.fail("11 wrong passwords and still no 429");
  }

  test("a known device: strangers who exhaust the account's failed logins do not lock out the owner's browser", async () => {
    const u = await newUser("editor");
    const known = deviceApp();
    const owner = new Browser(known, { ip: "198.51.100.20" });
    assert.equal((await owner.signIn(u.email, u.password)).pathname, "/");

    assert.equal(await exhaustStrangers(u.email), 10);

    // The owner's browser sends its device cookie back: let through.
    const device = owner.cookies.get(DEVICE_COOKIE);
    fetchLog.calls.length = 0;
    const again = await owner.signIn(u.email, u.password);
    assert.equal(again.pathname + again.search, "/", "the owner's browser is let through");
    assert.ok(device, `the first sign-in set the device cookie: ${owner.setCookies.map((l) => l.split("=")[0])}`);
    const logins = fetchLog.calls.filter((c) => c.path === "/api/auth/login");
    assert.deepEqual(
      logins.map((c) => Object.keys(JSON.parse(c.body)).sort()),
      [["device", "email", "password"]],
    );
    assert.equal(JSON.parse(logins[0].body).device, device, "the device cookie's value, and nothing else, is sent");
    assert.notEqual(owner.cookies.get(DEVICE_COOKIE), device, "each sign-in keeps sessiond's new device token");

    // The same browser without its device cookie is a stranger: refused.
    const cookieless = new Browser(known, { ip: "198.51.100.20" });
    cookieless.cookies = new Map(owner.cookies);
    cookieless.cookies.delete(DEVICE_COOKIE);
    const refused = await cookieless.signIn(u.email, u.password);
    assert.equal(refused.pathname, "/login");
    assert.equal(refused.searchParams.get("code"), "rate_limited");
    const stranger = await new Browser(known).signIn(u.email, u.password);
    assert.equal(stranger.searchParams.get("code"), "rate_limited");
  });

  test("the device cookie: httpOnly, SameSite=Lax, Path=/, 30 days, Secure over https; never in the JWT, the session or the logs", async () => {
    const u = await newUser("editor");
    const known = deviceApp();
    for (const [proto, secure] of [
      ["http", false],
      ["https", true],
    ]) {
      const browser = new Browser(known, { proto });
      assert.equal((await browser.signIn(u.email, u.password)).pathname, "/");
      const lines = browser.setCookies.filter((l) => l.startsWith(`${DEVICE_COOKIE}=`));
      assert.equal(lines.length, 1, `one device cookie: ${browser.setCookies.map((l) => l.split("=")[0])}`);
      const attrs = lines[0]
        .split(";")
        .slice(1)
        .map((a) => a.trim().toLowerCase());
      assert.ok(attrs.includes("httponly"), lines[0]);
      assert.ok(attrs.includes("samesite=lax"), lines[0]);
      assert.ok(attrs.includes("path=/"), lines[0]);
      assert.ok(attrs.includes(`max-age=${30 * 24 * 60 * 60}`), lines[0]);
      assert.equal(attrs.includes("secure"), secure, `${proto}: ${lines[0]}`);

      const device = browser.cookies.get(DEVICE_COOKIE);
      const claims = await browser.cookieClaims();
      assert.deepEqual(Object.keys(claims).sort(), ["exp", "iat", "jti", "sessiondToken", "sub"]);
      for (const [what, value] of [
        ["the JWT", claims],
        ["req.auth", await browser.auth()],
        ["/api/auth/session", (await browser.session()).body],
        ["what Auth.js logged", known.logged],
      ]) {
        const text = util.inspect(value, { depth: null, showHidden: true, getters: true }) + JSON.stringify(value);
        assert.ok(!text.includes(device), `${what} carries the device token`);
        // The header part is left out: it may be that of sessiond's token.
        for (const part of device.split(".").slice(1)) {
          assert.ok(!text.includes(part), `${what} carries part of the device token`);
        }
      }
    }
    // Without a cookie store no device cookie is set.
    const plain = new Browser(app);
    assert.equal((await plain.signIn(u.email, u.password)).pathname, "/");
    assert.ok(!plain.cookies.has(DEVICE_COOKIE));
  });

  test("session.update(data) forces a database read and ignores the data; update() is a plain GET", async () => {
    const { browser, token } = await signedIn("editor");
    await browser.auth(); // the record is now cached in sessiond
    const perf = async () => (await (await fetch(`${server.url}/api/perf`)).json()).db_queries;

    fetchLog.calls.length = 0;
    let queries = await perf();
    const updated = await browser.update({ user: { role: "admin" } });
    assert.equal(updated.user.role, "editor", "the browser cannot set its role");
    assertNoToken(assert, updated, token, "update(data)");
    assert.deepEqual(
      fetchLog.calls.map((c) => [c.method, c.path, c.body]),
      [["POST", "/api/auth/refresh-session", '{"force":true}']],
    );
    assert.equal((await perf()) - queries, 1, "sessiond read the database");

    fetchLog.calls.length = 0;
    queries = await perf();
    const plain = await browser.update();
    assert.equal(plain.user.role, "editor");
    assert.deepEqual(
      fetchLog.calls.map((c) => [c.method, c.path]),
      [["GET", "/api/auth/session"]],
    );
    assert.equal((await perf()) - queries, 0, "a cache hit: update() without data does not force");
  });

  test("revoked sessions and a deleted user are signed out; a cookie from elsewhere is refused", async () => {
    const a = await signedIn("editor");
    const b = await signedIn("editor");
    await client.revokeSessions(admin, a.user.id);
    await client.deleteUser(admin, b.user.id);
    assert.equal(await a.browser.auth(), null);
    assert.equal(await b.browser.auth(), null);
    assert.ok(!a.browser.hasSessionCookie() && !b.browser.hasSessionCookie());

    const forged = new Browser(app);
    forged.cookies.set("authjs.session-token", "not-a-jwe");
    assert.equal(await forged.auth(), null);
  });
});

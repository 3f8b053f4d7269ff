// The Auth.js callbacks, driven the way Auth.js (v5) drives them, against the
// real sessiond binary: sign-in runs `authorize` then `jwt({ user })`; every
// request decodes the cookie, runs `jwt({ token })`, deletes the cookie when
// that answers null, else runs `session({ session, token })` and re-encodes
// the token it got.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { CredentialsSignin } from "@auth/core/errors";

import { SessiondClient, SessiondError } from "../dist/index.js";
import * as authjs from "../dist/authjs.js";
import { hasRole, sessiondAuth } from "../dist/authjs.js";
import { ADMIN_EMAIL, ADMIN_PASSWORD, closedPort, startSessiond } from "./harness.mjs";

const MAX_AGE_S = 30 * 24 * 60 * 60;

/** Auth.js's encoding of the token into the cookie, reduced to JSON. */
function encode(token) {
  const now = Math.floor(Date.now() / 1000);
  return JSON.stringify({ ...token, iat: now, exp: now + MAX_AGE_S, jti: crypto.randomUUID() });
}

/** Sign-in with the Credentials provider: the cookie, or null when refused. */
async function signIn(auth, credentials) {
  const user = await auth.authorize(credentials);
  if (!user) return null;
  const token = await auth.callbacks.jwt({
    token: { name: user.name, email: user.email, picture: user.image, sub: user.id },
    user,
    account: { provider: "credentials", type: "credentials", providerAccountId: user.id },
    trigger: "signIn",
    isNewUser: false,
  });
  assert.notEqual(token, null, "a sign-in that authorize accepted resolves");
  return encode(token);
}

/** One request that reads the session (`auth()`): the new cookie and the session. */
async function request(auth, cookie, trigger) {
  const payload = JSON.parse(cookie);
  const token = await auth.callbacks.jwt({ token: payload, ...(trigger ? { trigger, session: {} } : {}) });
  if (token === null) return { cookie: null, session: null };
  const session = await auth.callbacks.session({
    session: {
      user: { name: payload.name, email: payload.email, image: payload.picture },
      expires: new Date(Date.now() + MAX_AGE_S * 1000).toISOString(),
    },
    token,
  });
  return { cookie: encode(token), session: JSON.parse(JSON.stringify(session)) };
}

describe("Auth.js callbacks against sessiond", () => {
  let server;
  let client;
  let admin;
  let auth;
  const unavailable = [];

  before(async () => {
    server = await startSessiond();
    client = new SessiondClient({ baseUrl: server.url });
    admin = (await client.login(ADMIN_EMAIL, ADMIN_PASSWORD)).token;
    auth = sessiondAuth(client, { CredentialsSignin, onUnavailable: (e) => unavailable.push(e) });
  });

  after(async () => {
    await server?.stop();
  });

  let n = 0;
  async function newUser(role) {
    n += 1;
    const email = `authjs${n}@example.com`;
    const user = await client.createUser(admin, { email, password: "password-123", role });
    return { user, credentials: { email, password: "password-123" } };
  }

  test("sign-in keeps only the user id and sessiond's token in the cookie", async () => {
    const { user, credentials } = await newUser("editor");
    const cookie = await signIn(auth, credentials);
    const claims = JSON.parse(cookie);
    assert.deepEqual(Object.keys(claims).sort(), ["exp", "iat", "jti", "sessiondToken", "sub"]);
    assert.equal(claims.sub, String(user.id));
    assert.equal((await client.getSession(claims.sessiondToken)).user.id, user.id);

    const { session } = await request(auth, cookie);
    assert.deepEqual(session.user, { id: String(user.id), email: user.email, role: "editor", status: "active" });
    assert.ok(!JSON.stringify(session).includes(claims.sessiondToken), "the session never carries the token");
    assert.equal(session.error, undefined);
  });

  test("wrong credentials and a deactivated account do not sign in", async () => {
    const { user, credentials } = await newUser("editor");
    assert.equal(await signIn(auth, { ...credentials, password: "wrong-password" }), null);
    assert.equal(await signIn(auth, { email: credentials.email }), null);
    await client.deactivate(admin, user.id);
    assert.equal(await signIn(auth, credentials), null);
  });

  test("a role change takes effect on the next request", async () => {
    const { user, credentials } = await newUser("admin");
    let cookie = await signIn(auth, credentials);
    let r = await request(auth, cookie);
    assert.equal(r.session.user.role, "admin");
    assert.ok(hasRole(r.session, "admin"));
    cookie = r.cookie;

    await client.setRole(admin, user.id, "viewer");

    r = await request(auth, cookie);
    assert.equal(r.session.user.role, "viewer");
    assert.ok(!hasRole(r.session, "admin"));
    assert.ok(hasRole(r.session, "viewer", "editor"));
    assert.ok(!JSON.parse(r.cookie).role, "the role is never written into the cookie");
  });

  test("a deactivation signs the user out on the next request", async () => {
    const { user, credentials } = await newUser("editor");
    let cookie = await signIn(auth, credentials);
    const r = await request(auth, cookie);
    assert.equal(r.session.user.status, "active");
    cookie = r.cookie;

    await client.deactivate(admin, user.id);

    const after = await request(auth, cookie);
    assert.equal(after.cookie, null, "Auth.js deletes the cookie");
    assert.equal(after.session, null);
    assert.ok(!hasRole(after.session));
  });

  test("revoked sessions and a deleted user are signed out on the next request", async () => {
    const a = await newUser("editor");
    const b = await newUser("editor");
    const cookieA = (await request(auth, await signIn(auth, a.credentials))).cookie;
    const cookieB = (await request(auth, await signIn(auth, b.credentials))).cookie;
    await client.revokeSessions(admin, a.user.id);
    await client.deleteUser(admin, b.user.id);
    assert.equal((await request(auth, cookieA)).cookie, null);
    assert.equal((await request(auth, cookieB)).cookie, null);
  });

  test("the signOut event logs the sessiond token out", async () => {
    const { credentials } = await newUser("editor");
    const cookie = await signIn(auth, credentials);
    const token = JSON.parse(cookie);
    await auth.events.signOut({ token });
    await assert.rejects(client.getSession(token.sessiondToken), (e) => e instanceof SessiondError && e.code === "session_revoked");
    assert.equal((await request(auth, cookie)).cookie, null);
    // Signing out twice, or without a token, is harmless.
    await auth.events.signOut({ token });
    await auth.events.signOut({ session: {} });
  });

  test("an update() forces a database read and keeps the user signed in", async () => {
    const { credentials } = await newUser("editor");
    const cookie = await signIn(auth, credentials);
    const r = await request(auth, cookie, "update");
    assert.equal(r.session.user.role, "editor");
  });

  test("a cookie without a sessiond token is signed out", async () => {
    const old = JSON.stringify({ sub: "1", role: "admin", roleFetchedAt: Date.now() });
    assert.equal((await request(auth, old)).cookie, null);
    const forged = JSON.stringify({ sub: "1", sessiondToken: "a.b.c" });
    assert.equal((await request(auth, forged)).cookie, null);
    // session() on its own (no jwt() before it) resolves too.
    const s = await auth.callbacks.session({ session: { expires: new Date() }, token: { sub: "1" } });
    assert.equal(s.user, null);
    assert.equal(s.error, "invalid_token");
  });

  /** The device cookie's documented default name. */
  const DEVICE_COOKIE = "sessiond-device";

  /** A client whose login bodies are recorded, and a cookie store that records what is set. */
  function recorded() {
    const bodies = [];
    const f = async (url, init = {}) => {
      if (new URL(url).pathname === "/api/auth/login") bodies.push(JSON.parse(init.body));
      return fetch(url, init);
    };
    const sets = [];
    const store = { set: (name, value, options) => sets.push({ name, value, options }) };
    return { client: new SessiondClient({ baseUrl: server.url, fetch: f }), bodies, sets, store };
  }

  /** The Request Auth.js hands `authorize`: its own URL, the browser's headers. */
  function signInRequest(origin, cookie) {
    const headers = cookie === undefined ? {} : { cookie };
    return new Request(`${origin}/api/auth/callback/credentials`, { method: "POST", headers, body: "{}" });
  }

  test("authorize keeps the device token in the cookie store and sends that cookie back, no other", async () => {
    const { credentials } = await newUser("editor");
    const r = recorded();
    const a = sessiondAuth(r.client, { CredentialsSignin, cookies: () => r.store });

    const user = await a.authorize(credentials, signInRequest("http://app.test"));
    assert.deepEqual(Object.keys(user).sort(), ["email", "id", "sessiondToken"], "the device token is not in the user");
    assert.deepEqual(r.bodies.map((b) => b.device), [undefined]);
    assert.equal(r.sets.length, 1);
    const { name, value: device, options } = r.sets[0];
    assert.equal(name, DEVICE_COOKIE);
    assert.equal(authjs.DEVICE_COOKIE, DEVICE_COOKIE);
    assert.deepEqual(options, { httpOnly: true, sameSite: "lax", path: "/", secure: false, maxAge: 30 * 24 * 60 * 60 });
    assert.equal(device.split(".").length, 3);

    // Over https, with an async store (Next.js's cookies() answers a promise).
    const s = recorded();
    const b = sessiondAuth(s.client, { CredentialsSignin, cookies: async () => s.store });
    await b.authorize(credentials, signInRequest("https://app.test", `other=1; ${DEVICE_COOKIE}=${device}; ${DEVICE_COOKIE}=second; x=y`));
    assert.equal(s.sets[0].options.secure, true);
    assert.deepEqual(s.bodies.map((x) => x.device), [device], "the first device cookie, and nothing else");
    assert.notEqual(s.sets[0].value, device, "a new device token each sign-in");

    // A value that cannot be a device token is not sent.
    r.bodies.length = 0;
    for (const bad of ["not a token", "x".repeat(5000), "%ZZ", ""]) {
      await a.authorize(credentials, signInRequest("http://app.test", `${DEVICE_COOKIE}=${bad}`));
    }
    assert.deepEqual(r.bodies.map((x) => x.device), [undefined, undefined, undefined, undefined]);
  });

  test("the device cookie's name is configurable; without a store nothing is set", async () => {
    const { credentials } = await newUser("editor");
    const r = recorded();
    const a = sessiondAuth(r.client, { CredentialsSignin, cookies: () => r.store, deviceCookie: "app-device" });
    await a.authorize(credentials, signInRequest("http://app.test"));
    assert.deepEqual(r.sets.map((c) => c.name), ["app-device"]);
    const device = r.sets[0].value;
    await a.authorize(credentials, signInRequest("http://app.test", `${DEVICE_COOKIE}=other; app-device=${device}`));
    assert.deepEqual(r.bodies.map((b) => b.device), [undefined, device]);

    const none = recorded();
    const plain = sessiondAuth(none.client, { CredentialsSignin });
    assert.ok(await plain.authorize(credentials, signInRequest("http://app.test", `${DEVICE_COOKIE}=${device}`)));
    assert.deepEqual(none.bodies.map((b) => b.device), [device], "a device cookie already there is still sent");

    assert.throws(() => sessiondAuth(client, { CredentialsSignin, deviceCookie: "a b" }), TypeError);
    assert.throws(() => sessiondAuth(client, { CredentialsSignin, deviceCookie: "" }), TypeError);
    assert.throws(() => sessiondAuth(client, { CredentialsSignin, cookies: {} }), TypeError);
  });

  test("a cookie store that refuses the device cookie does not fail the sign-in, and the warning has no token", async () => {
    const { credentials } = await newUser("editor");
    let device;
    const r = recorded();
    const a = sessiondAuth(r.client, {
      CredentialsSignin,
      cookies: () => ({
        set(name, value) {
          device = value;
          throw new Error(`Cookies can only be modified in a Server Action or Route Handler (${value})`);
        },
      }),
    });
    const warned = [];
    const warn = console.warn;
    console.warn = (...args) => warned.push(args.join(" "));
    try {
      assert.ok(await a.authorize(credentials, signInRequest("http://app.test")));
    } finally {
      console.warn = warn;
    }
    assert.equal(warned.length, 1);
    assert.ok(typeof device === "string" && !warned[0].includes(device), warned[0]);
    assert.ok(!warned[0].includes(credentials.email), warned[0]);
  });

  test("sessiond unreachable: the request is denied, the user stays signed in", async () => {
    const { credentials } = await newUser("editor");
    const cookie = await signIn(auth, credentials);
    const port = await closedPort();
    const down = sessiondAuth(new SessiondClient({ baseUrl: `http://127.0.0.1:${port}`, retries: 1, retryDelayMs: 1 }), {
      CredentialsSignin,
      onUnavailable: (e) => unavailable.push(e),
    });
    const before = unavailable.length;
    const r = await request(down, cookie);
    assert.notEqual(r.cookie, null, "the cookie is kept");
    assert.equal(r.session.user, null, "no user, explicitly: the request is denied");
    assert.equal(r.session.error, "network_error");
    assert.ok(!hasRole(r.session));
    assert.equal(unavailable.length, before + 1);
    assert.ok(!unavailable.at(-1).message.includes(JSON.parse(cookie).sessiondToken));
    // Back up: the same cookie resolves again.
    const again = await request(auth, r.cookie);
    assert.equal(again.session.user.role, "editor");
  });
});

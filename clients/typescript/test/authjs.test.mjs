// The Auth.js callbacks, driven the way Auth.js (v5) drives them, against the
// real sessiond binary: sign-in runs `authorize` then `jwt({ user })`; every
// request decodes the cookie, runs `jwt({ token })`, deletes the cookie when
// that answers null, else runs `session({ session, token })` and re-encodes
// the token it got.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { CredentialsSignin } from "@auth/core/errors";

import { SessiondClient, SessiondError } from "../dist/index.js";
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

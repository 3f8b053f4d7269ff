// @sessiond/client/better-auth against the real Better Auth (its handler's
// auth.api.*, admin and bearer plugins) on PostgreSQL, adopted by three
// real sessiond nodes: getSession answers what auth.api.getSession answers;
// after each call that ends or changes sessions returns, no node answers
// the old state (every node is polled during and after the call, with the
// nodes' NOTIFY cut off so that only the plugin's confirmation can make it
// so); forged,
// tampered, expired and deleted answer null with the API's codes; sessiond
// down or slow answers null within the timeout and keeps the cookie.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHmac, randomBytes } from "node:crypto";
import pg from "pg";

import { sessiond, sessiondSessions, SESSIOND_UNCONFIRMED } from "../dist/better-auth.js";
import {
  PASSWORD,
  PRESET,
  SECRET,
  auth as makeAuth,
  cookieOf,
  createDatabase,
  migrate,
  sessiondCli,
  startCluster,
} from "./better-auth-harness.mjs";
import { closedPort } from "./harness.mjs";

let db;
let pool;
let nodes = [];
let auth;
let appKey;
/** One `getSession` per node. */
let perNode = [];

before(async () => {
  db = await createDatabase();
  pool = new pg.Pool({ connectionString: db.url, max: 8 });
  await migrate(pool);
  await sessiondCli(db.url, ["source", "install", ...PRESET]);
  appKey = await sessiondCli(db.url, ["appkey", "create", "--name", "better-auth-app", "--scope", "admin"]);
  nodes = await startCluster(db.url);
  auth = makeAuth(pool, [sessiond({ url: nodes[0].url, appKey })]);
  perNode = nodes.map((n) => sessiondSessions({ url: n.url, timeoutMs: 2000, onUnavailable: () => {} }));
});

after(async () => {
  resumeListeners();
  await Promise.all(nodes.map((n) => n.stop()));
  await pool?.end();
  await db?.drop();
});

let seq = 0;
/** Signs up a new user; its id and its email. */
async function signUp(role) {
  const email = `u${++seq}-${randomBytes(3).toString("hex")}@app.test`;
  const r = await auth.api.signUpEmail({ body: { email, password: PASSWORD, name: `User ${seq}` } });
  if (role !== undefined) await pool.query(`UPDATE "user" SET role = $1 WHERE id = $2`, [role, r.user.id]);
  return { id: r.user.id, email };
}

/** Signs in: the `Cookie` header the browser sends back, and the bearer token. */
async function signIn(email) {
  const res = await auth.api.signInEmail({ body: { email, password: PASSWORD }, asResponse: true });
  assert.equal(res.status, 200, await res.clone().text());
  return { cookie: cookieOf(res), bearer: res.headers.get("set-auth-token") };
}

const headersOf = (cookie) => new Headers({ cookie });

/** What each node answers for `cookie`. */
async function everyNode(cookie) {
  return Promise.all(perNode.map((s) => s.resolveSession(headersOf(cookie))));
}

/**
 * Polls every node for each of `cookies` until stopped; `check(returnedAt)`
 * runs `expect` on every answer to a request sent after the call returned,
 * plus one more round on every node.
 */
function watch(cookies) {
  const samples = [];
  let running = true;
  const loops = [];
  for (const cookie of cookies) {
    perNode.forEach((s, i) => {
      loops.push(
        (async () => {
          while (running) {
            const sentAt = performance.now();
            const r = await s.resolveSession(headersOf(cookie));
            samples.push({ cookie, node: nodes[i].name, sentAt, r });
          }
        })(),
      );
    });
  }
  return {
    /** Stops polling; asserts every answer sent after `returnedAt` passes `expect`. */
    async check(returnedAt, expect) {
      await new Promise((r) => setTimeout(r, 100));
      running = false;
      await Promise.all(loops);
      for (const cookie of cookies) {
        for (const [i, r] of (await everyNode(cookie)).entries()) {
          samples.push({ cookie, node: nodes[i].name, sentAt: performance.now(), r });
        }
      }
      const afterCall = samples.filter((s) => s.sentAt >= returnedAt);
      assert.ok(afterCall.length >= cookies.length * nodes.length, "every node was asked after the call");
      for (const s of afterCall) expect(s);
      return samples;
    },
  };
}

/** Runs `call` while watching `cookies`; every answer after it returned passes `expect`. */
async function afterCall(cookies, call, expect) {
  const w = watch(cookies);
  await new Promise((r) => setTimeout(r, 20));
  const result = await call();
  const returnedAt = performance.now();
  const samples = await w.check(returnedAt, expect);
  return { result, samples };
}

/** Signed out, as sessiond said it (not a node that failed to answer). */
const signedOut = (s) => {
  assert.equal(s.r.data, null, `${s.node} still answers the session after the call: ${JSON.stringify(s.r.data?.user)}`);
  assert.ok(["session_revoked", "invalid_token"].includes(s.r.error), `${s.node} answered ${s.r.error}`);
};

describe("getSession", () => {
  test("answers on every node what auth.api.getSession answers, for the cookie and for the bearer token", async () => {
    const u = await signUp();
    const { cookie, bearer } = await signIn(u.email);
    const expected = await auth.api.getSession({ headers: headersOf(cookie) });
    assert.ok(expected?.session, "Better Auth answers the session");
    for (const r of await everyNode(cookie)) {
      assert.equal(r.error, undefined, `error ${r.error}`);
      assert.deepEqual(r.data, JSON.parse(JSON.stringify(expected), reviveDates));
      assert.ok(r.data.session.expiresAt instanceof Date, "dates are Dates, as Better Auth's");
    }
    assert.ok(bearer, "the bearer plugin hands a token");
    for (const s of perNode) {
      const r = await s.getSession(new Headers({ authorization: `Bearer ${bearer}` }));
      assert.equal(r?.user.id, u.id);
      assert.equal(r?.session.token, expected.session.token);
    }
    // Other cookies of the request are not forwarded, nor needed.
    const r = await perNode[1].getSession(headersOf(`theme=dark; ${cookie}; other=1`));
    assert.equal(r?.user.email, u.email);
    // Without a credential: null, and no call.
    assert.equal(await perNode[0].getSession(headersOf("theme=dark")), null);
  });

  test("forged, tampered, expired and deleted answer null with the API's codes", async () => {
    const u = await signUp();
    const { cookie } = await signIn(u.email);
    const [name, value] = cookie.split("; ").find((c) => c.includes("session_token")).split("=");
    const signed = decodeURIComponent(value);
    const token = signed.slice(0, signed.lastIndexOf("."));
    const sig = signed.slice(signed.lastIndexOf(".") + 1);
    const tampered = `${name}=${encodeURIComponent(`${token}.${sig[0] === "A" ? "B" : "A"}${sig.slice(1)}`)}`;
    const forgedSig = createHmac("sha256", "not-the-app-secret-0123456789abcdef").update(token).digest("base64");
    const forged = `${name}=${encodeURIComponent(`${token}.${forgedSig}`)}`;
    const otherToken = randomBytes(24).toString("base64url").slice(0, 32);
    const unknownSig = createHmac("sha256", SECRET).update(otherToken).digest("base64");
    const unknown = `${name}=${encodeURIComponent(`${otherToken}.${unknownSig}`)}`;
    for (const r of await everyNode(tampered)) assert.deepEqual([r.data, r.error], [null, "invalid_token"]);
    for (const r of await everyNode(forged)) assert.deepEqual([r.data, r.error], [null, "invalid_token"]);
    for (const r of await everyNode(unknown)) assert.deepEqual([r.data, r.error], [null, "session_revoked"]);
    assert.equal(await auth.api.getSession({ headers: headersOf(tampered) }), null, "Better Auth agrees");

    // Expired (Better Auth's expiresAt passed), written by psql: seen on every node.
    for (const r of await everyNode(cookie)) assert.equal(r.data?.user.id, u.id);
    await pool.query(`UPDATE "session" SET "expiresAt" = now() - interval '1 second' WHERE token = $1`, [token]);
    await eventually(async () => {
      for (const r of await everyNode(cookie)) assert.deepEqual([r.data, r.error], [null, "session_revoked"]);
    });
    assert.equal(await auth.api.getSession({ headers: headersOf(cookie) }), null, "Better Auth agrees");

    // The user deleted in psql.
    const v = await signUp();
    const c2 = (await signIn(v.email)).cookie;
    for (const r of await everyNode(c2)) assert.equal(r.data?.user.id, v.id);
    await pool.query(`DELETE FROM "user" WHERE id = $1`, [v.id]);
    await eventually(async () => {
      for (const r of await everyNode(c2)) assert.deepEqual([r.data, r.error], [null, "session_revoked"]);
    });
  });

  test("a sliding refresh hands on the re-set cookie", async () => {
    const u = await signUp();
    const { cookie } = await signIn(u.email);
    const token = decodeURIComponent(cookie.split("; ").find((c) => c.includes("session_token")).split("=")[1]);
    // Due for a refresh as Better Auth counts it (expiresIn 7 d, updateAge 1 d).
    await pool.query(
      `UPDATE "session" SET "expiresAt" = now() + interval '5 days', "updatedAt" = now() - interval '2 days' WHERE token = $1`,
      [token.slice(0, token.lastIndexOf("."))],
    );
    const responseHeaders = new Headers();
    const data = await eventually(async () => {
      const r = await perNode[2].getSession(headersOf(cookie), { responseHeaders });
      assert.ok(r, "the session resolves");
      assert.ok(responseHeaders.getSetCookie().length > 0, "a Set-Cookie was handed on");
      return r;
    });
    const set = responseHeaders.getSetCookie().join("\n");
    assert.match(set, /better-auth\.session_token=/);
    assert.match(set, /Max-Age=604800/i);
    assert.ok(data.session.expiresAt.getTime() > Date.now() + 6.9 * 86400_000, "the expiry slid");
  });
});

/**
 * Stops (SIGSTOP) or resumes the database server processes holding the
 * nodes' LISTEN connections: with NOTIFY cut off, a node learns of a change
 * only from the lease's change log (within a lease), so only the plugin's
 * confirmation makes the call wait for every node.
 */
let stopped = [];
// However the run ends, no database server process is left stopped: a
// stopped backend would hold every later DROP DATABASE on this server.
process.on("exit", () => {
  for (const pid of stopped) {
    try {
      process.kill(pid, "SIGCONT");
    } catch {
      // already gone
    }
  }
});
async function stopListeners() {
  const { rows } = await pool.query(
    `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'sessiond-listen'`,
  );
  assert.equal(rows.length, nodes.length, "one listener per node");
  stopped = rows.map((r) => r.pid);
  for (const pid of stopped) process.kill(pid, "SIGSTOP");
}
function resumeListeners() {
  for (const pid of stopped) process.kill(pid, "SIGCONT");
  stopped = [];
}

describe("the plugin: no node answers the old state once the call returned (NOTIFY cut off)", () => {
  before(stopListeners);
  after(resumeListeners);
  test("signOut", async () => {
    const u = await signUp();
    const a = await signIn(u.email);
    const b = await signIn(u.email);
    await afterCall(
      [a.cookie],
      () => auth.api.signOut({ headers: headersOf(a.cookie) }),
      signedOut,
    );
    for (const r of await everyNode(b.cookie)) assert.equal(r.data?.user.id, u.id, "the other session stays");
  });

  test("revokeSession", async () => {
    const u = await signUp();
    const a = await signIn(u.email);
    const b = await signIn(u.email);
    const bToken = (await auth.api.getSession({ headers: headersOf(b.cookie) })).session.token;
    await afterCall(
      [b.cookie],
      () => auth.api.revokeSession({ headers: headersOf(a.cookie), body: { token: bToken } }),
      signedOut,
    );
    for (const r of await everyNode(a.cookie)) assert.equal(r.data?.user.id, u.id);
  });

  test("revokeOtherSessions", async () => {
    const u = await signUp();
    const a = await signIn(u.email);
    const b = await signIn(u.email);
    const c = await signIn(u.email);
    await afterCall(
      [b.cookie, c.cookie],
      () => auth.api.revokeOtherSessions({ headers: headersOf(a.cookie) }),
      signedOut,
    );
    for (const r of await everyNode(a.cookie)) assert.equal(r.data?.user.id, u.id);
  });

  test("revokeSessions", async () => {
    const u = await signUp();
    const a = await signIn(u.email);
    const b = await signIn(u.email);
    await afterCall(
      [a.cookie, b.cookie],
      () => auth.api.revokeSessions({ headers: headersOf(a.cookie) }),
      signedOut,
    );
  });

  test("changePassword with revokeOtherSessions", async () => {
    const u = await signUp();
    const a = await signIn(u.email);
    const b = await signIn(u.email);
    const { result } = await afterCall(
      [b.cookie],
      () =>
        auth.api.changePassword({
          headers: headersOf(a.cookie),
          body: { currentPassword: PASSWORD, newPassword: `${PASSWORD}-2`, revokeOtherSessions: true },
          asResponse: true,
        }),
      signedOut,
    );
    assert.equal(result.status, 200);
    for (const r of await everyNode(cookieOf(result))) assert.equal(r.data?.user.id, u.id, "the new session resolves");
  });

  test("admin setRole, banUser, unbanUser, removeUser", async () => {
    const boss = await signUp("admin");
    const bossCookie = (await signIn(boss.email)).cookie;
    const u = await signUp();
    const a = await signIn(u.email);
    for (const r of await everyNode(a.cookie)) assert.equal(r.data?.user.role, "user");

    await afterCall(
      [a.cookie],
      () => auth.api.setRole({ headers: headersOf(bossCookie), body: { userId: u.id, role: "editor" } }),
      (s) => assert.equal(s.r.data?.user.role, "editor", `${s.node}: ${s.r.error}`),
    );
    await afterCall(
      [a.cookie],
      () => auth.api.banUser({ headers: headersOf(bossCookie), body: { userId: u.id, banReason: "test" } }),
      signedOut,
    );
    await afterCall(
      [a.cookie],
      () => auth.api.unbanUser({ headers: headersOf(bossCookie), body: { userId: u.id } }),
      signedOut, // the ban deleted its sessions: they stay gone
    );
    const again = await signIn(u.email);
    for (const r of await everyNode(again.cookie)) {
      assert.equal(r.data?.user.banned, false, "unbanned on every node");
      assert.equal(r.data?.user.role, "editor");
    }
    await afterCall(
      [again.cookie],
      () => auth.api.removeUser({ headers: headersOf(bossCookie), body: { userId: u.id } }),
      signedOut,
    );
  });

  test("admin impersonateUser and stopImpersonating", async () => {
    const boss = await signUp("admin");
    const bossCookie = (await signIn(boss.email)).cookie;
    const u = await signUp();
    const res = await auth.api.impersonateUser({
      headers: headersOf(bossCookie),
      body: { userId: u.id },
      asResponse: true,
    });
    assert.equal(res.status, 200, await res.clone().text());
    // The browser's jar after the call: the impersonation session and the admin's, kept aside.
    const jar = new Map(bossCookie.split("; ").map((c) => c.split("=")));
    for (const c of res.headers.getSetCookie()) {
      const [nv, ...attrs] = c.split(";");
      const [n, v] = nv.split("=");
      if (v === "" || attrs.some((a) => /max-age=0/i.test(a.trim()))) jar.delete(n);
      else jar.set(n, v);
    }
    const impersonating = [...jar].map(([n, v]) => `${n}=${v}`).join("; ");
    for (const r of await everyNode(impersonating)) {
      assert.equal(r.data?.user.id, u.id, "every node answers the impersonated user at once");
      assert.equal(r.data?.session.impersonatedBy, boss.id);
    }
    const { result } = await afterCall(
      [impersonating],
      () => auth.api.stopImpersonating({ headers: headersOf(impersonating), asResponse: true }),
      signedOut,
    );
    assert.equal(result.status, 200, await result.clone().text());
    for (const r of await everyNode(bossCookie)) assert.equal(r.data?.user.id, boss.id, "the admin's session resolves");
  });

  test("a change sessiond cannot confirm fails the call (APIError 503)", async () => {
    const port = await closedPort();
    const unconfirmed = makeAuth(pool, [sessiond({ url: `http://127.0.0.1:${port}`, appKey, timeoutMs: 500 })]);
    const u = await signUp();
    const { cookie } = await signIn(u.email);
    await assert.rejects(
      unconfirmed.api.revokeSessions({ headers: headersOf(cookie) }),
      (e) => e?.statusCode === 503 && e?.body?.code === SESSIOND_UNCONFIRMED,
    );
    // Without the plugin's hook (the path is not one it confirms) the same instance works.
    assert.ok(await unconfirmed.api.getSession({ headers: headersOf((await signIn(u.email)).cookie) }));
  });
});

describe("outages and the cookie cache", () => {
  test("sessiond down or slow: null within the timeout, the cookie kept", async () => {
    const u = await signUp();
    const { cookie } = await signIn(u.email);
    const unavailable = [];
    const down = sessiondSessions({
      url: `http://127.0.0.1:${await closedPort()}`,
      timeoutMs: 300,
      onUnavailable: (e) => unavailable.push(e.code),
    });
    let t = performance.now();
    const r1 = await down.resolveSession(headersOf(cookie));
    assert.ok(performance.now() - t < 300, "answered at once");
    assert.deepEqual([r1.data, r1.unavailable, r1.setCookie], [null, true, []]);

    nodes[2].pause();
    try {
      const slow = sessiondSessions({ url: nodes[2].url, timeoutMs: 300, onUnavailable: (e) => unavailable.push(e.code) });
      const responseHeaders = new Headers();
      t = performance.now();
      const r2 = await slow.getSession(headersOf(cookie), { responseHeaders });
      const took = performance.now() - t;
      assert.equal(r2, null);
      assert.ok(took >= 290 && took < 800, `answered null after ${took.toFixed(0)} ms`);
      assert.deepEqual(responseHeaders.getSetCookie(), [], "nothing clears the cookie");
    } finally {
      nodes[2].resume();
    }
    assert.deepEqual(unavailable, ["network_error", "timeout"]);
    // The same cookie is still signed in, on every node.
    await eventually(async () => {
      for (const r of await everyNode(cookie)) assert.equal(r.data?.user.id, u.id);
    });
  });

  test("cookieCache: the plugin refuses it; Better Auth's cache would answer a revoked session", async () => {
    const refused = makeAuth(pool, [sessiond({ url: nodes[0].url, appKey })], {
      session: { cookieCache: { enabled: true, maxAge: 300 } },
    });
    await assert.rejects(refused.api.getSession({ headers: new Headers() }), /cookieCache/);

    const cached = makeAuth(pool, [sessiond({ url: nodes[0].url, appKey, allowCookieCache: true })], {
      session: { cookieCache: { enabled: true, maxAge: 300 } },
    });
    const u = await signUp();
    const res = await cached.api.signInEmail({ body: { email: u.email, password: PASSWORD }, asResponse: true });
    const cookie = cookieOf(res);
    assert.match(cookie, /session_data=/, "Better Auth set its cookie cache");
    await cached.api.revokeSessions({ headers: headersOf(cookie) });
    assert.ok(await cached.api.getSession({ headers: headersOf(cookie) }), "Better Auth's cookie cache still answers");
    for (const r of await everyNode(cookie)) assert.deepEqual([r.data, r.error], [null, "session_revoked"]);
  });
});

function reviveDates(key, value) {
  return typeof value === "string" && /(?:At|Expires)$/.test(key) && /^\d{4}-\d{2}-\d{2}T/.test(value)
    ? new Date(value)
    : value;
}

/** Retries `f` for up to 5 s (a change made in psql is not acknowledged). */
async function eventually(f) {
  const deadline = Date.now() + 5000;
  for (;;) {
    try {
      return await f();
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

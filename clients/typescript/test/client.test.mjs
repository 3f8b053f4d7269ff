// Every SessiondClient call against the real sessiond binary, and the
// transport's timeout, retry and error handling against loopback stand-ins.

import assert from "node:assert/strict";
import http from "node:http";
import { after, before, describe, test } from "node:test";

import { API_ERROR_CODES, SessiondClient, SessiondError, forwardedFor, isSessiondError } from "../dist/index.js";
import { ADMIN_EMAIL, ADMIN_PASSWORD, closedPort, startSessiond } from "./harness.mjs";

/** Asserts that `promise` rejects with a SessiondError of this code and status. */
async function rejectsWith(promise, code, status) {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof SessiondError, `not a SessiondError: ${e}`);
    assert.equal(e.code, code, e.message);
    assert.equal(e.status, status, e.message);
    assert.ok(e.message.length > 0);
    return true;
  });
}

describe("SessiondClient against sessiond", () => {
  let server;
  let client;
  let admin;

  before(async () => {
    server = await startSessiond();
    client = new SessiondClient({ baseUrl: server.url + "/" });
    admin = (await client.login(ADMIN_EMAIL, ADMIN_PASSWORD)).token;
  });

  after(async () => {
    await server?.stop();
  });

  let n = 0;
  /** A new user and a token of theirs. */
  async function userWithToken(role = "editor") {
    n += 1;
    const email = `user${n}@example.com`;
    const user = await client.createUser(admin, { email, password: "password-123", role });
    const login = await client.login(email, "password-123");
    return { user, token: login.token };
  }

  test("the client knows every error code the OpenAPI document lists, and no other", async () => {
    const res = await fetch(`${server.url}/openapi.json`);
    assert.equal(res.status, 200);
    const listed = (await res.json()).components?.schemas?.ErrorCode?.enum;
    assert.ok(Array.isArray(listed) && listed.length > 0, "the document lists no ErrorCode");
    // Answered for a fault of the service itself (a 500); the document
    // documents no 500 and leaves it out.
    const unlisted = ["internal"];
    for (const code of unlisted) assert.ok(!listed.includes(code), `${code} is listed now: drop it here`);
    assert.deepEqual([...API_ERROR_CODES].sort(), [...listed, ...unlisted].sort());
  });

  test("login answers a bearer token and the user", async () => {
    const r = await client.login(ADMIN_EMAIL, ADMIN_PASSWORD);
    assert.equal(r.token_type, "Bearer");
    assert.ok(r.token.split(".").length === 3);
    assert.ok(Date.parse(r.expires_at) > Date.now());
    assert.deepEqual(r.user, { id: r.user.id, email: ADMIN_EMAIL, role: "admin", status: "active" });
    await rejectsWith(client.login(ADMIN_EMAIL, "wrong-password"), "invalid_credentials", 401);
  });

  test("ids as the app spells them: a number, or a string in the path", async () => {
    const { user } = await userWithToken("viewer");
    assert.equal(typeof user.id, "number");
    // The same user named by its id's text.
    assert.deepEqual(await client.getUser(admin, String(user.id)), user);
    // Text ids (UUID, cuid, nanoid, Better Auth's 32 characters, one with
    // characters encodeURIComponent escapes) reach the route and name no
    // user of sessiond's own table.
    for (const id of [
      "550e8400-e29b-41d4-a716-446655440000",
      "clx3k9abc0000qzrmn1234567",
      "V1StGXR8_Z5jdHi6B-myT",
      "Zx9kQ2mN7pL4vR8sT1wY3uE6iO0aB5cD",
      "tenant:7@x+y=z",
    ]) {
      await rejectsWith(client.getUser(admin, id), "not_found", 404);
      await rejectsWith(client.setRole(admin, id, "viewer"), "not_found", 404);
    }
    // What is no id at all is a bad request.
    await rejectsWith(client.getUser(admin, "a b"), "bad_request", 400);
    await rejectsWith(client.getUser(admin, "x".repeat(129)), "bad_request", 400);
  });

  test("createUser, getUser, and their errors", async () => {
    const u = await client.createUser(admin, { email: "Carol@Example.com", password: "password-123", role: "viewer" });
    assert.deepEqual(u, { id: u.id, email: "carol@example.com", role: "viewer", status: "active" });
    assert.deepEqual(await client.getUser(admin, u.id), u);
    await rejectsWith(
      client.createUser(admin, { email: "carol@example.com", password: "password-123" }),
      "conflict",
      409,
    );
    await rejectsWith(client.createUser(admin, { email: "x@y.z", password: "short" }), "bad_request", 400);
    await rejectsWith(client.getUser(admin, 999_999), "not_found", 404);
    const { token } = await userWithToken("editor");
    await rejectsWith(client.getUser(token, u.id), "forbidden", 403);
  });

  test("getSession answers the user and how the cache answered", async () => {
    const { user, token } = await userWithToken("editor");
    const first = await client.getSession(token);
    assert.deepEqual(first.user, user);
    assert.ok(Date.parse(first.expires) > Date.now());
    assert.equal(typeof first.cache.hit, "boolean");
    assert.ok(first.cache.ttl_ms > 0);
    assert.equal(first.cache.node, "local");
    const second = await client.getSession(token);
    assert.equal(second.cache.hit, true);
  });

  test("refreshSession: a forced refresh reads the database, a plain one may not", async () => {
    const { user, token } = await userWithToken("editor");
    await client.getSession(token);
    const plain = await client.refreshSession(token);
    assert.equal(plain.cache.hit, true);
    const forced = await client.refreshSession(token, { force: true });
    assert.equal(forced.cache.hit, false);
    assert.deepEqual(forced.user, user);
  });

  test("a role change is seen at once", async () => {
    const { user, token } = await userWithToken("admin");
    assert.equal((await client.getSession(token)).user.role, "admin");
    assert.equal((await client.getSession(token)).cache.hit, true);
    const changed = await client.setRole(admin, user.id, "viewer");
    assert.equal(changed.role, "viewer");
    const after = await client.getSession(token);
    assert.equal(after.user.role, "viewer");
    assert.equal(after.cache.hit, false);
    // ... and the demoted admin lost admin rights on the very next call.
    await rejectsWith(client.getUser(token, user.id), "forbidden", 403);
    await rejectsWith(client.setRole(admin, user.id, "Not A Role"), "bad_request", 400);
  });

  test("logout revokes this token only", async () => {
    const { token } = await userWithToken();
    const other = await client.login(`user${n}@example.com`, "password-123");
    await client.getSession(token);
    assert.equal(await client.logout(token), undefined);
    await rejectsWith(client.getSession(token), "session_revoked", 401);
    await rejectsWith(client.refreshSession(token, { force: true }), "session_revoked", 401);
    await rejectsWith(client.logout(token), "session_revoked", 401);
    assert.equal((await client.getSession(other.token)).user.email, `user${n}@example.com`);
  });

  test("revokeSessions revokes every token issued until now", async () => {
    const { user, token } = await userWithToken();
    await client.getSession(token);
    assert.equal(await client.revokeSessions(admin, user.id), undefined);
    const revoked = await client.getSession(token).catch((e) => e);
    assert.ok(isSessiondError(revoked, "session_revoked"));
    assert.equal(revoked.signedOut, true);
    // A login after the revocation resolves (the watermark has a 1 ms grain).
    await new Promise((r) => setTimeout(r, 5));
    const again = await client.login(user.email, "password-123");
    assert.equal((await client.getSession(again.token)).user.id, user.id);
  });

  test("deactivate and activate", async () => {
    const { user, token } = await userWithToken();
    await client.getSession(token);
    const off = await client.deactivate(admin, user.id);
    assert.equal(off.status, "deactivated");
    await rejectsWith(client.getSession(token), "session_revoked", 401);
    await rejectsWith(client.login(user.email, "password-123"), "forbidden", 403);
    const on = await client.activate(admin, user.id);
    assert.equal(on.status, "active");
    // Tokens issued before the deactivation stay revoked; a new login works.
    await rejectsWith(client.getSession(token), "session_revoked", 401);
    const again = await client.login(user.email, "password-123");
    assert.equal((await client.getSession(again.token)).user.status, "active");
  });

  test("invalidate drops the cached record", async () => {
    const { user, token } = await userWithToken();
    await client.getSession(token);
    assert.equal((await client.getSession(token)).cache.hit, true);
    assert.equal(await client.invalidate(admin, user.id), undefined);
    assert.equal((await client.getSession(token)).cache.hit, false);
    await rejectsWith(client.invalidate(token, user.id), "forbidden", 403);
  });

  test("deleteUser revokes the user's tokens", async () => {
    const { user, token } = await userWithToken();
    await client.getSession(token);
    assert.equal(await client.deleteUser(admin, user.id), undefined);
    await rejectsWith(client.getSession(token), "session_revoked", 401);
    await rejectsWith(client.getUser(admin, user.id), "not_found", 404);
    await rejectsWith(client.deleteUser(admin, user.id), "not_found", 404);
  });

  test("past the failed-login limit, login is rate_limited with retryAfter", async () => {
    const { user } = await userWithToken();
    // sessiond's default: 10 failures per account within 15 minutes.
    for (let i = 0; i < 10; i++) {
      await rejectsWith(client.login(user.email, "wrong-password"), "invalid_credentials", 401);
    }
    const e = await client.login(user.email, "password-123").catch((e) => e);
    assert.ok(isSessiondError(e, "rate_limited"), String(e));
    assert.equal(e.status, 429);
    assert.ok(Number.isInteger(e.retryAfter) && e.retryAfter > 0 && e.retryAfter <= 15 * 60, `retryAfter ${e.retryAfter}`);
    assert.equal(e.unavailable, false);
    assert.equal(e.signedOut, false);
    // Other accounts are not affected.
    assert.equal((await client.login(ADMIN_EMAIL, ADMIN_PASSWORD)).user.role, "admin");
  });

  test("garbled and forged tokens are invalid_token", async () => {
    const { token } = await userWithToken();
    const [h, p, s] = token.split(".");
    const flipped = s.startsWith("A") ? "B" + s.slice(1) : "A" + s.slice(1);
    await rejectsWith(client.getSession(`${h}.${p}.${flipped}`), "invalid_token", 401);
    await rejectsWith(client.getSession("not-a-jwt"), "invalid_token", 401);
    // Not even sent: a value that cannot be a header.
    await rejectsWith(client.getSession("abc\r\nx-injected: 1"), "invalid_token", 401);
    await rejectsWith(client.getSession(""), "invalid_token", 401);
  });
});

/** A loopback HTTP server answering with `handler`; counts requests. */
async function standIn(handler) {
  const state = { requests: 0 };
  const server = http.createServer((req, res) => {
    state.requests += 1;
    handler(req, res);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    state,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections?.();
        server.close(r);
      }),
  };
}

/** A fetch that counts its calls. */
function countingFetch(impl = fetch) {
  const f = (...args) => {
    f.calls += 1;
    return impl(...args);
  };
  f.calls = 0;
  return f;
}

describe("SessiondClient transport", () => {
  test("a refused connection is retried a bounded number of times, even for createUser", async () => {
    const port = await closedPort();
    const f = countingFetch();
    const client = new SessiondClient({ baseUrl: `http://127.0.0.1:${port}`, retries: 2, retryDelayMs: 1, fetch: f });
    await rejectsWith(client.getSession("a.b.c"), "network_error", 0);
    assert.equal(f.calls, 3);
    f.calls = 0;
    await rejectsWith(client.createUser("a.b.c", { email: "a@b.c", password: "password-123" }), "network_error", 0);
    assert.equal(f.calls, 3, "a refused connection never reached the server");
  });

  test("an ambiguous network error is retried for idempotent calls only", async () => {
    const reset = Object.assign(new TypeError("fetch failed"), { cause: Object.assign(new Error("socket hang up"), { code: "ECONNRESET" }) });
    const f = countingFetch(async () => {
      throw reset;
    });
    const client = new SessiondClient({ baseUrl: "http://127.0.0.1:9", retries: 3, retryDelayMs: 1, fetch: f });
    await rejectsWith(client.setRole("a.b.c", 1, "viewer"), "network_error", 0);
    assert.equal(f.calls, 4);
    for (const call of [
      () => client.createUser("a.b.c", { email: "a@b.c", password: "password-123" }),
      () => client.deleteUser("a.b.c", 1),
      () => client.logout("a.b.c"),
    ]) {
      f.calls = 0;
      await rejectsWith(call(), "network_error", 0);
      assert.equal(f.calls, 1);
    }
  });

  test("a network error followed by an answer succeeds", async () => {
    let failures = 1;
    const f = countingFetch(async (...args) => {
      if (failures-- > 0) throw Object.assign(new TypeError("fetch failed"), { cause: { code: "ECONNRESET" } });
      return fetch(...args);
    });
    const s = await standIn((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ user: { id: 1, email: "a@b.c", role: "x", status: "active" }, expires: "", cache: {} }));
    });
    try {
      const client = new SessiondClient({ baseUrl: s.url, retryDelayMs: 1, fetch: f });
      assert.equal((await client.getSession("a.b.c")).user.id, 1);
      assert.equal(f.calls, 2);
    } finally {
      await s.close();
    }
  });

  test("an HTTP answer is never retried", async () => {
    const s = await standIn((_req, res) => {
      res.writeHead(503, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: "unavailable", message: "the database is down" }));
    });
    try {
      const client = new SessiondClient({ baseUrl: s.url, retries: 5, retryDelayMs: 1 });
      const e = await client.getSession("a.b.c").catch((e) => e);
      assert.ok(isSessiondError(e, "unavailable"));
      assert.equal(e.status, 503);
      assert.equal(e.message, "the database is down");
      assert.equal(e.unavailable, true);
      assert.equal(e.signedOut, false);
      assert.equal(s.state.requests, 1);
    } finally {
      await s.close();
    }
  });

  test("a slow server times out, without a retry", async () => {
    const s = await standIn(() => {
      /* never answers */
    });
    try {
      const client = new SessiondClient({ baseUrl: s.url, timeoutMs: 150, retries: 3, retryDelayMs: 1 });
      const started = Date.now();
      await rejectsWith(client.getSession("a.b.c"), "timeout", 0);
      assert.ok(Date.now() - started < 2000);
      assert.equal(s.state.requests, 1);
      await rejectsWith(client.getSession("a.b.c", { timeoutMs: 50 }), "timeout", 0);
    } finally {
      await s.close();
    }
  });

  test("the caller's signal cancels a call", async () => {
    const s = await standIn(() => {});
    try {
      const client = new SessiondClient({ baseUrl: s.url, timeoutMs: 5000 });
      const ac = new AbortController();
      setTimeout(() => ac.abort(), 50);
      await rejectsWith(client.getSession("a.b.c", { signal: ac.signal }), "aborted", 0);
    } finally {
      await s.close();
    }
  });

  test("an answer that is not sessiond's is unexpected_response", async () => {
    const s = await standIn((req, res) => {
      if (req.url === "/api/auth/session") {
        res.writeHead(502, { "content-type": "text/html" });
        res.end("<h1>Bad Gateway</h1>");
      } else {
        res.writeHead(200, { "content-type": "text/plain" });
        res.end("ok");
      }
    });
    try {
      const client = new SessiondClient({ baseUrl: s.url });
      await rejectsWith(client.getSession("a.b.c"), "unexpected_response", 502);
      await rejectsWith(client.login("a@b.c", "password-123"), "unexpected_response", 200);
    } finally {
      await s.close();
    }
  });

  test("login sends clientAddress as X-Forwarded-For, and nothing else does", async () => {
    const seen = [];
    const s = await standIn((req, res) => {
      seen.push([req.url, req.headers["x-forwarded-for"]]);
      res.writeHead(401, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: "invalid_credentials", message: "wrong email or password" }));
    });
    try {
      const client = new SessiondClient({ baseUrl: s.url });
      await rejectsWith(client.login("a@b.c", "x", { clientAddress: "203.0.113.7" }), "invalid_credentials", 401);
      await rejectsWith(client.login("a@b.c", "x", { clientAddress: "bogus, 198.51.100.1, [2001:db8::1]:443" }), "invalid_credentials", 401);
      await rejectsWith(client.login("a@b.c", "x", { clientAddress: "203.0.113.7\r\nx-evil: 1" }), "invalid_credentials", 401);
      await rejectsWith(client.login("a@b.c", "x"), "invalid_credentials", 401);
      await rejectsWith(client.getSession("a.b.c"), "invalid_credentials", 401);
      assert.deepEqual(seen, [
        ["/api/auth/login", "203.0.113.7"],
        ["/api/auth/login", "198.51.100.1, 2001:db8::1"],
        ["/api/auth/login", undefined],
        ["/api/auth/login", undefined],
        ["/api/auth/session", undefined],
      ]);
    } finally {
      await s.close();
    }
  });

  test("forwardedFor keeps the hops right of the right-most one that is not an address", () => {
    assert.equal(forwardedFor("203.0.113.7"), "203.0.113.7");
    assert.equal(forwardedFor(" 10.0.0.1 ,203.0.113.7 "), "10.0.0.1, 203.0.113.7");
    assert.equal(forwardedFor("::ffff:127.0.0.1"), "::ffff:127.0.0.1");
    assert.equal(forwardedFor("203.0.113.7:51234, [2001:db8::2]"), "203.0.113.7, 2001:db8::2");
    assert.equal(forwardedFor("1.1.1.1, unknown, 203.0.113.7"), "203.0.113.7");
    assert.equal(forwardedFor("203.0.113.7, <script>"), undefined);
    assert.equal(forwardedFor(""), undefined);
    assert.equal(forwardedFor(null), undefined);
    assert.equal(forwardedFor("1.1.1.1,".repeat(1000)), undefined, "an oversized header is not sent");
  });

  test("the base URL is checked", () => {
    assert.throws(() => new SessiondClient({ baseUrl: "127.0.0.1:8080" }), TypeError);
  });
});

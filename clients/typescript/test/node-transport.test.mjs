// The Better Auth module's own Node transport (pooled `node:net` sockets and
// a minimal HTTP/1.1 answer parser) against a scripted server: framings
// (Content-Length, chunked, until close, 1xx, 204), answers split anywhere,
// kept-alive and closed connections, timeouts, requests waiting past the
// connection limit, refused connections; and
// `sessiondSessions` on it: the request it writes, a kept-alive connection
// closed by sessiond retried once on a new one, Set-Cookie values handed on,
// answers that are not sessiond's.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";

import { NodeHttpPool, nodeHttpPool } from "../dist/node-transport.js";
import { sessiondSessions } from "../dist/better-auth.js";
import { closedPort } from "./harness.mjs";

/**
 * A server that answers each request with the next scripted step: the
 * pieces written one by one (a string as latin1 bytes, `null` ends the
 * connection, "DESTROY" resets it, nothing at all leaves it hanging).
 */
function scripted() {
  const steps = [];
  const requests = [];
  const sockets = new Set();
  let connections = 0;
  const server = net.createServer((s) => {
    connections++;
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => {});
    let buf = "";
    s.on("data", (d) => {
      buf += d.toString("latin1");
      for (let end = buf.indexOf("\r\n\r\n"); end >= 0; end = buf.indexOf("\r\n\r\n")) {
        requests.push(buf.slice(0, end));
        buf = buf.slice(end + 4);
        const step = steps.shift() ?? ["DESTROY"];
        let delay = 0;
        for (const piece of step) {
          setTimeout(() => {
            if (piece === null) s.end();
            else if (piece === "DESTROY") s.destroy();
            else if (!s.destroyed) s.write(typeof piece === "string" ? Buffer.from(piece, "latin1") : piece);
          }, (delay += 3));
        }
      }
    });
  });
  return {
    steps,
    requests,
    connections: () => connections,
    url: "",
    async listen() {
      await new Promise((r) => server.listen(0, "127.0.0.1", r));
      this.url = `http://127.0.0.1:${server.address().port}`;
      return this.url;
    },
    close() {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

const REQ = "GET /x HTTP/1.1\r\nHost: test\r\n\r\n";

describe("the pool and its answer parser", () => {
  const srv = scripted();
  let pool;
  before(async () => {
    pool = await nodeHttpPool(new URL(await srv.listen()));
  });
  after(() => srv.close());

  test("framings, answers split anywhere, kept-alive connections", async () => {
    srv.steps.push(["HTTP/1.1 200 OK\r\nContent-Len", "gth: 5\r\nSet-Cookie: a=1\r\nset-cookie: b=2; Path=/\r\n\r\nhel", "lo"]);
    let a = await pool.get(REQ, 1000);
    assert.deepEqual(a, { status: 200, body: "hello", setCookie: ["a=1", "b=2; Path=/"], retryAfter: null });

    srv.steps.push(["HTTP/1.1 401 Unauthorized\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", "2;x=y\r\n\xc3\xa9\r\n0\r\n", "T: 1\r\n\r\n"]);
    a = await pool.get(REQ, 1000);
    assert.deepEqual([a.status, a.body], [401, "abcé"]);

    srv.steps.push(["HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 429 Too Many\r\nRetry-After: 7\r\nContent-Length: 2\r\n\r\n{}"]);
    a = await pool.get(REQ, 1000);
    assert.deepEqual([a.status, a.body, a.retryAfter], [429, "{}", "7"]);

    // A character split between two reads.
    const euro = Buffer.from("€");
    srv.steps.push([Buffer.concat([Buffer.from("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"), euro.subarray(0, 1)]), euro.subarray(1)]);
    assert.equal((await pool.get(REQ, 1000)).body, "€");

    srv.steps.push(["HTTP/1.1 204 No Content\r\n\r\n"]);
    assert.deepEqual([(await pool.get(REQ, 1000)).status], [204]);
    assert.equal(srv.connections(), 1, "every answer came on one kept-alive connection");

    srv.steps.push(["HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx"]);
    assert.equal((await pool.get(REQ, 1000)).body, "x");
    srv.steps.push(["HTTP/1.0 200 OK\r\n\r\nuntil", " close", null]);
    assert.equal((await pool.get(REQ, 1000)).body, "until close");
    srv.steps.push(["HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]);
    assert.equal((await pool.get(REQ, 1000)).body, "ok");
    assert.equal(srv.connections(), 3, "Connection: close and HTTP/1.0 were not reused");
  });

  test("a connection reset before the answer, a foreign answer, a timeout", async () => {
    srv.steps.push(["DESTROY"]);
    await assert.rejects(pool.get(REQ, 1000), (e) => ["ECONNRESET", "EPIPE"].includes(e.code));
    srv.steps.push(["FOO/1.1 200\r\n\r\n"]);
    await assert.rejects(pool.get(REQ, 1000), (e) => e.code === "HPE_INVALID_ANSWER");
    srv.steps.push(["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"]);
    await assert.rejects(pool.get(REQ, 1000), (e) => e.code === "HPE_INVALID_ANSWER");
    srv.steps.push([]);
    const t = performance.now();
    await assert.rejects(pool.get(REQ, 200), (e) => e.code === "timeout");
    assert.ok(performance.now() - t >= 195);
    srv.steps.push(["HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]);
    assert.equal((await pool.get(REQ, 1000)).body, "ok", "the pool still answers");
  });

  test("concurrent requests, each its own answer", async () => {
    for (let i = 0; i < 40; i++) srv.steps.push([`HTTP/1.1 200 OK\r\nContent-Length: ${String(i).length}\r\n\r\n${i}`]);
    const got = await Promise.all(Array.from({ length: 40 }, () => pool.get(REQ, 1000)));
    assert.deepEqual(
      got.map((a) => a.body).sort(),
      Array.from({ length: 40 }, (_, i) => String(i)).sort(),
    );
  });

  test("past maxSockets requests wait for a connection, their wait counted in their timeout", async () => {
    const small = new NodeHttpPool(net, Buffer, "127.0.0.1", Number(new URL(srv.url).port), 2);
    const before = srv.connections();
    for (let i = 0; i < 6; i++) srv.steps.push([`HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n${i}`]);
    const got = await Promise.all(Array.from({ length: 6 }, () => small.get(REQ, 1000)));
    assert.deepEqual(got.map((a) => a.body).sort(), ["0", "1", "2", "3", "4", "5"]);
    assert.equal(srv.connections() - before, 2, "two connections carried the six");
    // Both connections held by answers that do not come: the third waits and times out.
    srv.steps.push([], []);
    const held = [small.get(REQ, 300), small.get(REQ, 300)];
    const t = performance.now();
    await assert.rejects(small.get(REQ, 100), (e) => e.code === "timeout");
    assert.ok(performance.now() - t < 290, "the waiting request timed out on its own timer");
    for (const h of held) await assert.rejects(h, (e) => e.code === "timeout");
    srv.steps.push(["HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]);
    assert.equal((await small.get(REQ, 1000)).body, "ok", "connections are opened again after the timeouts");
  });

  test("a refused connection fails at once", async () => {
    const refused = await nodeHttpPool(new URL(`http://127.0.0.1:${await closedPort()}`));
    await assert.rejects(refused.get(REQ, 1000), (e) => e.code === "ECONNREFUSED");
  });
});

describe("sessiondSessions on the pool", () => {
  const srv = scripted();
  let url;
  const body = JSON.stringify({
    session: { id: "s1", token: "t1", userId: "u1", expiresAt: "2030-01-01T00:00:00.000Z" },
    user: { id: "u1", email: "u1@app.test", banExpires: null, createdAt: "2026-01-01T00:00:00Z" },
  });
  const ok = (extra = "") => [`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n${extra}content-length: ${body.length}\r\n\r\n${body}`];
  before(async () => {
    url = await srv.listen();
  });
  after(() => srv.close());

  test("writes the credential alone, under the URL's path; answers Dates and the Set-Cookie values", async () => {
    const unavailable = [];
    const s = sessiondSessions({ url: `${url}/prefix/`, onUnavailable: (e) => unavailable.push(e.code) });
    srv.steps.push(ok("set-cookie: better-auth.session_token=new; Max-Age=604800\r\nSet-Cookie: other=1\r\n"));
    const responseHeaders = new Headers();
    const r = await s.getSession(new Headers({ cookie: "theme=dark; better-auth.session_token=abc.def; x=1" }), { responseHeaders });
    assert.equal(r.user.id, "u1");
    assert.ok(r.session.expiresAt instanceof Date && r.user.createdAt instanceof Date);
    assert.equal(r.user.banExpires, null);
    assert.deepEqual(responseHeaders.getSetCookie(), ["better-auth.session_token=new; Max-Age=604800", "other=1"]);
    const [line, ...headers] = srv.requests.at(-1).split("\r\n");
    assert.equal(line, "GET /prefix/api/better-auth/get-session HTTP/1.1");
    assert.deepEqual(headers.map((h) => h.split(":")[0].toLowerCase()).sort(), ["accept", "cookie", "host"]);
    assert.ok(headers.includes("Cookie: better-auth.session_token=abc.def"));

    srv.steps.push(ok());
    await s.getSession(new Headers({ authorization: "Bearer tok.sig" }));
    assert.ok(srv.requests.at(-1).split("\r\n").includes("Authorization: Bearer tok.sig"));
    assert.deepEqual(unavailable, []);
  });

  test("a kept-alive connection closed by sessiond: retried once, at once, on a new one", async () => {
    const unavailable = [];
    const s = sessiondSessions({ url, onUnavailable: (e) => unavailable.push(e.code) });
    const h = new Headers({ cookie: "better-auth.session_token=abc.def" });
    srv.steps.push(ok());
    assert.ok(await s.getSession(h));
    const before = srv.connections();
    srv.steps.push(["DESTROY"], ok());
    assert.ok(await s.getSession(h), "answered on a new connection");
    assert.equal(srv.connections(), before + 1);
    srv.steps.push(["DESTROY"], ["DESTROY"]);
    const r = await s.resolveSession(h);
    assert.deepEqual([r.data, r.error, r.unavailable], [null, "network_error", true]);
    assert.deepEqual(unavailable, ["network_error"]);
  });

  test("sessiond's errors and foreign answers", async () => {
    const unavailable = [];
    const s = sessiondSessions({ url, onUnavailable: (e) => unavailable.push(e.code) });
    const h = new Headers({ cookie: "better-auth.session_token=abc.def" });
    const answer = (status, text) => [`HTTP/1.1 ${status} X\r\ncontent-length: ${Buffer.byteLength(text)}\r\n\r\n${text}`];
    srv.steps.push(answer(401, '{"error":"session_revoked","message":"signed out"}'));
    assert.deepEqual(await s.resolveSession(h), { data: null, setCookie: [], error: "session_revoked" });
    srv.steps.push(answer(401, '{"error":"invalid_token","message":"bad"}'));
    assert.equal((await s.resolveSession(h)).error, "invalid_token");
    srv.steps.push(answer(503, '{"error":"unavailable","message":"db down"}'));
    assert.deepEqual(await s.resolveSession(h), { data: null, setCookie: [], error: "unavailable", unavailable: true });
    srv.steps.push(answer(200, "<html>"));
    assert.equal((await s.resolveSession(h)).error, "unexpected_response");
    srv.steps.push(answer(200, '{"session":null}'));
    assert.equal((await s.resolveSession(h)).error, "unexpected_response");
    srv.steps.push(answer(502, "Bad Gateway"));
    assert.equal((await s.resolveSession(h)).error, "unexpected_response");
    assert.deepEqual(unavailable, ["unavailable", "unexpected_response", "unexpected_response", "unexpected_response"]);
  });

  test("with a fetch of the caller's: that fetch, and the same answers", async () => {
    let calls = 0;
    const s = sessiondSessions({
      url,
      fetch: (input, init) => {
        calls++;
        return fetch(input, init);
      },
    });
    srv.steps.push(ok("set-cookie: a=1\r\n"));
    const responseHeaders = new Headers();
    const r = await s.getSession(new Headers({ cookie: "better-auth.session_token=abc.def" }), { responseHeaders });
    assert.equal(calls, 1);
    assert.ok(r.session.expiresAt instanceof Date);
    assert.deepEqual(responseHeaders.getSetCookie(), ["a=1"]);
  });
});

// A route that needs the session, served by one Node HTTP server three ways,
// measured side by side with wrk in alternate rounds:
//   /db        Better Auth's auth.api.getSession, from PostgreSQL
//   /cache     Better Auth's auth.api.getSession with session.cookieCache on
//   /sessiond  @sessiond/client/better-auth's getSession, answered by sessiond
//
//   npm run build && node bench/better-auth.mjs [--rounds 3] [--duration 10]
//
// Needs PostgreSQL (SESSIOND_TEST_POSTGRES_URL, default the local `test`
// database's server), wrk, and a release sessiond (SESSIOND_BIN, default
// target/release/sessiond: `cargo build --release --bin sessiond`).

import { execFile, fork } from "node:child_process";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";

const here = path.dirname(fileURLToPath(import.meta.url));

if (process.argv[2] === "serve") {
  await serve(JSON.parse(process.argv[3]));
} else {
  await main();
}

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

/** The app: one Node HTTP server, three routes. */
async function serve({ databaseUrl, sessiondUrl }) {
  const { auth } = await import("../test/better-auth-harness.mjs");
  const { sessiondSessions } = await import("../dist/better-auth.js");
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 16 });
  const fromDb = auth(pool);
  const cached = auth(pool, [], { session: { cookieCache: { enabled: true, maxAge: 300 } } });
  const { getSession } = sessiondSessions({ url: sessiondUrl, timeoutMs: 1000 });
  const routes = {
    "/db": (h) => fromDb.api.getSession({ headers: h }),
    "/cache": (h) => cached.api.getSession({ headers: h }),
    "/sessiond": (h) => getSession(h),
  };
  const server = http.createServer(async (req, res) => {
    const route = routes[req.url ?? ""];
    if (route === undefined) {
      res.writeHead(404).end();
      return;
    }
    try {
      const headers = new Headers();
      if (req.headers.cookie) headers.set("cookie", req.headers.cookie);
      const s = await route(headers);
      if (!s) {
        res.writeHead(401).end();
        return;
      }
      const body = JSON.stringify({ user: s.user.id, role: s.user.role });
      res.writeHead(200, { "content-type": "application/json" }).end(body);
    } catch {
      res.writeHead(500).end();
    }
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, "127.0.0.1", () => process.send?.({ port: server.address().port }));
}

function run(cmd, args, env) {
  return new Promise((resolve, reject) =>
    execFile(cmd, args, { env: { ...process.env, ...env }, maxBuffer: 1 << 20 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${cmd} ${args.join(" ")}: ${err.message}\n${stderr}`)) : resolve(stdout),
    ),
  );
}

/** wrk's requests/s and latency percentiles (ms). */
function parseWrk(out) {
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const pct = {};
  for (const m of out.matchAll(/^\s+(50|90|99)%\s+([\d.]+)(us|ms|s)\s*$/gm)) {
    const v = Number(m[2]);
    pct[m[1]] = m[3] === "us" ? v / 1000 : m[3] === "s" ? v * 1000 : v;
  }
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  return { rps, p50: pct["50"], p90: pct["90"], p99: pct["99"], non2xx };
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function main() {
  const rounds = arg("rounds", 3);
  const duration = arg("duration", 10);
  process.env.SESSIOND_BIN ??= path.resolve(here, "..", "..", "..", "target", "release", "sessiond");
  const h = await import("../test/better-auth-harness.mjs");
  const db = await h.createDatabase("ba_bench");
  const pool = new pg.Pool({ connectionString: db.url });
  let nodes = [];
  let app;
  try {
    await h.migrate(pool);
    await h.sessiondCli(db.url, ["source", "install", ...h.PRESET]);
    nodes = [await h.startNode(db.url, "bench")];
    const auth = h.auth(pool);
    const cached = h.auth(pool, [], { session: { cookieCache: { enabled: true, maxAge: 300 } } });
    // Some users with sessions, as a table in use has; the benchmark's own last.
    for (let i = 0; i < 200; i++) {
      await auth.api.signUpEmail({ body: { email: `b${i}@bench.test`, password: h.PASSWORD, name: `B ${i}` } });
    }
    const res = await cached.api.signInEmail({
      body: { email: "b0@bench.test", password: h.PASSWORD },
      asResponse: true,
    });
    const cookie = h.cookieOf(res);

    app = fork(fileURLToPath(import.meta.url), [
      "serve",
      JSON.stringify({ databaseUrl: db.url, sessiondUrl: nodes[0].url }),
    ]);
    const port = await new Promise((resolve, reject) => {
      app.once("message", (m) => resolve(m.port));
      app.once("exit", (c) => reject(new Error(`the app exited (${c})`)));
    });
    const base = `http://127.0.0.1:${port}`;
    for (const route of ["/db", "/cache", "/sessiond"]) {
      const r = await fetch(base + route, { headers: { cookie } });
      if (r.status !== 200) throw new Error(`${route} answered ${r.status}`);
      await run("wrk", ["-t2", "-c32", "-d2s", "-H", `Cookie: ${cookie}`, base + route]); // warm-up
    }
    const results = { "/db": [], "/cache": [], "/sessiond": [] };
    const order = ["/db", "/cache", "/sessiond"];
    for (let round = 0; round < rounds; round++) {
      // Alternate: each round starts with the next route.
      const these = order.slice(round % 3).concat(order.slice(0, round % 3));
      for (const route of these) {
        const out = await run("wrk", ["-t2", "-c32", `-d${duration}s`, "--latency", "-H", `Cookie: ${cookie}`, base + route]);
        const r = parseWrk(out);
        if (r.non2xx > 0) throw new Error(`${route}: ${r.non2xx} answers were not 200`);
        results[route].push(r);
        console.error(`round ${round + 1} ${route}: ${r.rps.toFixed(0)} req/s, p50 ${r.p50} ms, p99 ${r.p99} ms`);
      }
    }
    const summary = {};
    for (const route of order) {
      summary[route] = {
        rps: median(results[route].map((r) => r.rps)),
        p50: median(results[route].map((r) => r.p50)),
        p99: median(results[route].map((r) => r.p99)),
      };
    }
    const s = summary["/sessiond"];
    console.log(`| path | req/s (median of ${rounds}) | p50 ms | p99 ms |`);
    console.log("|---|---:|---:|---:|");
    const names = {
      "/db": "Better Auth getSession, from PostgreSQL",
      "/cache": "Better Auth getSession, cookieCache on",
      "/sessiond": "@sessiond/client/better-auth getSession",
    };
    for (const route of order) {
      const r = summary[route];
      console.log(`| ${names[route]} | ${r.rps.toFixed(0)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} |`);
    }
    console.log(
      `\nsessiond / DB path: ${(s.rps / summary["/db"].rps).toFixed(2)}x; sessiond / cookie cache: ${(
        s.rps / summary["/cache"].rps
      ).toFixed(2)}x; p99 sessiond - cookie cache: ${(s.p99 - summary["/cache"].p99).toFixed(2)} ms`,
    );
  } finally {
    app?.kill("SIGTERM");
    await Promise.all(nodes.map((n) => n.stop()));
    await pool.end();
    await db.drop();
  }
}

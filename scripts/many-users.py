#!/usr/bin/env python3
"""Cached session lookups over many distinct warm users against one user's,
over HTTP, side by side in one run.

usage: scripts/many-users.py BINARY [USERS] [ROUNDS] [SECS]

Starts BINARY (`serve`, SQLite in a temporary directory, cache on with a
TTL longer than the run, RUST_LOG=warn), inserts USERS users (default
100,000) into its users table in one transaction (no password hashing:
nobody logs in with them), makes an app key with the `mint` scope
(`sessiond appkey create`) and mints each user's token through
`POST /api/sessions`, then resolves every token twice (the second answer
must be a cache hit). Then ROUNDS rounds (default 6) of SECS seconds
(default 5) of `wrk -t2 -c32 --latency`, the order of the figures rotated
every round:

- `GET /healthz`;
- a cached `GET /api/auth/session`, each request the next of the USERS tokens;
- the same with one user's token only.

Prints each round, then the medians, many users ÷ one (the median of the
rounds' ratios), cached session ÷ `/healthz` and p99 of the many-users
lookups ÷ p99 of `/healthz`. Checks afterwards that the lookups were cache
hits (`/api/perf`), so a figure is never a database read's.
"""
import os, sqlite3, statistics, subprocess, sys, tempfile, threading, time
from concurrent.futures import ThreadPoolExecutor

import wrkrun
from wrkrun import Conn, write_lua

binary = os.path.abspath(sys.argv[1])
users = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 6
secs = int(sys.argv[4]) if len(sys.argv) > 4 else 5
threads, conns = os.environ.get("WRK_THREADS", "2"), os.environ.get("WRK_CONNECTIONS", "32")
admin_password = "admin-password-1"
secret = "many-users-secret-0123456789-abcdefghijklmno"
work = tempfile.mkdtemp(prefix="many-users-")
db_path = os.path.join(work, "s.db")
database_url = f"sqlite://{db_path}"

lua = write_lua(work)

env = dict(os.environ, SESSIOND_ADMIN_PASSWORD=admin_password, SESSIOND_JWT_SECRET=secret,
           RUST_LOG="warn")


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def wrk(addr, path, tokens):
    return wrkrun.wrk(addr, path, tokens, lua, threads, conns, secs)


proc = None
try:
    print(f"# cached session over {users:,} users against one user: {binary}\n")
    print(f"command: `scripts/many-users.py {' '.join(sys.argv[1:])}`; wrk -t{threads} -c{conns} --latency, "
          f"{rounds} rounds of {secs} s per figure, order rotating; SQLite, cache on; "
          f"{os.cpu_count()} cores; load average at start {loadavg()}\n", flush=True)
    proc = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--database-url", database_url,
         "--cache-ttl", "1h"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    first = proc.stdout.readline()
    addr = first.strip().rsplit("http://", 1)[1].rstrip("/")
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()

    started = time.time()
    now_ms = int(time.time() * 1000)
    with sqlite3.connect(db_path, timeout=60) as db:
        hash_ = db.execute("SELECT password_hash FROM users WHERE email = 'admin@localhost'").fetchone()[0]
        first_id = db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM users").fetchone()[0]
        db.executemany(
            "INSERT INTO users (email, password_hash, role, status, created_at, updated_at) "
            "VALUES (?, ?, 'user', 'active', ?, ?)",
            ((f"many{i}@example.test", hash_, now_ms, now_ms) for i in range(users)))
    ids = list(range(first_id, first_id + users))
    key = subprocess.run([binary, "appkey", "create", "--name", "many-users", "--scope", "mint",
                          "--database-url", database_url],
                         env=env, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    print(f"{users:,} users inserted and an app key made in {time.time() - started:.1f} s", flush=True)

    def mint(chunk):
        c = Conn(addr)
        out = []
        for i in chunk:
            status, body = c.call("POST", "/api/sessions", key, {"user_id": i})
            assert status == 200, (status, body)
            out.append(body["token"])
        return out

    def warm(chunk):
        c = Conn(addr)
        for attempt in range(2):
            for t in chunk:
                status, body = c.call("GET", "/api/auth/session", t)
                assert status == 200, (status, body)
                if attempt == 1:
                    assert body["cache"]["hit"] is True, body

    started = time.time()
    parts = 4
    chunks = [ids[p::parts] for p in range(parts)]
    with ThreadPoolExecutor(parts) as pool:
        tokens = [t for chunk in pool.map(mint, chunks) for t in chunk]
    print(f"{len(tokens):,} tokens minted in {time.time() - started:.1f} s", flush=True)
    started = time.time()
    with ThreadPoolExecutor(parts) as pool:
        list(pool.map(warm, [tokens[p::parts] for p in range(parts)]))
    print(f"every token resolved twice (the second a cache hit) in {time.time() - started:.1f} s\n", flush=True)
    all_file, one_file = os.path.join(work, "all.tokens"), os.path.join(work, "one.token")
    with open(all_file, "w") as f:
        f.write("\n".join(tokens) + "\n")
    with open(one_file, "w") as f:
        f.write(tokens[0] + "\n")

    perf_before = Conn(addr).call("GET", "/api/perf")[1]
    figures = [("healthz", "/healthz", None), ("many users", "/api/auth/session", all_file),
               ("one user", "/api/auth/session", one_file)]
    results = {name: [] for name, _, _ in figures}
    print("| round | healthz req/s | many users req/s | one user req/s | many ÷ one | p99 ms healthz / many / one |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in range(rounds):
        order = figures[r % 3:] + figures[:r % 3]
        got = {}
        for name, path, tok in order:
            got[name] = wrk(addr, path, tok)
            results[name].append(got[name])
        h, m, o = got["healthz"], got["many users"], got["one user"]
        print(f"| {r + 1} | {h[0]:.0f} | {m[0]:.0f} | {o[0]:.0f} | {m[0] / o[0]:.2f} | "
              f"{h[1]:.2f} / {m[1]:.2f} / {o[1]:.2f} |", flush=True)
    perf_after = Conn(addr).call("GET", "/api/perf")[1]

    def med(name, i):
        return statistics.median(x[i] for x in results[name])

    many_one = statistics.median(m[0] / o[0] for m, o in zip(results["many users"], results["one user"]))
    errors = sum(x[2] for v in results.values() for x in v)
    print(f"\nmedians: healthz {med('healthz', 0):.0f} req/s, {users:,} users {med('many users', 0):.0f}, "
          f"one user {med('one user', 0):.0f}; p99 {med('healthz', 1):.2f} / {med('many users', 1):.2f} / "
          f"{med('one user', 1):.2f} ms; errors {errors}")
    print(f"\n{users:,} users ÷ one (median of the rounds' ratios): **{many_one:.2f}×**; "
          f"many users ÷ /healthz {med('many users', 0) / med('healthz', 0):.2f}; "
          f"p99 many users ÷ /healthz {med('many users', 1) / med('healthz', 1):.2f}")

    misses = perf_after["misses"] - perf_before["misses"]
    hits = perf_after["hits"] - perf_before["hits"]
    print(f"\nduring the rounds: {hits:,} cache hits, {misses:,} misses")
    if misses:
        raise SystemExit(f"{misses} lookups missed the cache: the figures are not of cached lookups")
    print(f"load average at the end: {loadavg()}")
finally:
    if proc is not None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()

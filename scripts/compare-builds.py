#!/usr/bin/env python3
"""Two sessiond binaries side by side under wrk, in alternating rounds.

usage: scripts/compare-builds.py EARLIER THIS [ROUNDS] [SECS] [USERS]

Starts both binaries (`serve`, SQLite in a temporary directory each, cache
on, RUST_LOG=warn), creates USERS users (default 200) on each through the
admin API and logs each in, warms every token twice (the second answer must
be a cache hit). Then ROUNDS rounds (default 6) of SECS seconds (default 5)
of `wrk -t2 -c32 --latency` for each figure, the two builds' order swapped
every round so the machine's noise hits both alike:

- `GET /healthz`;
- a cached `GET /api/auth/session`, rotating through every user's token;
- the same with one user's token only.

Prints each round, then the medians and the ratios: this ÷ earlier for
each figure, cached session ÷ /healthz, many users ÷ one user, and p99 of a
cached session ÷ p99 of /healthz (medians of the rounds' p99s). The load
generator runs on the same cores as the servers: quote ratios, not the
absolute figures. `scripts/compare-builds.sh <commit>` builds an earlier
commit and this tree and runs this.
"""
import os, statistics, subprocess, sys, tempfile, threading, time
from concurrent.futures import ThreadPoolExecutor

import wrkrun
from wrkrun import Conn, write_lua

earlier_bin, this_bin = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 6
secs = int(sys.argv[4]) if len(sys.argv) > 4 else 5
users = int(sys.argv[5]) if len(sys.argv) > 5 else 200
threads, conns = os.environ.get("WRK_THREADS", "2"), os.environ.get("WRK_CONNECTIONS", "32")
admin_password = "admin-password-1"
secret = "compare-builds-secret-0123456789-abcdefghijkl"
work = tempfile.mkdtemp(prefix="compare-builds-")

lua = write_lua(work)


class Server:
    def __init__(self, name, binary):
        self.name = name
        db = os.path.join(work, name)
        os.makedirs(db)
        env = dict(os.environ, SESSIOND_ADMIN_PASSWORD=admin_password,
                   SESSIOND_JWT_SECRET=secret, RUST_LOG="warn")
        self.proc = subprocess.Popen(
            [binary, "serve", "--listen", "127.0.0.1:0", "--database-url", f"sqlite://{db}/s.db",
             "--cache-ttl", "5m"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        first = self.proc.stdout.readline()
        self.addr = first.strip().rsplit("http://", 1)[1].rstrip("/")
        # Keep reading stdout so the server never blocks on a full pipe.
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()

    def call(self, method, path, token=None, body=None):
        conn = Conn(self.addr)
        try:
            return conn.call(method, path, token, body)
        finally:
            conn.close()

    def setup(self):
        status, body = self.call("POST", "/api/auth/login", body={"email": "admin@localhost", "password": admin_password})
        assert status == 200, (self.name, status, body)
        admin = body["token"]

        def one(i):
            email, password = f"bench{i}@example.test", f"bench-password-{i}"
            status, body = self.call("POST", "/api/admin/users", admin, {"email": email, "password": password, "role": "user"})
            assert status in (201, 409), (status, body)
            status, body = self.call("POST", "/api/auth/login", body={"email": email, "password": password})
            assert status == 200, (status, body)
            return body["token"]

        with ThreadPoolExecutor(4) as pool:
            self.tokens = list(pool.map(one, range(users)))
        for attempt in range(2):
            for t in self.tokens:
                status, body = self.call("GET", "/api/auth/session", t)
                assert status == 200, (status, body)
                if attempt == 1:
                    assert body["cache"]["hit"] is True, body
        self.all_file = os.path.join(work, f"{self.name}.tokens")
        self.one_file = os.path.join(work, f"{self.name}.one")
        with open(self.all_file, "w") as f:
            f.write("\n".join(self.tokens) + "\n")
        with open(self.one_file, "w") as f:
            f.write(self.tokens[0] + "\n")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def wrk(server, path, tokens):
    return wrkrun.wrk(server.addr, path, tokens, lua, threads, conns, secs)


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


servers = []
try:
    print(f"# {os.path.basename(this_bin)} (this) against {earlier_bin} (earlier)\n")
    print(f"command: `scripts/compare-builds.py {' '.join(sys.argv[1:])}`; "
          f"wrk -t{threads} -c{conns} --latency, {rounds} rounds of {secs} s per figure, order alternating; "
          f"SQLite, cache on, {users} users; {os.cpu_count()} cores; load average at start {loadavg()}\n")
    servers = [Server("earlier", earlier_bin), Server("this", this_bin)]
    for s in servers:
        s.setup()
    figures = [("healthz", "/healthz", lambda s: None),
               ("session", "/api/auth/session", lambda s: s.all_file),
               ("one user", "/api/auth/session", lambda s: s.one_file)]
    results = {(s.name, f[0]): [] for s in servers for f in figures}
    print("| round | figure | earlier req/s | this req/s | this ÷ earlier | p99 ms earlier / this |")
    print("|---:|---|---:|---:|---:|---:|")
    for r in range(rounds):
        order = servers if r % 2 == 0 else servers[::-1]
        for name, path, tokens in figures:
            got = {}
            for s in order:
                got[s.name] = wrk(s, path, tokens(s))
                results[(s.name, name)].append(got[s.name])
            e, t = got["earlier"], got["this"]
            print(f"| {r + 1} | {name} | {e[0]:.0f} | {t[0]:.0f} | {t[0] / e[0]:.2f} | {e[1]:.2f} / {t[1]:.2f} |", flush=True)

    def med(build, name, i):
        return statistics.median(x[i] for x in results[(build, name)])

    print("\nmedians of the rounds:\n")
    print(f"| build | healthz req/s | session req/s | one user req/s | session ÷ healthz | {users} users ÷ one | p99 ms healthz / session | p99 session ÷ healthz | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s in servers:
        h, se, one = (med(s.name, n, 0) for n in ("healthz", "session", "one user"))
        hp, sp = med(s.name, "healthz", 1), med(s.name, "session", 1)
        errors = sum(x[2] for n in ("healthz", "session", "one user") for x in results[(s.name, n)])
        print(f"| {s.name} | {h:.0f} | {se:.0f} | {one:.0f} | {se / h:.2f} | {se / one:.2f} | {hp:.2f} / {sp:.2f} | {sp / hp:.2f} | {errors} |")
    # Per round, then the median: both builds of a round saw the same noise.
    ratios = {n: statistics.median(t[0] / e[0] for e, t in zip(results[("earlier", n)], results[("this", n)]))
              for n in ("healthz", "session", "one user")}
    print(f"\nthis ÷ earlier (median of the rounds' ratios): healthz **{ratios['healthz']:.2f}×**, "
          f"cached session **{ratios['session']:.2f}×**, one user **{ratios['one user']:.2f}×**")
    print(f"\nload average at the end: {loadavg()}")
finally:
    for s in servers:
        s.stop()

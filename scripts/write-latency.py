#!/usr/bin/env python3
"""Admin write latency on a healthy three-node cluster on PostgreSQL.

usage: scripts/write-latency.py BINARY [WRITES] [PORT_BASE]
Starts three nodes of BINARY sharing a fresh PostgreSQL database, caches a
user's session on every node, then changes its role WRITES times through
the three nodes in turn, one after another, timing each acknowledged answer;
prints p50/p90/p99 and node 1's write-confirmation metric. Needs psql and a
PostgreSQL server at 127.0.0.1:5432 (user postgres, database test).
"""
import json, os, secrets, subprocess, sys, time, urllib.request

binary = sys.argv[1]
writes = int(sys.argv[2]) if len(sys.argv) > 2 else 300
base = int(sys.argv[3]) if len(sys.argv) > 3 else 18100
db = f"wl_{os.getpid()}"
subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-qc", f"CREATE DATABASE {db}"], check=True)
url = f"postgres://postgres@127.0.0.1:5432/{db}"
# Random, as the validators of later builds require (earlier ones take any).
cookie = secrets.token_urlsafe(32)
secret = secrets.token_urlsafe(48)
procs = []
env = dict(os.environ, SESSIOND_ADMIN_PASSWORD="admin-password-1", RUST_LOG="warn")
try:
    for i in range(3):
        args = [binary, "serve", "--listen", f"127.0.0.1:{base+i}", "--database-url", url,
                "--jwt-secret", secret, "--node-name", f"n{i}", "--cluster-listen", f"127.0.0.1:{base+10+i}",
                "--cluster-cookie", cookie]
        for j in range(3):
            if j != i:
                args += ["--join", f"127.0.0.1:{base+10+j}"]
        procs.append(subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(0.5 if i == 0 else 0.1)

    def call(port, method, path, token=None, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
        if data is not None:
            req.add_header("content-type", "application/json")
        if token:
            req.add_header("authorization", f"Bearer {token}")
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None)

    deadline = time.time() + 60
    while True:
        try:
            ready = [urllib.request.urlopen(f"http://127.0.0.1:{base+i}/readyz", timeout=2).status for i in range(3)]
            perf = call(base, "GET", "/api/perf")[1]
            if all(s == 200 for s in ready) and len(perf.get("members", [])) == 3:
                break
        except Exception:
            pass
        if time.time() > deadline:
            raise SystemExit("cluster not ready in 60 s")
        time.sleep(0.2)
    admin = call(base, "POST", "/api/auth/login", body={"email": "admin@localhost", "password": "admin-password-1"})[1]["token"]
    _, u = call(base, "POST", "/api/admin/users", admin, {"email": "w@example.test", "password": "password-123", "role": "user"})
    tok = call(base, "POST", "/api/auth/login", body={"email": "w@example.test", "password": "password-123"})[1]["token"]
    lat = []
    for k in range(writes):
        for i in range(3):
            call(base + i, "GET", "/api/auth/session", tok)
        role = "editor" if k % 2 == 0 else "viewer"
        t0 = time.perf_counter()
        s, _ = call(base + (k % 3), "PUT", f"/api/admin/users/{u['id']}/role", admin, {"role": role})
        lat.append((time.perf_counter() - t0) * 1000)
        assert s == 200, s
    lat.sort()
    try:
        m = urllib.request.urlopen(f"http://127.0.0.1:{base}/metrics", timeout=5).read().decode()
        for line in m.splitlines():
            if line.startswith("sessiond_write_confirm_seconds_sum") or line.startswith("sessiond_write_confirm_seconds_count") or line.startswith("sessiond_db_queries_total"):
                print("   ", line)
    except Exception as e:
        print("no metrics", e)
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
    print(f"{os.path.basename(binary)}: {writes} role changes through all three nodes in turn: "
          f"p50 {p(0.5):.2f} ms, p90 {p(0.9):.2f} ms, p99 {p(0.99):.2f} ms, max {lat[-1]:.2f} ms")
finally:
    for pr in procs:
        pr.terminate()
    for pr in procs:
        try:
            pr.wait(10)
        except Exception:
            pr.kill()
    time.sleep(0.5)
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-qc", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"])

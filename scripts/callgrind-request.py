#!/usr/bin/env python3
"""Instructions per request of a sessiond binary, under callgrind.

usage: scripts/callgrind-request.py BINARY [REQUESTS] [OUT_DIR]

Starts BINARY (`serve`, SQLite in a temporary directory, RUST_LOG=warn)
under `valgrind --tool=callgrind`, logs the admin in, warms
`GET /healthz` and a cached `GET /api/auth/session` (the admin's token),
then for each route zeroes the counters, sends REQUESTS requests (default
2000) one after another on one keep-alive connection, and dumps the
counters. Prints the instructions per request of the whole server process
(every thread); the dumps (OUT_DIR, default a temporary directory) can be
read with `callgrind_annotate --inclusive=yes`. Instruction counts do not
depend on the machine's load, so two builds compare on a busy machine.
"""
import http.client, json, os, subprocess, sys, tempfile, time

binary = os.path.abspath(sys.argv[1])
n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
out = sys.argv[3] if len(sys.argv) > 3 else tempfile.mkdtemp(prefix="cg-")
os.makedirs(out, exist_ok=True)
db = tempfile.mkdtemp(prefix="cg-db-")
env = dict(os.environ, SESSIOND_ADMIN_PASSWORD="admin-password-1",
           SESSIOND_JWT_SECRET="callgrind-request-secret-0123456789-abcdefgh", RUST_LOG="warn")
server = subprocess.Popen(
    ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/callgrind.%p",
     binary, "serve", "--listen", "127.0.0.1:0", "--database-url", f"sqlite://{db}/cg.db"],
    env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
try:
    first = server.stdout.readline()
    addr = first.strip().rsplit("http://", 1)[1].rstrip("/")
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=600)

    def call(method, path, token=None, body=None):
        headers = {}
        data = None
        if body is not None:
            data = json.dumps(body)
            headers["content-type"] = "application/json"
        if token:
            headers["authorization"] = f"Bearer {token}"
        conn.request(method, path, body=data, headers=headers)
        r = conn.getresponse()
        raw = r.read()
        return r.status, raw

    status, raw = call("POST", "/api/auth/login", body={"email": "admin@localhost", "password": "admin-password-1"})
    assert status == 200, (status, raw)
    token = json.loads(raw)["token"]
    for _ in range(50):
        assert call("GET", "/healthz")[0] == 200
        assert call("GET", "/api/auth/session", token)[0] == 200
    assert json.loads(call("GET", "/api/auth/session", token)[1])["cache"]["hit"] is True

    def measure(name, path, token=None):
        subprocess.run(["callgrind_control", "-z", str(server.pid)], check=True, stdout=subprocess.DEVNULL)
        for _ in range(n):
            status, _ = call("GET", path, token)
            assert status == 200, status
        before = set(os.listdir(out))
        subprocess.run(["callgrind_control", "-d", name, str(server.pid)], check=True, stdout=subprocess.DEVNULL)
        time.sleep(1)
        total = 0
        for f in sorted(set(os.listdir(out)) - before):
            with open(os.path.join(out, f)) as fh:
                for line in fh:
                    if line.startswith("summary:") or line.startswith("totals:"):
                        total += int(line.split()[1])
                        break
        print(f"{binary} "
              f"{name}: {total / n:,.0f} instructions per request ({n} requests)")

    measure("healthz", "/healthz")
    measure("session", "/api/auth/session", token)
finally:
    server.terminate()
    try:
        server.wait(30)
    except Exception:
        server.kill()
    print(f"dumps in {out}", file=sys.stderr)

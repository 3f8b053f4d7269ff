#!/usr/bin/env bash
# Loads the dashboard (GET /) in headless Chromium against a live sessiond,
# checks that the numbers the page shows match /api/perf, and writes a
# screenshot to docs/dashboard.png.
#
#   scripts/dashboard-check.sh            # installs Debian's chromium if missing
#
# Needs: cargo, curl, python3; chromium (installed with apt-get when absent).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
  echo "installing chromium (Debian package)…"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null 2>&1; then
    echo "SKIPPED: dashboard check (chromium could not be installed)"
    exit 0
  fi
fi

cargo build -q --bin sessiond
bin="${CARGO_TARGET_DIR:-target}/debug/sessiond"
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
SESSIOND_ADMIN_PASSWORD=dashboard-check-password RUST_LOG=warn \
  "$bin" serve --listen "127.0.0.1:$port" --database-url "sqlite://$work/d.db" --cache-ttl 20s \
  >"$work/out.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do curl -fs "$url/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

# Some traffic: logins, cached and uncached resolves, a role change.
token=$(curl -fs -X POST "$url/api/auth/login" \
  -H 'content-type: application/json' -d '{"email":"admin@localhost","password":"dashboard-check-password"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
for i in 1 2 3; do
  curl -fs -X POST "$url/api/admin/users" -H "authorization: Bearer $token" \
    -H 'content-type: application/json' -d "{\"email\":\"u$i@example.test\",\"password\":\"password-$i$i$i\",\"role\":\"user\"}" >/dev/null
done
for _ in $(seq 1 40); do curl -fs "$url/api/auth/session" -H "authorization: Bearer $token" >/dev/null; done
curl -fs -X PUT "$url/api/admin/users/2/role" -H "authorization: Bearer $token" -H 'content-type: application/json' -d '{"role":"editor"}' >/dev/null

flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
       --disable-background-networking --disable-component-update --disable-sync
       --user-data-dir="$work/profile" --virtual-time-budget=4000)
chromium "${flags[@]}" --dump-dom "$url/" >"$work/dom.html" 2>/dev/null
curl -fs "$url/api/perf" >"$work/perf.json"

python3 - "$work/dom.html" "$work/perf.json" <<'PY'
import json, re, sys
dom = open(sys.argv[1]).read()
perf = json.load(open(sys.argv[2]))
def shown(id_):
    m = re.search(r'id="%s"[^>]*data-value="([^"]*)"' % re.escape(id_), dom)
    if not m:
        m = re.search(r'data-value="([^"]*)"[^>]*id="%s"' % re.escape(id_), dom)
    if not m:
        sys.exit(f"FAIL: #{id_} not on the page")
    return m.group(1)
if 'data-loaded="true"' not in dom:
    sys.exit("FAIL: the page's script did not load /api/perf")
checks = {
    "hits": perf["hits"], "misses": perf["misses"], "db-queries": perf["db_queries"],
    "session-actors": perf["session_actors"], "invalidations": perf["invalidations"],
    "hibernated": perf["hibernated_sessions"], "hit-rate": perf["hit_rate"],
    "hit-p50": perf["latency_ms"]["hit"]["p50"], "miss-p99": perf["latency_ms"]["miss"]["p99"],
}
bad = []
for id_, want in checks.items():
    got = shown(id_)
    if abs(float(got) - float(want)) > 1e-9:
        bad.append(f"#{id_}: page {got}, /api/perf {want}")
node = re.search(r'id="node">([^<]*)<', dom)
if not node or node.group(1) != perf["node"]:
    bad.append("node name differs")
count = re.search(r'id="recommendations"[^>]*data-count="(\d+)"', dom)
if not count or int(count.group(1)) != len(perf["recommendations"]):
    bad.append("recommendation count differs")
if bad:
    sys.exit("FAIL: " + "; ".join(bad))
print(f"dashboard matches /api/perf ({len(checks) + 2} fields checked: "
      f"{perf['hits']} hits, {perf['misses']} misses, {perf['db_queries']} queries)")
PY

chromium "${flags[@]}" --window-size=1280,860 --hide-scrollbars \
  --screenshot="$work/dashboard.png" "$url/" >/dev/null 2>&1
cp "$work/dashboard.png" docs/dashboard.png
echo "screenshot: docs/dashboard.png"

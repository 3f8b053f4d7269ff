#!/usr/bin/env bash
# What the forward-auth check costs: the same static page through NGINX,
# with the check (deploy/proxies/nginx/sessiond.conf, auth_request to
# sessiond) and without it, measured with wrk in alternating rounds.
#
#   bash scripts/forward-auth-bench.sh [ROUNDS] [SECONDS]
#
# Needs nginx, wrk, curl and a built sessiond (SESSIOND_BIN, default
# target/release/sessiond, else target/debug/sessiond).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-3}"
SECONDS_PER_ROUND="${2:-10}"
CONNECTIONS="${CONNECTIONS:-16}"
BIN="${SESSIOND_BIN:-}"
if [ -z "$BIN" ]; then
  BIN=target/release/sessiond
  [ -x "$BIN" ] || BIN=target/debug/sessiond
fi
work="$(mktemp -d)"
chmod 755 "$work"  # nginx workers may run as another user
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
S_PORT=$(port); APP_PORT=$(port); WITH_PORT=$(port); WITHOUT_PORT=$(port)

SESSIOND_ADMIN_PASSWORD=bench-admin-password "$BIN" serve \
  --listen "127.0.0.1:$S_PORT" --database-url "sqlite://$work/bench.db" \
  --jwt-secret "bench-secret-0123456789abcdef-0123456789" \
  --forward-auth-headers id=X-User-Id,role=X-User-Role,status=X-User-Status,email=X-User-Email \
  >"$work/sessiond.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$S_PORT/healthz" >/dev/null && break; sleep 0.1; done
TOKEN=$(curl -sf -H 'content-type: application/json' \
  -d '{"email":"admin@localhost","password":"bench-admin-password"}' \
  "http://127.0.0.1:$S_PORT/api/auth/login" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')

mkdir -p "$work/www"
printf '<!doctype html><title>page</title><p>%s</p>\n' "$(head -c 1024 /dev/zero | tr '\0' x)" >"$work/www/index.html"
sed -e "s/127.0.0.1:8080/127.0.0.1:$S_PORT/" -e "s/127.0.0.1:3000/127.0.0.1:$APP_PORT/" \
  -e "s/listen 8000;/listen 127.0.0.1:$WITH_PORT;/" deploy/proxies/nginx/sessiond.conf >"$work/site.conf"
cat >"$work/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log warn;
events {}
http {
  access_log off;
  client_body_temp_path $work/body; proxy_temp_path $work/proxy;
  fastcgi_temp_path $work/fastcgi; uwsgi_temp_path $work/uwsgi; scgi_temp_path $work/scgi;
  # The application: a static page.
  server { listen 127.0.0.1:$APP_PORT; root $work/www; }
  # The same page through the same proxying, without the check.
  server {
    listen 127.0.0.1:$WITHOUT_PORT;
    location / { proxy_pass http://127.0.0.1:$APP_PORT; }
  }
  include $work/site.conf;
}
CONF
nginx -p "$work" -c "$work/nginx.conf" &
pids+=($!)
sleep 1
for p in "$WITH_PORT" "$WITHOUT_PORT"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$p/")
  [ "$code" = 200 ] || { echo "port $p answered $code"; exit 1; }
done
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$WITH_PORT/")
[ "$code" = 401 ] || { echo "the protected page answered $code without a token"; exit 1; }

echo "sessiond: $BIN; wrk -t1 -c$CONNECTIONS -d${SECONDS_PER_ROUND}s, $ROUNDS alternating rounds"
printf '%-8s %-7s %12s %10s\n' round check 'requests/s' 'p99'
for r in $(seq 1 "$ROUNDS"); do
  for which in without with; do
    p=$WITHOUT_PORT; [ "$which" = with ] && p=$WITH_PORT
    out=$(wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_PER_ROUND}s" --latency \
      -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$p/")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
    printf '%-8s %-7s %12s %10s %s\n' "$r" "$which" "$rps" "$p99" "${non2xx:+non-2xx: $non2xx}"
  done
done

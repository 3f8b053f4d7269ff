#!/usr/bin/env bash
# The Next.js + Better Auth example, end to end: packs the TypeScript
# client, installs examples/nextjs-better-auth (a copy, in a temporary
# directory), runs `next build`, makes a PostgreSQL database with Better
# Auth's own migration, installs sessiond's capture on it (`sessiond source
# install`, preset better-auth), starts sessiond (adopting Better Auth's
# users and sessions) and `next start`, and drives the app over HTTP:
#
#   sign up; sign in; the protected page shows the role sessiond answered;
#   /admin 403 -> an admin's setRole -> 200 on the next request -> 403;
#   sessiond down -> the documented 503 page, nobody signed out; sessiond
#   back -> the same cookie works; the admin's banUser -> the user is
#   signed out on every request (/ and /admin) and cannot sign in; unbanUser;
#   a signOut -> the cookie from before it no longer works.
#
# Usage: bash scripts/nextjs-better-auth-e2e.sh
#   SESSIOND_BIN           the sessiond binary (default target/debug/sessiond)
#   SESSIOND_TEST_POSTGRES_URL  a PostgreSQL server URL (default
#                          postgres://postgres@127.0.0.1:5432/test); a database
#                          of its own is created there and dropped after
#   NEXTJS_E2E_KEEP=1      keep the temporary directory and the database
#   NEXTJS_E2E_APP         an app directory a kept run built: only run it
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${SESSIOND_BIN:-$root/target/debug/sessiond}"
[ -x "$bin" ] || { echo "no sessiond binary at $bin: cargo build --bin sessiond, or set SESSIOND_BIN" >&2; exit 2; }
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
server_url="${SESSIOND_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"

work="$(mktemp -d "${TMPDIR:-/tmp}/sessiond-nextjs-ba-e2e.XXXXXX")"
db="nextjs_ba_e2e_$(basename "$work" | tr -dc 'a-zA-Z0-9' | tr 'A-Z' 'a-z')"
database_url="${server_url%/*}/$db"
sessiond_pid=""
next_pid=""
db_made=""
cleanup() {
  local rc=$?
  set +e # a server that exits on its signal must not end the clean-up
  if [ -n "$next_pid" ]; then kill "$next_pid" 2>/dev/null; wait "$next_pid" 2>/dev/null; fi
  if [ -n "$sessiond_pid" ]; then kill "$sessiond_pid" 2>/dev/null; wait "$sessiond_pid" 2>/dev/null; fi
  if [ "$rc" -ne 0 ]; then
    echo "--- sessiond log (tail)"; tail -n 30 "$work/sessiond.log" 2>/dev/null || true
    echo "--- next log (tail)"; tail -n 40 "$work/next.log" 2>/dev/null || true
  fi
  if [ "${NEXTJS_E2E_KEEP:-}" = 1 ]; then
    echo "kept $work and the database $db"
  else
    rm -rf "$work"
    [ -n "$db_made" ] && psql -q "$server_url" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
  fi
  exit "$rc"
}
trap cleanup EXIT

started=$SECONDS
phase_start=$SECONDS
declare -a timings=()
phase() { timings+=("$1 $((SECONDS - phase_start)) s"); phase_start=$SECONDS; }

fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }

free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

# ---- install ---------------------------------------------------------------
# As scripts/nextjs-e2e.sh: the client from the tarball `npm pack` makes.
if [ -n "${NEXTJS_E2E_APP:-}" ]; then
app="$(cd "$NEXTJS_E2E_APP" && pwd)"
cd "$app"
else
step "pack the client"
app="$work/app"
mkdir -p "$app"
(cd "$root/examples/nextjs-better-auth" && tar --exclude=node_modules --exclude=.next --exclude=vendor -cf - .) | (cd "$app" && tar -xf -)
if [ ! -x "$root/clients/typescript/node_modules/.bin/tsc" ]; then
  (cd "$root/clients/typescript" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
mkdir -p "$app/vendor"
(cd "$app/vendor" && npm pack --loglevel=error "$root/clients/typescript" >/dev/null && mv sessiond-client-*.tgz sessiond-client.tgz)

step "install the example"
cd "$app"
# One download for the client's tests and the examples: node_modules starts
# as hard links to the client's (next, react, next-auth, better-auth, pg,
# ... at the same versions), and npm only adds and removes the difference.
# The hidden lockfile is left out: npm rewrites it in place, which would
# write through a link into the client's tree (it removes a package by
# unlinking, which leaves the client's copy whole). Across file systems,
# a plain install.
if [ -d "$root/clients/typescript/node_modules" ] && [ ! -e node_modules ]; then
  if cp -al "$root/clients/typescript/node_modules" node_modules 2>/dev/null; then
    rm -f node_modules/.package-lock.json
  else
    rm -rf node_modules
  fi
fi
npm install --no-audit --no-fund --loglevel=error
echo "next $(node -p 'require("next/package.json").version'), better-auth $(node -p 'JSON.parse(require("fs").readFileSync("node_modules/better-auth/package.json","utf8")).version')"
phase install

# ---- build -----------------------------------------------------------------
step "next build"
NEXT_TELEMETRY_DISABLED=1 node_modules/.bin/next build
phase build
fi

# ---- run -------------------------------------------------------------------
step "a database: Better Auth's migration, then sessiond's capture"
psql -q "$server_url" -c "CREATE DATABASE $db" >/dev/null
db_made=1
secret="nextjs-better-auth-e2e-secret-0123456789abcdef"
DATABASE_URL="$database_url" node scripts/migrate.mjs
# sessiond's configuration, for `source install` (which then also captures
# the session table) as for `serve`: the app's database, Better Auth's
# tables, the app's secret.
export DATABASE_URL="$database_url" SESSIOND_SOURCE_PRESET=better-auth SESSIOND_BETTER_AUTH_SECRET="$secret"
"$bin" source install >/dev/null

sessiond_port="$(free_port)"
sessiond_url="http://127.0.0.1:$sessiond_port"
start_sessiond() {
  SESSIOND_JWT_SECRET="nextjs-ba-e2e-jwt-secret-0123456789abcdef" RUST_LOG=warn \
    "$bin" serve --listen "127.0.0.1:$sessiond_port" >>"$work/sessiond.log" 2>&1 &
  sessiond_pid=$!
  for _ in $(seq 1 150); do
    curl -fsS "$sessiond_url/healthz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  fail "sessiond did not start"
}
stop_sessiond() { kill "$sessiond_pid"; wait "$sessiond_pid" 2>/dev/null || true; sessiond_pid=""; }

step "start sessiond and next start"
start_sessiond
# The plugin's key: `admin`, to confirm each change on every node.
app_key="$("$bin" appkey create --name nextjs-better-auth-e2e --scope admin)"
app_port="$(free_port)"
base="http://localhost:$app_port"
BETTER_AUTH_SECRET="$secret" BETTER_AUTH_URL="$base" SESSIOND_URL="$sessiond_url" SESSIOND_APP_KEY="$app_key" \
  NEXT_TELEMETRY_DISABLED=1 node_modules/.bin/next start -H localhost -p "$app_port" >"$work/next.log" 2>&1 &
next_pid=$!
for _ in $(seq 1 300); do
  curl -sS -o /dev/null "$base/sign-in" 2>/dev/null && break
  sleep 0.1
done
curl -fsS -o /dev/null "$base/sign-in" || fail "next start did not answer"

# GET as the browser of jar $jar: prints the status, the body in $work/body.
get() { curl -sS -o "$work/body" -w '%{http_code}' -b "$jar" -c "$jar" "$base$1"; }
# Better Auth's API as the browser of jar $jar (with the app's Origin, which
# Better Auth checks on a request with cookies): prints the status.
ba() { # PATH JSON
  curl -sS -D "$work/ba-headers" -o "$work/ba-body" -w '%{http_code}' -b "$jar" -c "$jar" -X POST "$base/api/auth$1" \
    -H 'content-type: application/json' -H "origin: $base" -d "$2"
}
has_session_cookie() { grep -q 'better-auth.session_token' "$jar" 2>/dev/null; }
expect() { # WHAT ACTUAL EXPECTED
  [ "$2" = "$3" ] || fail "$1: got '$2', want '$3' $(head -c 300 "$work/ba-body" 2>/dev/null)"
  echo "ok   $1"
}
body_has() { grep -q "$2" "$work/body" || fail "$1: the page does not say '$2': $(head -c 400 "$work/body")"; echo "ok   $1"; }

step "drive the app"
password="correct-horse-battery"
jar="$work/admin"
expect "the administrator signs up" "$(ba /sign-up/email "{\"email\":\"boss@example.com\",\"password\":\"$password\",\"name\":\"Boss\"}")" 200
psql -q "$database_url" -c "UPDATE \"user\" SET role = 'admin' WHERE email = 'boss@example.com'" >/dev/null

jar="$work/ann"
expect "signed out: / redirects" "$(get /)" 307
expect "sign up" "$(ba /sign-up/email "{\"email\":\"ann@example.com\",\"password\":\"$password\",\"name\":\"Ann\"}")" 200
ann_id="$(jq -r .user.id "$work/ba-body")"
rm -f "$jar"
expect "sign in" "$(ba /sign-in/email "{\"email\":\"ann@example.com\",\"password\":\"$password\"}")" 200
has_session_cookie || fail "no session cookie after sign-in"
expect "home page" "$(get /)" 200
body_has "the role sessiond answered is shown" "role <b>user</b>"
expect "/admin for a user" "$(get /admin)" 403

jar="$work/admin"
expect "the administrator signs in" "$(ba /sign-in/email "{\"email\":\"boss@example.com\",\"password\":\"$password\"}")" 200
expect "the administrator's /admin" "$(get /admin)" 200
expect "setRole admin" "$(ba /admin/set-role "{\"userId\":\"$ann_id\",\"role\":\"admin\"}")" 200
jar="$work/ann"
expect "/admin on the next request after setRole" "$(get /admin)" 200
body_has "the admin page" "Admin page"
jar="$work/admin"
expect "setRole user" "$(ba /admin/set-role "{\"userId\":\"$ann_id\",\"role\":\"user\"}")" 200
jar="$work/ann"
expect "/admin on the next request after the demotion" "$(get /admin)" 403
expect "home page" "$(get /)" 200
body_has "the new role is shown" "role <b>user</b>"

stop_sessiond
expect "sessiond down: home page refused" "$(get /)" 503
body_has "sessiond down: the documented page" "Sign-in service unavailable"
has_session_cookie || fail "sessiond down signed the user out"
start_sessiond
expect "sessiond back: the same cookie works" "$(get /)" 200

jar="$work/admin"
expect "banUser" "$(ba /admin/ban-user "{\"userId\":\"$ann_id\",\"banReason\":\"e2e\"}")" 200
jar="$work/ann"
expect "banned: / redirects to /sign-in" "$(get /)" 307
expect "banned: /admin redirects to /sign-in" "$(get /admin)" 307
expect "banned: still signed out on the next request" "$(get /)" 307
expect "banned: sign-in refused" "$(ba /sign-in/email "{\"email\":\"ann@example.com\",\"password\":\"$password\"}")" 403
jar="$work/admin"
expect "unbanUser" "$(ba /admin/unban-user "{\"userId\":\"$ann_id\"}")" 200

# The administrator signs out (Better Auth allows 3 sign-ins per 10 s from
# one address: no fourth one here).
expect "home page" "$(get /)" 200
cp "$jar" "$work/admin-copy"
expect "signOut" "$(ba /sign-out '{}')" 200
grep -qi '^set-cookie: better-auth.session_token=;.*Max-Age=0' "$work/ba-headers" \
  || fail "the sign-out does not delete the session cookie: $(cat "$work/ba-headers")"
echo "ok   signed out: the answer deletes the session cookie"
jar="$work/admin-copy"
expect "the cookie from before the sign-out no longer works" "$(get /)" 307
expect "nor for /admin" "$(get /admin)" 307
phase run

echo "== passed; $(IFS=,; echo "${timings[*]}" | sed 's/,/, /g'); total $((SECONDS - started)) s"

#!/usr/bin/env bash
# The Next.js example, end to end: packs the TypeScript client, installs
# examples/nextjs (a copy, in a temporary directory), runs `next build` with
# Next.js's defaults (Turbopack), starts it with `next start` against a real
# sessiond served over HTTPS (a CA and certificates made here with openssl;
# the app trusts the CA through NODE_EXTRA_CA_CERTS) and drives it over HTTP:
#
#   sign-in (sessiond's device token kept in an httpOnly `sessiond-device`
#   cookie); the role shown; /admin 403 -> 200 after a promotion -> 403 after
#   a demotion; sessiond down -> the documented 503 page, sign-in refused with
#   code sessiond_unavailable, nobody signed out; sessiond back -> the same
#   cookie works; a deactivation signs the user out; a wrong password and the
#   failed-login limit give their codes; a certificate replaced on disk is
#   served without a restart and the app keeps working; an email sign-in
#   (the real Nodemailer sending to a local SMTP sink, scripts/smtp-sink.mjs)
#   by the link -> the role shown -> a promotion seen on the next request ->
#   sign-out revokes sessiond's token (the old cookie no longer works).
#
# Usage: bash scripts/nextjs-e2e.sh
#   SESSIOND_BIN       the sessiond binary (default target/debug/sessiond)
#   NEXTJS_E2E_NEXT    a Next.js version to install instead of the example's
#                      (e.g. 15: proxy.ts is then renamed middleware.ts)
#   NEXTJS_E2E_KEEP=1  keep the temporary directory
#   NEXTJS_E2E_APP     an app directory a kept run built: only run it
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${SESSIOND_BIN:-$root/target/debug/sessiond}"
[ -x "$bin" ] || { echo "no sessiond binary at $bin: cargo build --bin sessiond, or set SESSIOND_BIN" >&2; exit 2; }
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"

work="$(mktemp -d "${TMPDIR:-/tmp}/sessiond-nextjs-e2e.XXXXXX")"
sessiond_pid=""
next_pid=""
smtp_pid=""
cleanup() {
  local rc=$?
  set +e # a server that exits on its signal must not end the clean-up
  if [ -n "$next_pid" ]; then kill "$next_pid" 2>/dev/null; wait "$next_pid" 2>/dev/null; fi
  if [ -n "$sessiond_pid" ]; then kill "$sessiond_pid" 2>/dev/null; wait "$sessiond_pid" 2>/dev/null; fi
  if [ -n "$smtp_pid" ]; then kill "$smtp_pid" 2>/dev/null; wait "$smtp_pid" 2>/dev/null; fi
  if [ "$rc" -ne 0 ]; then
    echo "--- sessiond log (tail)"; tail -n 30 "$work/sessiond.log" 2>/dev/null || true
    echo "--- next log (tail)"; tail -n 40 "$work/next.log" 2>/dev/null || true
  fi
  if [ "${NEXTJS_E2E_KEEP:-}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
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
# The client is installed from the tarball `npm pack` makes, as it would be
# from the registry: a `file:` link to a directory outside the app's root is
# what Turbopack cannot resolve, and the tarball also checks the package's
# `files` and `exports`.
if [ -n "${NEXTJS_E2E_APP:-}" ]; then
app="$(cd "$NEXTJS_E2E_APP" && pwd)"
cd "$app"
else
step "pack the client"
app="$work/app"
mkdir -p "$app"
(cd "$root/examples/nextjs" && tar --exclude=node_modules --exclude=.next --exclude=vendor -cf - .) | (cd "$app" && tar -xf -)
# `npm pack` builds the client (its `prepare`); install its dev dependencies
# only when they are not there yet (CI has just run its tests).
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
if [ -n "${NEXTJS_E2E_NEXT:-}" ]; then
  npm install --no-audit --no-fund --loglevel=error "next@${NEXTJS_E2E_NEXT}"
  case "$NEXTJS_E2E_NEXT" in 1[0-5]*) mv proxy.ts middleware.ts && sed -i 's/^export const proxy = /export default /' middleware.ts ;; esac
fi
echo "next $(node -p 'require("next/package.json").version'), next-auth $(node -p 'require("next-auth/package.json").version')"
phase install

# ---- build -----------------------------------------------------------------
step "next build"
NEXT_TELEMETRY_DISABLED=1 node_modules/.bin/next build
phase build
fi

# ---- run -------------------------------------------------------------------
admin_password="e2e-admin-password-0123"
sessiond_port="$(free_port)"
sessiond_url="https://localhost:$sessiond_port"

# A private CA and a certificate it signs for sessiond (localhost and
# 127.0.0.1); `cert NAME` makes NAME.pem and NAME.key.
pki="$work/pki"
mkdir -p "$pki"
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
openssl req -x509 "${ec[@]}" -keyout "$pki/ca.key" -out "$pki/ca.pem" -days 2 -subj /CN=nextjs-e2e-ca 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$pki/server.ext"
cert() {
  openssl req "${ec[@]}" -keyout "$pki/$1.key" -out "$pki/$1.csr" -subj "/CN=$1" 2>/dev/null
  openssl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" -CAcreateserial \
    -out "$pki/$1.pem" -days 2 -extfile "$pki/server.ext" 2>/dev/null
}
cert first
cert renewed
cp "$pki/first.pem" "$pki/server.pem"
cp "$pki/first.key" "$pki/server.key"
# The serial of the certificate sessiond presents in a new handshake.
served_serial() {
  openssl s_client -connect "127.0.0.1:$sessiond_port" -servername localhost -CAfile "$pki/ca.pem" </dev/null 2>/dev/null \
    | openssl x509 -noout -serial 2>/dev/null
}
curl() { command curl --cacert "$pki/ca.pem" "$@"; }

start_sessiond() {
  SESSIOND_ADMIN_PASSWORD="$admin_password" SESSIOND_JWT_SECRET="nextjs-e2e-jwt-secret-0123456789abcdef" RUST_LOG=warn \
    "$bin" serve --listen "127.0.0.1:$sessiond_port" --database-url "sqlite://$work/sessiond.db" \
    --tls-cert "$pki/server.pem" --tls-key "$pki/server.key" >>"$work/sessiond.log" 2>&1 &
  sessiond_pid=$!
  for _ in $(seq 1 100); do
    curl -fsS "$sessiond_url/healthz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  fail "sessiond did not start"
}
stop_sessiond() { kill "$sessiond_pid"; wait "$sessiond_pid" 2>/dev/null || true; sessiond_pid=""; }

step "start sessiond (HTTPS), the SMTP sink and next start"
start_sessiond
# The app's key: `mint` for the email sign-in's token, `admin` for its
# adapter to create the users who sign up by email.
app_key="$("$bin" appkey create --name nextjs-e2e --scope mint,admin --database-url "sqlite://$work/sessiond.db")"
smtp_port="$(free_port)"
mail="$work/mail.jsonl"
: >"$mail"
node "$root/scripts/smtp-sink.mjs" "$smtp_port" "$mail" >"$work/smtp.log" 2>&1 &
smtp_pid=$!
app_port="$(free_port)"
# Auth.js takes the app's origin from the request, which `next start` names
# `localhost`: use that name for the app.
base="http://localhost:$app_port"
AUTH_SECRET="nextjs-e2e-auth-secret-0123456789abcdef" AUTH_TRUST_HOST=true SESSIOND_URL="$sessiond_url" \
  SESSIOND_APP_KEY="$app_key" NODE_EXTRA_CA_CERTS="$pki/ca.pem" AUTH_STORE_FILE="$work/auth-store.json" \
  EMAIL_SERVER="smtp://127.0.0.1:$smtp_port" EMAIL_FROM="sign-in@localhost" \
  NEXT_TELEMETRY_DISABLED=1 node_modules/.bin/next start -H localhost -p "$app_port" >"$work/next.log" 2>&1 &
next_pid=$!
for _ in $(seq 1 300); do
  curl -sS -o /dev/null "$base/login" 2>/dev/null && break
  sleep 0.1
done
curl -fsS -o /dev/null "$base/login" || fail "next start did not answer"

api() { # METHOD PATH [JSON]: sessiond's API as the administrator
  curl -fsS -X "$1" "$sessiond_url$2" -H "authorization: Bearer $admin_token" \
    ${3:+-H "content-type: application/json" -d "$3"}
}
admin_token="$(curl -fsS -X POST "$sessiond_url/api/auth/login" -H 'content-type: application/json' \
  -d "{\"email\":\"admin@localhost\",\"password\":\"$admin_password\"}" | jq -r .token)"

jar="$work/cookies"
# GET as the browser: "STATUS BODY-FILE"; -c keeps the cookies, as a browser would.
get() { curl -sS -o "$work/body" -w '%{http_code}' -b "$jar" -c "$jar" "$base$1"; }
sign_in() { # EMAIL PASSWORD -> the Location Auth.js redirects to
  local csrf
  csrf="$(curl -fsS -b "$jar" -c "$jar" "$base/api/auth/csrf" | jq -r .csrfToken)"
  curl -sS -o /dev/null -w '%{redirect_url}' -b "$jar" -c "$jar" -X POST "$base/api/auth/callback/credentials" \
    --data-urlencode "csrfToken=$csrf" --data-urlencode "email=$1" --data-urlencode "password=$2" \
    --data-urlencode "callbackUrl=$base/"
}
has_session_cookie() { grep -q 'authjs.session-token' "$jar" 2>/dev/null; }
expect() { # WHAT ACTUAL EXPECTED
  [ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"
  echo "ok   $1"
}
body_has() { grep -q "$2" "$work/body" || fail "$1: the page does not say '$2': $(head -c 400 "$work/body")"; echo "ok   $1"; }

user_id="$(api POST /api/admin/users '{"email":"ann@example.com","password":"correct-horse","role":"editor"}' | jq -r .id)"

step "drive the app"
expect "signed out: / redirects" "$(get /)" 307
expect "sign-in redirects home" "$(sign_in ann@example.com correct-horse)" "$base/"
has_session_cookie || fail "no session cookie after sign-in"
# The device cookie, as curl's jar keeps it ("#HttpOnly_" before the domain):
# httpOnly, Path=/, not Secure over http, 30 days, a token's characters.
expect "sign-in keeps the device token in its own cookie" \
  "$(awk -F'\t' -v now="$(date +%s)" '$6 == "sessiond-device" {
      print $1, $3, $4, int(($5 - now) / 86400 + 0.5) " days", ($7 ~ /^[A-Za-z0-9_.-]+$/ ? "token" : "not a token") }' "$jar")" \
  "#HttpOnly_localhost / FALSE 30 days token"
expect "home page" "$(get /)" 200
body_has "the role sessiond answered is shown" "role <b>editor</b>"
expect "/admin for an editor" "$(get /admin)" 403

api PUT "/api/admin/users/$user_id/role" '{"role":"admin"}' >/dev/null
expect "/admin right after a promotion" "$(get /admin)" 200
body_has "the admin page" "Admin page"
api PUT "/api/admin/users/$user_id/role" '{"role":"viewer"}' >/dev/null
expect "/admin right after a demotion" "$(get /admin)" 403
expect "home page" "$(get /)" 200
body_has "the new role is shown" "role <b>viewer</b>"

stop_sessiond
expect "sessiond down: home page refused" "$(get /)" 503
body_has "sessiond down: the documented page" "Sign-in service unavailable"
has_session_cookie || fail "sessiond down signed the user out"
expect "sessiond down: /admin refused" "$(get /admin)" 503
expect "sessiond down: sign-in refused with its own code" \
  "$(jar="$work/other-browser" sign_in ann@example.com correct-horse)" \
  "$base/login?error=CredentialsSignin&code=sessiond_unavailable"
start_sessiond
expect "sessiond back: the same cookie works" "$(get /)" 200
body_has "sessiond back: the role is shown" "role <b>viewer</b>"

step "replace the certificate on disk"
first_serial="$(served_serial)"
[ -n "$first_serial" ] || fail "no certificate served"
pid_before="$sessiond_pid"
cp "$pki/renewed.key" "$pki/server.key.new" && cp "$pki/renewed.pem" "$pki/server.pem.new"
mv "$pki/server.key.new" "$pki/server.key" && mv "$pki/server.pem.new" "$pki/server.pem"
want_serial="serial=$(openssl x509 -in "$pki/renewed.pem" -noout -serial | cut -d= -f2)"
for _ in $(seq 1 50); do
  [ "$(served_serial)" = "$want_serial" ] && break
  sleep 0.1
done
expect "the renewed certificate is served, no restart" "$(served_serial) pid $sessiond_pid" "$want_serial pid $pid_before"
expect "the app still resolves sessions over HTTPS" "$(get /)" 200
body_has "the role is shown" "role <b>viewer</b>"

api POST "/api/admin/users/$user_id/deactivate" >/dev/null
expect "deactivated: the next request redirects to /login" "$(get /)" 307
has_session_cookie && fail "the session cookie outlived the deactivation"
echo "ok   deactivated: the session cookie is deleted"

api POST /api/admin/users '{"email":"bob@example.com","password":"correct-horse","role":"editor"}' >/dev/null
expect "wrong password" "$(sign_in bob@example.com wrong-password)" "$base/login?error=CredentialsSignin&code=credentials"
expect "the login page explains it" "$(get '/login?error=CredentialsSignin&code=credentials')" 200
body_has "the login page explains it" "Wrong email or password"
for _ in $(seq 2 10); do sign_in bob@example.com wrong-password >/dev/null; done
expect "past the failed-login limit" "$(sign_in bob@example.com correct-horse)" "$base/login?error=CredentialsSignin&code=rate_limited"
get '/login?error=CredentialsSignin&code=rate_limited' >/dev/null
body_has "the login page explains it" "Too many failed sign-ins"

step "sign in by email link"
jar="$work/email-browser"
email_sign_in() { # EMAIL -> the Location the link redirects to
  local csrf sent link
  csrf="$(curl -fsS -b "$jar" -c "$jar" "$base/api/auth/csrf" | jq -r .csrfToken)"
  sent="$(wc -l <"$mail")"
  curl -sS -o /dev/null -b "$jar" -c "$jar" -X POST "$base/api/auth/signin/nodemailer" \
    --data-urlencode "csrfToken=$csrf" --data-urlencode "email=$1" --data-urlencode "callbackUrl=$base/"
  for _ in $(seq 1 50); do [ "$(wc -l <"$mail")" -gt "$sent" ] && break; sleep 0.1; done
  [ "$(wc -l <"$mail")" -gt "$sent" ] || fail "no sign-in email reached the SMTP sink"
  link="$(tail -n 1 "$mail" | jq -r .link)"
  [ "$(tail -n 1 "$mail" | jq -r .to)" = "$1" ] || fail "the email went to $(tail -n 1 "$mail" | jq -r .to)"
  case "$link" in "$base/api/auth/callback/nodemailer?"*) ;; *) fail "not a sign-in link: $link" ;; esac
  curl -sS -o /dev/null -w '%{redirect_url}' -b "$jar" -c "$jar" "$link"
}
expect "the email link signs in and redirects home" "$(email_sign_in carol@example.com)" "$base/"
has_session_cookie || fail "no session cookie after the email sign-in"
expect "home page" "$(get /)" 200
body_has "a new user, signed up by email: the role sessiond answered" "role <b>user</b>"
carol_id="$(grep -o 'user <!-- -->[0-9]*' "$work/body" | grep -o '[0-9]*$' || true)"
[ -n "$carol_id" ] || fail "the home page shows no user id: $(head -c 400 "$work/body")"
expect "/admin for a user" "$(get /admin)" 403
api PUT "/api/admin/users/$carol_id/role" '{"role":"admin"}' >/dev/null
expect "/admin right after a promotion" "$(get /admin)" 200
body_has "the new role is shown" "Admin page"
cp "$jar" "$work/email-browser-copy"
csrf="$(curl -fsS -b "$jar" -c "$jar" "$base/api/auth/csrf" | jq -r .csrfToken)"
curl -sS -o /dev/null -b "$jar" -c "$jar" -X POST "$base/api/auth/signout" \
  --data-urlencode "csrfToken=$csrf" --data-urlencode "callbackUrl=$base/login"
has_session_cookie && fail "the session cookie outlived the sign-out"
echo "ok   signed out: the session cookie is deleted"
jar="$work/email-browser-copy"
expect "the cookie from before the sign-out: sessiond revoked its token" "$(get /)" 307
expect "the same link cannot sign in twice" \
  "$(command curl -sS -o /dev/null -w '%{redirect_url}' "$(tail -n 1 "$mail" | jq -r .link)")" \
  "$base/login?error=Verification"
expect "the login page explains it" "$(get '/login?error=Verification')" 200
body_has "the login page explains it" "expired or was already used"
phase run

echo "== passed; $(IFS=,; echo "${timings[*]}" | sed 's/,/, /g'); total $((SECONDS - started)) s"

#!/usr/bin/env bash
# What sessiond's change capture costs the application's own writes: an
# UPDATE of one user row of the Auth.js adapter's `users` table (10 000
# rows), with and without the triggers `sessiond source install` adds,
# measured by pgbench in alternating rounds of one run: with durable
# commits (the server's default) and with synchronous_commit off (which
# leaves the statement's own work: what the triggers add to it shows).
#
#   scripts/trigger-cost.sh [SESSIOND_BIN] [SECONDS_PER_ROUND] [PASSES]
#
# Prints every round, then the median of each configuration's rounds.
#
# Needs psql, pgbench and a PostgreSQL server at $PGURL (default
# postgres://postgres@127.0.0.1:5432); makes and drops a database of its own.
set -euo pipefail
BIN=${1:-target/debug/sessiond}
SECS=${2:-10}
PASSES=${3:-2}
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432}
DB=sessiond_trigger_cost_$$
URL="$PGURL/$DB"
psql -q "$PGURL/postgres" -c "CREATE DATABASE $DB"
trap 'psql -q "$PGURL/postgres" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"' EXIT
psql -q "$URL" -f tests/fixtures/adopt/authjs-pg-schema.sql
psql -q "$URL" -c "INSERT INTO users (name, email) SELECT 'u' || g, 'u' || g || '@app.test' FROM generate_series(1, 10000) g"
SCRIPT=$(mktemp)
cat > "$SCRIPT" <<'SQL'
\set id random(1, 10000)
UPDATE users SET name = 'n' || :id WHERE id = :id;
SQL
export RUST_LOG=warn
round() { # $1: label, $2: clients, $3: synchronous_commit
  local out tps lat
  out=$(PGOPTIONS="-c synchronous_commit=$3" pgbench -n -f "$SCRIPT" -c "$2" -j "$2" -T "$SECS" "$URL" 2>&1)
  tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out")
  lat=$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' <<<"$out")
  printf '| %-7s | %-18s | %7s | %10s | %10s |\n' "$1" "$3" "$2" "$tps" "$lat"
  echo "$1 $3 $2 $tps $lat" >> "$ROUNDS"
}
ROUNDS=$(mktemp)
printf '| %-7s | %-18s | %7s | %10s | %10s |\n' "capture" "synchronous_commit" "clients" "tps" "mean ms"
printf '|%s|%s|%s|%s|%s|\n' "---------" "--------------------" "---------" "------------" "------------"
for sync in on off; do
  for clients in 1 4; do
    for _ in $(seq "$PASSES"); do
      DATABASE_URL=$URL "$BIN" source uninstall >/dev/null
      round "without" "$clients" "$sync"
      DATABASE_URL=$URL "$BIN" source install --source-preset authjs >/dev/null
      round "with" "$clients" "$sync"
    done
  done
done
echo
echo "medians over $PASSES rounds each:"
printf '| %-7s | %-18s | %7s | %10s | %10s |\n' "capture" "synchronous_commit" "clients" "tps" "mean ms"
printf '|%s|%s|%s|%s|%s|\n' "---------" "--------------------" "---------" "------------" "------------"
for sync in on off; do
  for clients in 1 4; do
    for capture in without with; do
      awk -v c="$capture" -v s="$sync" -v n="$clients" '$1 == c && $2 == s && $3 == n {print $4, $5}' "$ROUNDS" |
        sort -n | awk -v c="$capture" -v s="$sync" -v n="$clients" '
          {tps[NR] = $1; lat[NR] = $2}
          END {
            m = int((NR + 1) / 2)
            # the latencies sorted on their own
            for (i = 1; i <= NR; i++) for (j = i + 1; j <= NR; j++) if (lat[j] < lat[i]) {t = lat[i]; lat[i] = lat[j]; lat[j] = t}
            printf "| %-7s | %-18s | %7s | %10.1f | %10.3f |\n", c, s, n, tps[m], lat[m]
          }'
    done
  done
done
rm -f "$SCRIPT" "$ROUNDS"

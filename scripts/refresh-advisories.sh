#!/usr/bin/env bash
# Refreshes the RustSec advisories CI checks Cargo.lock against
# (.ci/advisory-db): only the advisories of the crates Cargo.lock names, and
# the snapshot's commit and date (.ci/advisory-db/SNAPSHOT).
#
#   scripts/refresh-advisories.sh [SOURCE]
#
# SOURCE: a clone of the advisory database (a work tree or a bare git
# directory), or its URL (default https://github.com/rustsec/advisory-db,
# cloned shallow into a temporary directory). Run it after changing
# Cargo.lock, and before a release; commit .ci/advisory-db.
set -euo pipefail
cd "$(dirname "$0")/.."
src="${1:-https://github.com/rustsec/advisory-db}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
if [ -d "$src/.git" ]; then
  gitdir="$src/.git"
elif [ -d "$src" ] && git --git-dir="$src" rev-parse HEAD >/dev/null 2>&1; then
  gitdir="$src"
else
  git clone --quiet --depth 1 --bare "$src" "$tmp/db"
  gitdir="$tmp/db"
fi
out=.ci/advisory-db
rm -rf "$out/crates"
mkdir -p "$out/crates"
names="$(python3 -c '
import tomllib
with open("Cargo.lock", "rb") as f:
    lock = tomllib.load(f)
print("\n".join(sorted({p["name"] for p in lock["package"]})))')"
count=0
for name in $names; do
  files="$(git --git-dir="$gitdir" ls-tree --name-only HEAD "crates/$name/" 2>/dev/null || true)"
  for f in $files; do
    mkdir -p "$out/crates/$name"
    git --git-dir="$gitdir" show "HEAD:$f" >"$out/crates/$name/$(basename "$f")"
    count=$((count + 1))
  done
done
{
  echo "commit $(git --git-dir="$gitdir" log -1 --format=%H HEAD)"
  echo "date $(git --git-dir="$gitdir" log -1 --format=%cI HEAD)"
  echo "advisories $count"
} >"$out/SNAPSHOT"
cat "$out/SNAPSHOT"

#!/usr/bin/env bash
# This tree against an earlier commit under wrk, side by side in one run
# (release builds, SQLite, alternating rounds): prints each build's
# figures and the ratios (this ÷ earlier, cached session ÷ /healthz, many
# users ÷ one, p99 of a cached session ÷ p99 of /healthz).
#
#   scripts/compare-builds.sh <commit> [ROUNDS] [SECS] [USERS]
#
# The earlier commit is checked out in a worktree of its own under
# ${BENCH_AGAINST_DIR:-target/bench-against}/<commit> and built there with its
# own target directory (kept between runs); this tree is built with
# `cargo build --release` (CARGO_TARGET_DIR is honoured). Then
# scripts/compare-builds.py runs both. `scripts/bench-against.sh` is the same
# comparison through the http_load bench's own load generator.
set -euo pipefail

if [ $# -lt 1 ]; then
    echo "usage: $0 <commit> [ROUNDS] [SECS] [USERS]" >&2
    exit 2
fi
commit=$(git rev-parse --short "$1^{commit}")
shift
root=$(git rev-parse --show-toplevel)
dir=${BENCH_AGAINST_DIR:-$root/target/bench-against}/$commit
if [ ! -d "$dir/src" ]; then
    mkdir -p "$(dirname "$dir")"
    git worktree add --detach "$dir" "$commit" >&2
fi
echo "building $commit in $dir" >&2
(cd "$dir" && CARGO_TARGET_DIR="$dir/target" cargo build --release --bin sessiond >&2)
echo "building this tree" >&2
(cd "$root" && cargo build --release --bin sessiond >&2)
this=${CARGO_TARGET_DIR:-$root/target}/release/sessiond
exec python3 "$root/scripts/compare-builds.py" "$dir/target/release/sessiond" "$this" "$@"

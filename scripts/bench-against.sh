#!/usr/bin/env bash
# This build against an earlier commit, side by side in one run (release
# builds, SQLite, alternating rounds): a change that adds per-request cost
# shows as a ratio below 1.
#
#   scripts/bench-against.sh <commit> [http_load flags: --secs 4 --rounds 6 ...]
#
# The earlier commit is checked out in a worktree of its own under
# ${BENCH_AGAINST_DIR:-target/bench-against}/<commit>, built there with its
# own target directory (kept between runs), and its binary handed to
# `cargo bench --bench http_load -- --against`.
set -euo pipefail

if [ $# -lt 1 ]; then
    echo "usage: $0 <commit> [http_load flags]" >&2
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
(cd "$dir" && CARGO_TARGET_DIR="$dir/target" cargo build --release -p sessiond >&2)
cd "$root"
exec cargo bench --bench http_load -- --against "$dir/target/release/sessiond" "$@"

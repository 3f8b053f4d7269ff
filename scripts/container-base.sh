#!/usr/bin/env bash
# Base images for building and running sessiond's container image where no
# image registry is reachable: both made from Debian 12's own packages with
# debootstrap and imported into podman.
#
#   localhost/sessiond-base:bookworm     Debian 12 minbase: glibc, libgcc (the
#                                        runtime stage; stands in for
#                                        distroless cc-debian12)
#   localhost/sessiond-builder:bookworm  the same plus gcc and libc6-dev (the
#                                        build stage; Rust itself is mounted
#                                        from the host at build time: see
#                                        tests/api/image.rs)
#
# Usage: bash scripts/container-base.sh   (root; needs debootstrap, podman)
#   An image that exists already is kept: delete it to rebuild it.
#   SESSIOND_BASE_MIRROR   the Debian mirror (default deb.debian.org)
set -euo pipefail

podman() { command podman --runtime runc --cgroup-manager=cgroupfs "$@"; }
mirror="${SESSIOND_BASE_MIRROR:-http://deb.debian.org/debian}"
base=localhost/sessiond-base:bookworm
builder=localhost/sessiond-builder:bookworm

have() { podman image exists "$1"; }
if have "$base" && have "$builder"; then
  echo "container-base: $base and $builder are there"
  exit 0
fi

work="$(mktemp -d "${TMPDIR:-/var/tmp}/sessiond-base.XXXXXX")"
trap 'umount "$work/root/proc" 2>/dev/null || true; rm -rf "$work"' EXIT

echo "container-base: debootstrap bookworm (minbase) from $mirror"
debootstrap --variant=minbase bookworm "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }
chroot "$work/root" apt-get clean
rm -rf "$work/root/var/lib/apt/lists/"*

import() { # DIR IMAGE CHANGES...
  local dir="$1" image="$2"; shift 2
  local changes=()
  for c in "$@"; do changes+=(--change "$c"); done
  tar -C "$dir" -c . | podman import "${changes[@]}" - "$image" >/dev/null
  echo "container-base: imported $image"
}

if ! have "$base"; then
  import "$work/root" "$base" 'CMD ["/bin/bash"]'
fi

if ! have "$builder"; then
  echo "container-base: adding gcc and libc6-dev for the builder"
  cp /etc/resolv.conf "$work/root/etc/resolv.conf"
  mount -t proc proc "$work/root/proc"
  chroot "$work/root" apt-get update -q >"$work/apt.log" 2>&1 \
    && chroot "$work/root" env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -q --no-install-recommends gcc libc6-dev ca-certificates >>"$work/apt.log" 2>&1 \
    || { tail -n 30 "$work/apt.log" >&2; exit 1; }
  umount "$work/root/proc"
  chroot "$work/root" apt-get clean
  rm -rf "$work/root/var/lib/apt/lists/"*
  # Rust comes from the host at build time (`podman build -v`): the image
  # only says where it will be.
  import "$work/root" "$builder" \
    'ENV CARGO_HOME=/root/.cargo' 'ENV RUSTUP_HOME=/root/.rustup' \
    'ENV PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    'ENV CARGO_NET_OFFLINE=true' 'CMD ["/bin/bash"]'
fi

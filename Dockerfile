# syntax=docker/dockerfile:1
# sessiond's container image: built from source in one stage, run in a
# second that holds the binary and the C runtime it links against, nothing
# else (no shell, no package manager), as an unprivileged user.
#
#   docker build -t sessiond:0.1.0 .        (or: podman build ...)
#   docker run --rm -p 8080:8080 -e DATABASE_URL=postgres://... sessiond:0.1.0 \
#       serve --listen 0.0.0.0:8080
#
# Both base images are arguments, so a site that mirrors its images (or
# builds them from its distribution's packages, as the repository's own test
# does) can point at its copies:
#   RUST_IMAGE     a Debian 12 image with Rust (cargo, rustc) and a C linker
#   RUNTIME_IMAGE  a Debian 12 image with glibc and libgcc (distroless cc)
#   PROFILE        the cargo profile: release (default) or dev
ARG RUST_IMAGE=docker.io/library/rust:1.95-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS build
ARG PROFILE=release
WORKDIR /src
COPY . .
# `--locked`: the image is built from the dependency versions Cargo.lock
# names, never newer ones. The dev profile's output is under target/debug.
RUN cargo build --locked --profile "${PROFILE}" --bin sessiond \
 && dir="$([ "${PROFILE}" = dev ] && echo debug || echo "${PROFILE}")" \
 && install -D -m 0755 "target/${dir}/sessiond" /out/sessiond \
 && install -d -o 65532 -g 65532 /out/data

FROM ${RUNTIME_IMAGE}
COPY --from=build /out/sessiond /usr/local/bin/sessiond
# The working directory: where the default SQLite file (sessiond.db) goes,
# the one place the user may write. Mount a volume here for SQLite; with
# PostgreSQL the root file system can be read-only.
COPY --from=build --chown=65532:65532 /out/data /var/lib/sessiond
WORKDIR /var/lib/sessiond
VOLUME /var/lib/sessiond
# The distroless "nonroot" user; a numeric id, so Kubernetes'
# runAsNonRoot can check it without a passwd entry.
USER 65532:65532
EXPOSE 8080 7000
ENTRYPOINT ["/usr/local/bin/sessiond"]
CMD ["serve", "--listen", "0.0.0.0:8080"]

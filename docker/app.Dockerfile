# The flashsale applications: `flashsale-api` (default command) and
# `flashsale-worker`, in one image.
#
# Build context: the repository root (see docker-compose.yml, services `api`,
# `worker`, `seed-admin`). With internet, the defaults:
#   docker build -f docker/app.Dockerfile --target runtime -t flashsale-app:local .
# Offline (no registry; base images made by scripts/docker-up, crates
# vendored): scripts/docker-images, which passes
#   --build-arg RUST_IMAGE=local/rust:1.95-bookworm
#   --build-arg RUNTIME_IMAGE=local/debian:bookworm-slim --build-arg VENDOR_IMAGE=flashsale-vendor:local
# Then:
#   docker run --rm flashsale-app:local flashsale-api --help
#   docker run --rm flashsale-app:local flashsale-worker --help
#
# No `# syntax=` line: it makes BuildKit pull its frontend image, which fails
# offline; the built-in frontend is enough.
ARG RUST_IMAGE=rust:1.95-bookworm
ARG VENDOR_IMAGE=${RUST_IMAGE}
ARG RUNTIME_IMAGE=debian:bookworm-slim

# ---- builder: begin (keep identical in docker/app.Dockerfile and
# docker/redis.Dockerfile: one compile of the workspace then serves both
# images, the second build reuses the first's layers; scripts/docker-images
# checks it) ----
#
# Plain Dockerfile syntax (no RUN --mount), so the legacy builder (Docker
# without buildx, docker-compose v1) builds it as well as BuildKit; the
# cache is the layers: dependencies in one, the workspace's own crates in
# the next.

# Crates: VENDOR_IMAGE, when given, holds them vendored under /vendor (with
# the marker file /vendor/.flashsale-vendor), for machines where a build
# cannot download from the crate registry; scripts/docker-images makes one
# (flashsale-vendor:local). The default, the toolchain image, holds none,
# and cargo downloads them.
FROM ${VENDOR_IMAGE} AS vendor
RUN mkdir -p /vendor
LABEL org.flashsale.build=vendor-stage

# sources: /deps is only the manifests, with every target's root file
# replaced by an empty stand-in: enough for cargo to compile all
# dependencies, in a layer that a source change leaves valid. /src is what
# `cargo build -p api -p worker -p module` reads: the workspace without its
# integration tests, examples and benches, with stand-ins for the members
# none of the three depends on (tests, stress), and without the files that
# only drive the build (the Dockerfile being built and .dockerignore may be
# in the context; dropping them keeps /src the same for both Dockerfiles).
# So editing a test does not rebuild the images.
FROM ${RUST_IMAGE} AS sources
WORKDIR /ctx
COPY . .
RUN set -eu; \
    rm -rf docker .dockerignore; \
    find . -name Cargo.toml -o -name Cargo.lock | while read -r f; do \
      mkdir -p "/deps/$(dirname "$f")"; cp "$f" "/deps/$f"; \
    done; \
    { find . -path '*/src/lib.rs' -o -path '*/src/main.rs' -o -path '*/src/bin/*.rs' -o -name build.rs; \
      find . -name Cargo.toml | while read -r m; do \
        sed -n 's/^[[:space:]]*path[[:space:]]*=[[:space:]]*"\([^"]*\.rs\)".*/\1/p' "$m" \
          | sed "s|^|$(dirname "$m")/|"; \
      done; \
    } | sort -u | while read -r f; do \
      [ -f "$f" ] || continue; \
      mkdir -p "/deps/$(dirname "$f")"; \
      case "$f" in */lib.rs) : >"/deps/$f" ;; *) echo 'fn main() {}' >"/deps/$f" ;; esac; \
    done; \
    for m in $(find . -name Cargo.toml); do \
      d="$(dirname "$m")"; rm -rf "$d/tests" "$d/examples" "$d/benches"; \
    done; \
    rm -rf tests stress; \
    cp -Rn /deps/. .; \
    cd / && mv /ctx /src
LABEL org.flashsale.build=sources

FROM ${RUST_IMAGE} AS builder
# bindgen (the module's Redis bindings) needs clang and libclang. The
# official rust image lacks them; an offline toolchain image may have them.
RUN if ! dpkg -s clang libclang-dev >/dev/null 2>&1; then \
      apt-get update \
      && apt-get install -y --no-install-recommends clang libclang-dev \
      && rm -rf /var/lib/apt/lists/*; \
    fi
COPY --from=vendor /vendor /vendor
RUN if [ -f /vendor/.flashsale-vendor ]; then \
      printf '[source.crates-io]\nreplace-with = "vendored"\n\n[source.vendored]\ndirectory = "/vendor"\n' \
        >>"${CARGO_HOME:-$HOME/.cargo}/config.toml"; \
    fi
WORKDIR /src
# The images keep no debug info (see below), so the build makes none: the
# build layers are then a fraction of the size on the builder's disk.
ENV CARGO_PROFILE_RELEASE_DEBUG=0
COPY --from=sources /deps ./
RUN cargo build --release --locked -p api -p worker -p module
COPY --from=sources /src ./
# touch: the stand-ins above were compiled after the real files' mtimes.
# The module must be executable: Redis 7.0+ refuses to load it otherwise.
# --strip-debug drops what debug info the standard library brings but
# keeps the symbols, so backtraces still name functions (~35 MB).
RUN find . -path ./target -prune -o -type f -name '*.rs' -exec touch {} + \
 && cargo build --release --locked -p api -p worker -p module \
 && install -D -m 0755 -t /out target/release/flashsale-api target/release/flashsale-worker \
 && strip --strip-debug /out/flashsale-api /out/flashsale-worker \
 && install -D -m 0755 target/release/libflashsale_module.so /out/libflashsale_module.so
# The label (also at the end of every other stage, so it changes no cached
# step) lets scripts/docker-images remove the superseded build layers:
# `docker image prune --filter label=org.flashsale.build`.
LABEL org.flashsale.build=builder
# ---- builder: end ----

FROM ${RUNTIME_IMAGE} AS runtime
# ca-certificates: TLS to a managed Redis/MongoDB (rediss://, mongodb+srv://).
# curl: the compose healthchecks (neither binary has a health-check subcommand).
# (Installed unless the base image has them already, as the offline one does.)
RUN set -e; \
    if ! command -v curl >/dev/null 2>&1 || [ ! -e /etc/ssl/certs/ca-certificates.crt ]; then \
      apt-get update \
      && apt-get install -y --no-install-recommends ca-certificates curl \
      && rm -rf /var/lib/apt/lists/*; \
    fi; \
    groupadd --system --gid 10001 flashsale; \
    useradd --system --uid 10001 --gid flashsale --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin flashsale
COPY --from=builder /out/flashsale-api /out/flashsale-worker /usr/local/bin/
USER flashsale:flashsale
# The API listens on 127.0.0.1 by default; in a container it must be reachable.
ENV BEND_HOST=0.0.0.0
# 3000: flashsale-api (BEND_PORT). 9464: flashsale-api /metrics (METRICS_ADDR,
# loopback by default; set it to 0.0.0.0:9464 in a container and do not
# publish it). 9187: flashsale-worker /metrics, /healthz (WORKER_METRICS_ADDR;
# set it to 0.0.0.0:9187 in a container).
EXPOSE 3000 9464 9187
CMD ["flashsale-api"]
LABEL org.flashsale.build=app

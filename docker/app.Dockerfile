# syntax=docker/dockerfile:1
# The flashsale applications: `flashsale-api` (default command) and
# `flashsale-worker`, in one image.
#
# Build context: the repository root (see docker-compose.yml, services `api`,
# `worker`, `seed-admin`).
#   docker build -f docker/app.Dockerfile -t flashsale-app .
#   docker run --rm flashsale-app flashsale-api --help
#   docker run --rm flashsale-app flashsale-worker --help
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# The web pages (api/web/) are compiled into flashsale-api; nothing else is
# needed at run time. The release profile keeps debug info (debug = 1, ~250 MB
# for both binaries); --strip-debug drops it but keeps the symbols, so
# backtraces still name functions (~35 MB).
RUN --mount=type=cache,id=flashsale-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=flashsale-app-target,target=/src/target \
    cargo build --release --locked -p api -p worker \
 && install -D -m 0755 -t /out target/release/flashsale-api target/release/flashsale-worker \
 && strip --strip-debug /out/flashsale-api /out/flashsale-worker

FROM debian:bookworm-slim AS runtime
# ca-certificates: TLS to a managed Redis/MongoDB (rediss://, mongodb+srv://).
# curl: the compose healthchecks (neither binary has a health-check subcommand).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 flashsale \
 && useradd --system --uid 10001 --gid flashsale --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin flashsale
COPY --from=build /out/flashsale-api /out/flashsale-worker /usr/local/bin/
USER flashsale:flashsale
# The API listens on 127.0.0.1 by default; in a container it must be reachable.
ENV BEND_HOST=0.0.0.0
# 3000: flashsale-api (BEND_PORT). 9187: flashsale-worker /metrics, /healthz
# (WORKER_METRICS_ADDR; set it to 0.0.0.0:9187 in a container).
EXPOSE 3000 9187
CMD ["flashsale-api"]

# syntax=docker/dockerfile:1
# Redis with the flashsale engine module built in.
#
# Build context: the repository root (see docker-compose.yml, service `redis`).
#   docker build -f docker/redis.Dockerfile -t flashsale-redis .
#
# Stage 1 builds target/release/libflashsale_module.so (crate `module`). The
# redis-module crate generates its Redis bindings with bindgen, which needs
# clang and libclang. The builder is Debian bookworm, like the runtime image,
# so the .so links against the same glibc the server runs on.
ARG RUST_VERSION=1.95
ARG REDIS_VERSION=7.2

FROM rust:${RUST_VERSION}-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends clang libclang-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,id=flashsale-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=flashsale-redis-target,target=/src/target \
    cargo build --release --locked -p module \
 && install -D -m 0644 target/release/libflashsale_module.so /out/libflashsale_module.so

# Stage 2: the official Redis image (bookworm) plus the module.
FROM redis:${REDIS_VERSION}-bookworm
COPY --from=build /out/libflashsale_module.so /usr/local/lib/redis/modules/libflashsale_module.so
# The same command docker-compose.yml gives: module loaded at start (module
# commands are disabled at run time by default), AOF with an fsync per write —
# the durability of an acknowledged purchase on a single node.
CMD ["redis-server", \
     "--loadmodule", "/usr/local/lib/redis/modules/libflashsale_module.so", \
     "--appendonly", "yes", "--appendfsync", "always"]

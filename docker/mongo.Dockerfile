# The project's MongoDB-wire-compatible server (tools/mongo-sqlite: FerretDB
# v1 + SQLite) as an image, for machines where `mongo:7` cannot be pulled.
# Tag: flashsale-mongo-sqlite:local.
#
# Build context: a directory holding the binary as `mongo-sqlite`, built on
# the host by scripts/build-mongo-sqlite (Go; the container cannot reach the
# Go module proxy here). scripts/docker-images does all of it; by hand:
#   ctx=$(mktemp -d) && cp "$(scripts/build-mongo-sqlite | tail -n1)" "$ctx/mongo-sqlite"
#   docker build -f docker/mongo.Dockerfile --build-arg RUNTIME_IMAGE=local/debian:bookworm \
#     -t flashsale-mongo-sqlite:local "$ctx"
# The binary links against glibc dynamically: build it on a machine whose
# glibc is not newer than bookworm's (2.36), as these Debian 12 machines are.
#
# Listens on 0.0.0.0:27017, keeps its SQLite files in /data/db (mount a
# volume there), prints `listening on [::]:27017` once clients may
# connect (a log line to wait for), and `mongo-ping` exits 0 once the server
# answers {ping: 1} with ok: 1 (the HEALTHCHECK; compose: test: ["CMD", "mongo-ping"]).
# It is a single node without replica sets or multi-document transactions,
# and its acknowledged writes are fsynced SQLite commits (see README.md).
#
# No `# syntax=` line: it makes BuildKit pull its frontend image, which fails
# offline.
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUNTIME_IMAGE}
# mongo-ping: an OP_MSG {ping: 1, $db: "admin"} over bash's /dev/tcp; the
# reply must hold the BSON element ok: 1.0 (double).
RUN printf '%s\n' \
      '#!/bin/bash' \
      '# mongo-ping [PORT]: exit 0 when the server on 127.0.0.1 answers {ping: 1} with ok: 1.' \
      'exec 3<>"/dev/tcp/127.0.0.1/${1:-27017}" || exit 1' \
      'printf "\x33\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\xdd\x07\x00\x00\x00\x00\x00\x00\x00\x1e\x00\x00\x00\x10\x70\x69\x6e\x67\x00\x01\x00\x00\x00\x02\x24\x64\x62\x00\x06\x00\x00\x00\x61\x64\x6d\x69\x6e\x00\x00" >&3' \
      'timeout 5 dd bs=4096 count=1 <&3 2>/dev/null | od -An -tx1 | tr -d " \n" | grep -q 016f6b00000000000000f03f' \
      >/usr/local/bin/mongo-ping \
 && chmod 0755 /usr/local/bin/mongo-ping \
 && groupadd --system --gid 10002 mongo \
 && useradd --system --uid 10002 --gid mongo --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin mongo \
 && mkdir -p /data/db && chown mongo:mongo /data/db
COPY mongo-sqlite /usr/local/bin/mongo-sqlite
USER mongo:mongo
WORKDIR /data/db
EXPOSE 27017
HEALTHCHECK --interval=5s --timeout=6s --start-period=5s --retries=10 CMD ["mongo-ping"]
# SIGTERM (docker stop) shuts it down cleanly.
CMD ["mongo-sqlite", "--listen", "0.0.0.0:27017", "--dir", "/data/db"]
LABEL org.flashsale.build=mongo

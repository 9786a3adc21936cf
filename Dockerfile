# syntax=docker/dockerfile:1
#
# One image for every Zenovay role:
#   docker run zenovay:local                 # all-in-one (the default CMD)
#   docker run zenovay:local gateway         # or identity | policy | analytics
# Configuration comes from ZENOVAY_* environment variables (see docker-compose.yml).

ARG RUST_VERSION=1.95

# ---------------------------------------------------------------------------
# Build stage
# ---------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /app

# protoc is vendored (protoc-bin-vendored) and SQLite is bundled by sqlx, so the
# image's gcc is all that is needed.
COPY . .

# The cargo registry, git checkouts and target/ live in BuildKit cache mounts so
# that rebuilds only recompile what changed. A cache mount is not part of the
# image, hence the binary is copied out of target/ within the same RUN.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/app/target,sharing=locked \
    cargo build --release --locked --bin zenovay \
 && install -D -m 0755 target/release/zenovay /out/zenovay

# ---------------------------------------------------------------------------
# Runtime stage
# ---------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime

# ca-certificates: TLS to external endpoints; curl: the gateway's health check.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 zenovay \
 && useradd --system --uid 10001 --gid zenovay \
        --home-dir /var/lib/zenovay --shell /usr/sbin/nologin zenovay \
 && mkdir -p /var/lib/zenovay/data \
 && chown -R zenovay:zenovay /var/lib/zenovay

COPY --from=build /out/zenovay /usr/local/bin/zenovay

WORKDIR /var/lib/zenovay

# Container-friendly defaults: listen on all interfaces, keep embedded SQLite
# files (used only when ZENOVAY_DATABASE_URL is unset) under the data dir.
ENV ZENOVAY_HTTP_ADDR=0.0.0.0:8080 \
    ZENOVAY_DATA_DIR=/var/lib/zenovay/data \
    ZENOVAY_IDENTITY_LISTEN=0.0.0.0:50051 \
    ZENOVAY_POLICY_LISTEN=0.0.0.0:50052 \
    ZENOVAY_ANALYTICS_LISTEN=0.0.0.0:50053

# Numeric ids so that runtimes enforcing runAsNonRoot can verify them.
USER 10001:10001

# 8080: gateway HTTP; 50051/50052/50053: identity/policy/analytics gRPC.
EXPOSE 8080 50051 50052 50053

# The process handles SIGTERM/SIGINT itself and shuts down gracefully.
ENTRYPOINT ["zenovay"]
CMD ["all"]

# syntax=docker/dockerfile:1
# Dockerfile — the dbrouter image: a release build on rust:1-bookworm, run on
# debian:bookworm-slim (same Debian release, so the same glibc) as an unprivileged user.
#
#   docker build -t dbrouter .
#   docker run --rm -p 127.0.0.1:6033:6033 \
#       -v "$PWD/config/my.toml:/etc/dbrouter/dbrouter.toml:ro" dbrouter
#
# The image carries config/dbrouter.compose.toml as its default config (shard addresses are
# the docker-compose.yml service names); mount your own over /etc/dbrouter/dbrouter.toml.
# In a container the config's [server] listen must be 0.0.0.0:PORT, not 127.0.0.1:PORT.

FROM rust:1-bookworm AS build
WORKDIR /src
# Everything the manifest names (src/, the proto-tests/rust test target, ...): cargo checks
# every target's path even when building one binary. .dockerignore keeps target/ and local
# cluster state out of the context.
COPY . .
# Cache mounts (BuildKit) keep the crates.io downloads and the target directory between
# builds; the binary is copied out of the cached target directory in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin dbrouter \
    && install -m 0755 target/release/dbrouter /usr/local/bin/dbrouter

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin dbrouter
COPY --from=build /usr/local/bin/dbrouter /usr/local/bin/dbrouter
COPY config/dbrouter.compose.toml /etc/dbrouter/dbrouter.toml
USER dbrouter
# 6033: MySQL protocol; 6034: admin HTTP (metrics, health, status page).
EXPOSE 6033 6034
# SIGTERM starts a graceful drain ([timeouts] drain_ms); give `docker stop -t` more than that.
STOPSIGNAL SIGTERM
ENV DBROUTER_LOG=info
ENTRYPOINT ["dbrouter"]
CMD ["serve", "--config", "/etc/dbrouter/dbrouter.toml"]

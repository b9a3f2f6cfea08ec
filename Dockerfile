# taskstream: one static-ish binary (migrations are embedded by sqlx::migrate!) on a slim
# Debian. Build: docker build -t taskstream .   Run: see docker-compose.yml.

# ---- build ---------------------------------------------------------------------------
FROM rust:1.95-bookworm AS build
WORKDIR /src

# Dependencies first, with stub sources: this layer is rebuilt only when Cargo.toml or
# Cargo.lock change, not on every source edit. (loadtests/ is a workspace member, so its
# manifest must be there too; its stubs are never built.)
COPY Cargo.toml Cargo.lock ./
COPY loadtests/Cargo.toml loadtests/Cargo.toml
RUN mkdir -p src loadtests/src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs loadtests/src/lib.rs \
    && echo 'fn main() {}' > loadtests/src/main.rs \
    && cargo build --release --locked -p taskstream \
    && rm -rf src target/release/.fingerprint/taskstream-* \
        target/release/deps/taskstream-* target/release/deps/libtaskstream-* \
        target/release/taskstream target/release/taskstream.d

# The application itself (the SQL migrations are compiled into the binary).
COPY src src
COPY migrations migrations
RUN cargo build --release --locked -p taskstream \
    && install -D -m 0755 target/release/taskstream /out/taskstream

# ---- runtime -------------------------------------------------------------------------
FROM debian:bookworm-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 taskstream \
    && useradd --system --uid 10001 --gid taskstream --home-dir /data \
        --no-create-home --shell /usr/sbin/nologin taskstream \
    && mkdir -p /data/media \
    && chown -R taskstream:taskstream /data

COPY --from=build /out/taskstream /usr/local/bin/taskstream

# DATA_DIR holds the embedded SQLite database, its generated JWT secret and (unless
# MEDIA_DIR says otherwise) uploaded photos. With PostgreSQL only media may live there.
ENV BIND=0.0.0.0:8080 \
    METRICS_BIND=0.0.0.0:9091 \
    DATA_DIR=/data

USER taskstream
WORKDIR /data
VOLUME /data
EXPOSE 8080 9091

# No curl in the image: bash's /dev/tcp sends the request to the port in BIND and the
# check passes on a 200 from /health (which includes the database). The Host header must
# be one ALLOWED_HOSTS accepts (the default, "*", accepts any).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${BIND##*:} && printf 'GET /health HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]

# SIGTERM (docker stop) closes the sockets with 1012, spread over SHUTDOWN_SPREAD (3 s),
# and waits up to 5 s more: keep the stop timeout above 10 s.
STOPSIGNAL SIGTERM
CMD ["taskstream"]

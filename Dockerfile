# mxgate container image.
#
#   docker build -t mxgate .
#   docker run -d --name mxgate -p 25:25 -v mxgate-data:/var/lib/mxgate \
#       -e MXGATE_RELAY__DOWNSTREAM=mailstore.internal:25 \
#       -e MXGATE_RELAY__DOMAINS=example.org \
#       -e MXGATE_SMTP__HOSTNAME=mx.example.org mxgate
#
# The image runs as uid/gid 10025 (mxgate). The binary carries the file
# capability cap_net_bind_service so that user can listen on port 25 even with
# --network host; keep that capability if you drop others
# (--cap-drop ALL --cap-add NET_BIND_SERVICE). With --security-opt
# no-new-privileges file capabilities are ignored: on a bridge network Docker
# (20.10+) lets any user bind low ports anyway (ip_unprivileged_port_start=0),
# with --network host use a port >= 1024 (MXGATE_SMTP__LISTEN).
# See packaging/docker/README.md.

ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG BASE_IMAGE=debian:bookworm-slim

# ---------------------------------------------------------------------------
FROM ${RUST_IMAGE} AS build
# Lets scripts find (and tidy) this stage's cache images.
LABEL mxgate.stage=build

# setcap comes from libcap2-bin; it is copied into the final stage below.
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends libcap2-bin; \
    rm -rf /var/lib/apt/lists/*

WORKDIR /src

# Dependencies first, in their own layer: a source change then rebuilds only
# the mxgate crate. A failure here is not fatal (an odd manifest may not build
# against stub sources); the real build below reports real errors.
COPY Cargo.toml Cargo.lock ./
RUN set -eux; \
    mkdir -p src; \
    echo 'fn main() {}' > src/main.rs; \
    : > src/lib.rs; \
    cargo fetch --locked; \
    cargo build --release --locked \
        || echo "dependency pre-build failed; continuing with the full build"; \
    rm -rf src

COPY . .
# Forget the stub build of the mxgate crate itself so the real sources are
# compiled whatever their timestamps.
RUN set -eux; \
    rm -rf target/release/.fingerprint/mxgate-* target/release/deps/mxgate-* \
        target/release/deps/libmxgate-* target/release/mxgate target/release/libmxgate.*; \
    cargo build --release --locked; \
    install -D -m 0755 target/release/mxgate /out/mxgate; \
    strip --strip-debug /out/mxgate; \
    /out/mxgate --version

# ---------------------------------------------------------------------------
FROM ${BASE_IMAGE}

LABEL org.opencontainers.image.title="mxgate" \
      org.opencontainers.image.description="SMTP secure email gateway: accepts mail for your domains, stores it durably and relays it downstream" \
      org.opencontainers.image.licenses="Apache-2.0"

RUN set -eux; \
    groupadd --system --gid 10025 mxgate; \
    useradd --system --uid 10025 --gid mxgate --home-dir /var/lib/mxgate \
        --no-create-home --shell /usr/sbin/nologin mxgate; \
    install -d -o mxgate -g mxgate -m 0750 /var/lib/mxgate; \
    install -d -m 0755 /etc/mxgate

# CA bundle (for relay.tls = "require" with a private CA chain, and anything
# else that looks at the system store), without installing apt packages.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt

# The legacy builder (and BuildKit, moby/moby#20435) drops file capabilities
# on COPY, so setcap runs here, with a setcap binary that is deleted again.
COPY --from=build /usr/sbin/setcap /tmp/mxgate-setcap/setcap
COPY --from=build /out/mxgate /usr/local/bin/mxgate
COPY packaging/docker/healthcheck.sh /usr/local/bin/mxgate-healthcheck
COPY packaging/docker/mxgate.toml /etc/mxgate/mxgate.toml
RUN set -eux; \
    /tmp/mxgate-setcap/setcap -q -v cap_net_bind_service=+ep /usr/local/bin/mxgate \
        || /tmp/mxgate-setcap/setcap cap_net_bind_service=+ep /usr/local/bin/mxgate; \
    rm -rf /tmp/mxgate-setcap; \
    chmod 0755 /usr/local/bin/mxgate-healthcheck; \
    chmod 0644 /etc/mxgate/mxgate.toml; \
    mxgate --version; \
    mxgate check-config --config /etc/mxgate/mxgate.toml

# docker logs are files, not terminals: no ANSI colours (NO_COLOR= brings them back).
ENV NO_COLOR=1
USER 10025:10025
WORKDIR /var/lib/mxgate
VOLUME /var/lib/mxgate
EXPOSE 25
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["/usr/local/bin/mxgate-healthcheck"]

ENTRYPOINT ["mxgate"]
CMD ["serve", "--config", "/etc/mxgate/mxgate.toml"]

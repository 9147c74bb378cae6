#!/usr/bin/env bash
# Create the two base images the Dockerfile builds FROM, locally, when no
# image registry is reachable:
#
#   debian:bookworm-slim      debootstrap --variant=minbase bookworm, trimmed
#                             like the official "slim" image, `docker import`ed
#   rust:1.95-slim-bookworm   FROM that image + gcc, libc6-dev, pkg-config,
#                             ca-certificates + the host's Rust 1.95 toolchain
#                             (rustc, cargo, rustdoc, rust-std for
#                             x86_64-unknown-linux-gnu) laid out like the
#                             official rust image (/usr/local/cargo/bin on PATH)
#
# Idempotent: an image that already exists is left alone (FORCE=1 rebuilds).
# Needs: root, docker, network access to the Debian mirror (apt/debootstrap),
# and a Rust 1.95 toolchain on the host (rustup or RUST_TOOLCHAIN_DIR=...).
#
# Environment knobs:
#   DEBIAN_IMAGE        tag for the Debian image   (debian:bookworm-slim)
#   RUST_IMAGE          tag for the Rust image     (rust:1.95-slim-bookworm)
#   RUST_VERSION        required rustc version     (1.95)
#   RUST_TOOLCHAIN_DIR  toolchain to copy          (resolved via rustup/rustc)
#   DEBIAN_MIRROR       mirror for debootstrap     (http://deb.debian.org/debian)
#   WORKDIR             scratch directory          (a mktemp dir, removed on exit)
#   EXTRA_CA_DIR        extra CA certificates (*.crt) the build must trust to
#                       reach crates.io, e.g. a TLS-intercepting proxy's
#                       (/usr/local/share/ca-certificates, when it has any)
#   FORCE=1             rebuild even when the images exist
set -euo pipefail

# Bump when what this script puts into the images changes: images made by an
# older revision are rebuilt.
REVISION=2

DEBIAN_IMAGE=${DEBIAN_IMAGE:-debian:bookworm-slim}
RUST_IMAGE=${RUST_IMAGE:-rust:1.95-slim-bookworm}
RUST_VERSION=${RUST_VERSION:-1.95}
DEBIAN_SUITE=bookworm
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
FORCE=${FORCE:-0}
TARGET_TRIPLE=x86_64-unknown-linux-gnu

log() { printf '[build-base-images] %s\n' "$*" >&2; }
die() { printf '[build-base-images] ERROR: %s\n' "$*" >&2; exit 1; }

# Remove an image we replaced, when nothing else uses it (errors ignored).
drop_old() { [ -n "$1" ] && docker rmi "$1" >/dev/null 2>&1 || true; }
old_id() { docker image inspect -f '{{.Id}}' "$1" 2>/dev/null || true; }

image_current() {
    [ "$(docker image inspect -f '{{index .Config.Labels "mxgate.base-images.revision"}}' "$1" 2>/dev/null)" = "$REVISION" ]
}

[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap needs it)"
command -v docker >/dev/null || die "docker CLI not found"
docker info >/dev/null 2>&1 || die "docker engine not reachable"

if [ -z "${WORKDIR:-}" ]; then
    WORKDIR=$(mktemp -d /var/tmp/mxgate-base-images.XXXXXX)
    trap 'rm -rf "$WORKDIR"' EXIT
fi
mkdir -p "$WORKDIR"

apt_updated=0
ensure_pkg() { # ensure_pkg COMMAND PACKAGE
    command -v "$1" >/dev/null 2>&1 && return 0
    log "installing $2"
    if [ "$apt_updated" -eq 0 ]; then
        apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null
}

# --------------------------------------------------------------------------
# debian:bookworm-slim
# --------------------------------------------------------------------------
build_debian() {
    if image_current "$DEBIAN_IMAGE" && [ "$FORCE" != 1 ]; then
        log "$DEBIAN_IMAGE exists, skipping"
        return 0
    fi
    local old
    old=$(old_id "$DEBIAN_IMAGE")
    ensure_pkg debootstrap debootstrap
    [ -r /usr/share/keyrings/debian-archive-keyring.gpg ] || ensure_pkg /nonexistent debian-archive-keyring

    local rootfs="$WORKDIR/debian-rootfs"
    rm -rf "$rootfs"
    mkdir -p "$rootfs"
    log "debootstrap --variant=minbase $DEBIAN_SUITE (takes a few minutes)"
    debootstrap --variant=minbase --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
        "$DEBIAN_SUITE" "$rootfs" "$DEBIAN_MIRROR" >"$WORKDIR/debootstrap.log" 2>&1 \
        || { tail -30 "$WORKDIR/debootstrap.log" >&2; die "debootstrap failed"; }

    # Same apt sources as the official image (main, updates, security).
    rm -f "$rootfs/etc/apt/sources.list"
    cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $DEBIAN_MIRROR
Suites: $DEBIAN_SUITE $DEBIAN_SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${DEBIAN_MIRROR%/debian}/debian-security
Suites: $DEBIAN_SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    # Carry over host apt "Acquire::" settings (proxy, Valid-Until of a
    # mirror snapshot) so apt-get inside builds behaves like on the host.
    local f
    for f in /etc/apt/apt.conf.d/*; do
        [ -f "$f" ] || continue
        if grep -qE '^[[:space:]]*Acquire::' "$f"; then
            grep -E '^[[:space:]]*Acquire::' "$f" >"$rootfs/etc/apt/apt.conf.d/$(basename "$f")"
        fi
    done

    # "slim": the settings and trimming the official debian:*-slim images use.
    mkdir -p "$rootfs/etc/dpkg/dpkg.cfg.d"
    cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
    cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    echo 'APT::Install-Recommends "false";' >"$rootfs/etc/apt/apt.conf.d/docker-no-recommends"
    echo 'Acquire::Languages "none";' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
    find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
    find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
    rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/groff/* \
        "$rootfs"/usr/share/lintian/* "$rootfs"/usr/share/linda/*
    find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} + 2>/dev/null || true
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
        "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/log/*.log \
        "$rootfs"/var/log/apt/* "$rootfs"/tmp/* "$rootfs"/var/tmp/* \
        "$rootfs"/var/cache/ldconfig/aux-cache "$rootfs"/debootstrap
    : >"$rootfs/etc/machine-id" 2>/dev/null || true
    echo "localhost" >"$rootfs/etc/hostname"

    log "importing rootfs as $DEBIAN_IMAGE"
    tar --numeric-owner --xattrs -C "$rootfs" \
        --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -c . |
        docker import \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'CMD ["bash"]' \
            --change "LABEL mxgate.base-images.revision=$REVISION" \
            --message "debootstrap --variant=minbase $DEBIAN_SUITE (local stand-in for the registry image)" \
            - "$DEBIAN_IMAGE" >/dev/null
    rm -rf "$rootfs"
    drop_old "$old"
    log "$DEBIAN_IMAGE: $(docker image inspect -f '{{.Size}}' "$DEBIAN_IMAGE" | awk '{printf "%.1f MB", $1/1e6}')"
}

# --------------------------------------------------------------------------
# rust:1.95-slim-bookworm
# --------------------------------------------------------------------------
find_toolchain() {
    if [ -n "${RUST_TOOLCHAIN_DIR:-}" ]; then
        readlink -f "$RUST_TOOLCHAIN_DIR"
        return
    fi
    export PATH="$HOME/.cargo/bin:/root/.cargo/bin:$PATH"
    local rustc=""
    if command -v rustup >/dev/null 2>&1; then
        rustc=$(rustup which --toolchain "$RUST_VERSION" rustc 2>/dev/null ||
            rustup which --toolchain stable rustc 2>/dev/null || rustup which rustc 2>/dev/null || true)
    fi
    [ -n "$rustc" ] || rustc=$(command -v rustc || true)
    [ -n "$rustc" ] || die "no rustc found; set RUST_TOOLCHAIN_DIR"
    dirname "$(dirname "$(readlink -f "$rustc")")"
}

build_rust() {
    if image_current "$RUST_IMAGE" && [ "$FORCE" != 1 ]; then
        log "$RUST_IMAGE exists, skipping"
        return 0
    fi
    local tc old
    old=$(old_id "$RUST_IMAGE")
    tc=$(find_toolchain)
    [ -x "$tc/bin/rustc" ] && [ -x "$tc/bin/cargo" ] || die "toolchain $tc lacks bin/rustc or bin/cargo"
    [ -d "$tc/lib/rustlib/$TARGET_TRIPLE/lib" ] || die "toolchain $tc lacks rust-std for $TARGET_TRIPLE"
    local ver
    ver=$(LD_LIBRARY_PATH="$tc/lib" "$tc/bin/rustc" --version)
    case "$ver" in
        "rustc $RUST_VERSION."*) ;;
        *) die "toolchain $tc is '$ver', want rustc $RUST_VERSION.x" ;;
    esac
    local full=${ver#rustc }
    full=${full%% *}
    log "using toolchain $tc ($ver)"

    # Stage only what compiling for the host target needs (~0.6 GB instead of
    # 1.4 GB with docs and sources).
    local ctx="$WORKDIR/rust-ctx"
    rm -rf "$ctx"
    mkdir -p "$ctx/toolchain/bin" "$ctx/toolchain/lib/rustlib"
    local cp_="cp -a"
    # hard links are much faster when the scratch dir is on the same fs
    if cp -al "$tc/bin/rustc" "$ctx/toolchain/bin/rustc" 2>/dev/null; then
        cp_="cp -al"
        rm -f "$ctx/toolchain/bin/rustc"
    fi
    local b
    for b in rustc cargo rustdoc; do
        [ -e "$tc/bin/$b" ] && $cp_ "$tc/bin/$b" "$ctx/toolchain/bin/"
    done
    $cp_ "$tc"/lib/*.so* "$ctx/toolchain/lib/"
    $cp_ "$tc/lib/rustlib/$TARGET_TRIPLE" "$ctx/toolchain/lib/rustlib/"
    for b in components rust-installer-version multirust-config.toml; do
        [ -e "$tc/lib/rustlib/$b" ] && $cp_ "$tc/lib/rustlib/$b" "$ctx/toolchain/lib/rustlib/"
    done
    $cp_ "$tc"/lib/rustlib/manifest-* "$ctx/toolchain/lib/rustlib/" 2>/dev/null || true
    # drop components we don't ship (docs, clippy, rustfmt manifests)
    rm -f "$ctx"/toolchain/lib/rustlib/manifest-{rust-docs,clippy-preview,rustfmt-preview}-*

    # Extra CAs (a TLS-intercepting egress proxy's, say) go into a bundle that
    # only cargo uses (CARGO_HTTP_CAINFO), so the system store, which the
    # mxgate image copies, stays Debian's.
    local extra_ca_dir=${EXTRA_CA_DIR:-/usr/local/share/ca-certificates}
    mkdir -p "$ctx/extra-ca"
    local n_ca=0
    if [ -d "$extra_ca_dir" ]; then
        for f in "$extra_ca_dir"/*.crt "$extra_ca_dir"/*/*.crt; do
            [ -f "$f" ] || continue
            cp "$f" "$ctx/extra-ca/$(printf '%02d' "$n_ca")-$(basename "$f")"
            n_ca=$((n_ca + 1))
        done
    fi
    log "extra CA certificates for cargo: $n_ca (from $extra_ca_dir)"
    local ca_env=""
    if [ "$n_ca" -gt 0 ]; then
        ca_env="ENV CARGO_HTTP_CAINFO=/usr/local/share/cargo-ca/bundle.pem"
    fi

    cat >"$ctx/Dockerfile" <<EOF
ARG BASE_IMAGE=$DEBIAN_IMAGE
FROM \${BASE_IMAGE}
ENV RUSTUP_HOME=/usr/local/rustup \\
    CARGO_HOME=/usr/local/cargo \\
    PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    RUST_VERSION=$full
RUN set -eux; \\
    apt-get update; \\
    apt-get install -y --no-install-recommends ca-certificates gcc libc6-dev pkg-config; \\
    rm -rf /var/lib/apt/lists/*
COPY toolchain/ /usr/local/rustup/toolchains/$full-$TARGET_TRIPLE/
RUN set -eux; \\
    mkdir -p /usr/local/cargo/bin; \\
    for b in cargo rustc rustdoc; do \\
        ln -s /usr/local/rustup/toolchains/$full-$TARGET_TRIPLE/bin/\$b /usr/local/cargo/bin/\$b; \\
    done; \\
    chmod -R a+w /usr/local/cargo; \\
    rustc --version; cargo --version
COPY extra-ca/ /usr/local/share/cargo-ca/
RUN set -eu; \\
    if ls /usr/local/share/cargo-ca/*.crt >/dev/null 2>&1; then \\
        cat /etc/ssl/certs/ca-certificates.crt /usr/local/share/cargo-ca/*.crt > /usr/local/share/cargo-ca/bundle.pem; \\
    fi
$ca_env
LABEL mxgate.base-images.revision=$REVISION
CMD ["bash"]
EOF
    log "building $RUST_IMAGE"
    docker build --network host --build-arg BASE_IMAGE="$DEBIAN_IMAGE" -t "$RUST_IMAGE" "$ctx" \
        >"$WORKDIR/rust-build.log" 2>&1 || { tail -40 "$WORKDIR/rust-build.log" >&2; die "building $RUST_IMAGE failed"; }
    rm -rf "$ctx"
    drop_old "$old"
    log "$RUST_IMAGE: $(docker image inspect -f '{{.Size}}' "$RUST_IMAGE" | awk '{printf "%.1f MB", $1/1e6}')"
}

build_debian
build_rust
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' |
    grep -E "^(${DEBIAN_IMAGE}|${RUST_IMAGE}) " >&2 || true

#!/usr/bin/env bash
# End-to-end proof of the Dockerfile:
#
#   1. make the base images locally when no registry is reachable
#      (packaging/docker/build-base-images.sh)
#   2. docker build --network host -t mxgate .   (timed; image size reported)
#   3. the image runs as uid 10025, not root; check-config passes in it
#   4. port 25: with every capability dropped but NET_BIND_SERVICE and the
#      kernel's unprivileged-port floor at 1024, the non-root container serves
#      SMTP on port 25 of its own network namespace (--network none)
#   5. mail flow: a recording SMTP sink on 127.0.0.1 (tests/docker/sink.py),
#      the container on the host network with its listeners and downstream
#      moved to free loopback ports by MXGATE_* variables; one message sent
#      with smtplib over STARTTLS must reach the sink with a Received header
#      naming the configured hostname
#   6. the quarantine contract (tests/docker/quarantine.py): a zip holding a
#      program is held, listed with reasons, shown, released once (a second
#      release is 409) and reaches the sink exactly once; bad token 401
#   7. docker stop: SIGTERM ends the gateway cleanly (exit status 0)
#   8. packaging/docker-compose.yml comes up with its hardening and answers
#      on its published port (bound to a free 127.0.0.1 port)
#
# All traffic stays on loopback. Prints "docker proof: 1 passed, 0 failed" on
# success; on failure says what failed, shows the container log, exits 1.
#
# Environment: PROOF_IMAGE (mxgate), SKIP_BUILD=1 (use the existing image),
# PROOF_TIMEOUT seconds for each wait (60).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$ROOT/tests/docker"
IMAGE=${PROOF_IMAGE:-mxgate}
SKIP_BUILD=${SKIP_BUILD:-0}
TIMEOUT=${PROOF_TIMEOUT:-60}
HOSTNAME_IN_CONTAINER=mx-proof.example.test
RCPT=postmaster@example.test
SENDER=alice@sender.proof.test

TMP=$(mktemp -d /tmp/mxgate-docker-proof.XXXXXX)
SUFFIX="$$-$RANDOM"
C_PORT25="mxgate-proof-p25-$SUFFIX"
C_FLOW="mxgate-proof-flow-$SUFFIX"
SINK_PID=""
COMPOSE_PROJECT=""
CURRENT=""
T0=$(date +%s)

say() { printf '[docker proof %3ds] %s\n' "$(($(date +%s) - T0))" "$*"; }

cleanup() {
    local rc=$?
    set +e
    [ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null && wait "$SINK_PID" 2>/dev/null
    for c in "$C_PORT25" "$C_FLOW"; do
        docker rm -f -v "$c" >/dev/null 2>&1
    done
    if [ -n "$COMPOSE_PROJECT" ]; then
        docker-compose -p "$COMPOSE_PROJECT" -f "$ROOT/packaging/docker-compose.yml" down -v >/dev/null 2>&1
    fi
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
    echo "docker proof: FAILED at step '${CURRENT:-?}': $*" >&2
    local c
    for c in "$C_PORT25" "$C_FLOW"; do
        if docker container inspect "$c" >/dev/null 2>&1; then
            echo "---- docker logs $c (last 40 lines) ----" >&2
            docker logs --tail 40 "$c" 2>&1 | sed 's/^/    /' >&2
        fi
    done
    if [ -s "$TMP/sink.log" ]; then
        echo "---- sink log ----" >&2
        sed 's/^/    /' "$TMP/sink.log" >&2
    fi
    echo "docker proof: 0 passed, 1 failed"
    exit 1
}

step() { CURRENT=$1; say "$1"; }

# wait_until DESCRIPTION COMMAND...: poll COMMAND every 0.5 s up to $TIMEOUT s.
wait_until() {
    local what=$1
    shift
    local deadline=$(($(date +%s) + TIMEOUT))
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || fail "timed out after ${TIMEOUT}s waiting for $what"
        sleep 0.5
    done
}

running() { [ "$(docker container inspect -f '{{.State.Running}}' "$1" 2>/dev/null)" = true ]; }

# A port the kernel considers free on 127.0.0.1 right now.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ---------------------------------------------------------------------------
step "prerequisites"
command -v docker >/dev/null || fail "docker CLI not found"
docker info >/dev/null 2>&1 || fail "docker engine not reachable"
if ! command -v python3 >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 >/dev/null ||
        fail "cannot install python3"
fi
python3 -c 'import sys; assert sys.version_info >= (3, 8)' || fail "python3 >= 3.8 needed"

if [ "$SKIP_BUILD" != 1 ]; then
    step "base images"
    bash "$ROOT/packaging/docker/build-base-images.sh" || fail "build-base-images.sh failed"

    step "docker build"
    b0=$(date +%s)
    if ! docker build --network host -t "$IMAGE" "$ROOT" >"$TMP/build.log" 2>&1; then
        tail -60 "$TMP/build.log" >&2
        fail "docker build failed (log above)"
    fi
    say "docker build took $(($(date +%s) - b0))s"
    # Keep the build stage's last image (compiled dependencies included) as a
    # tagged cache for the next build, then remove this project's images that
    # the rebuild left unused. The legacy builder prints " ---> ID" after
    # each step; the build stage ends just before the final stage's FROM.
    stage_id=$(awk '/^ ---> [0-9a-f]+$/ { id = $2 } /^Step [0-9]+\/[0-9]+ : FROM \$\{BASE_IMAGE\}/ { print id; exit }' "$TMP/build.log")
    if [ -n "$stage_id" ] && docker tag "$stage_id" "$IMAGE:build-cache" 2>/dev/null; then
        docker image prune -f --filter label=mxgate.stage=build >/dev/null 2>&1 || true
    fi
    docker image prune -f --filter label=org.opencontainers.image.title=mxgate >/dev/null 2>&1 || true
fi
docker image inspect "$IMAGE" >/dev/null 2>&1 || fail "image $IMAGE does not exist"
size=$(docker image inspect -f '{{.Size}}' "$IMAGE")
say "image $IMAGE: $(awk -v s="$size" 'BEGIN { printf "%.1f MB", s / 1e6 }') ($size bytes)"

# ---------------------------------------------------------------------------
step "non-root user"
user=$(docker image inspect -f '{{.Config.User}}' "$IMAGE")
[ "$user" = "10025:10025" ] || fail "image USER is '$user', want 10025:10025"
id_out=$(docker run --rm --network none --entrypoint id "$IMAGE") || fail "cannot run id in the image"
case "$id_out" in
    "uid=10025(mxgate) gid=10025(mxgate)"*) say "runs as: $id_out" ;;
    *) fail "container runs as '$id_out', want uid=10025(mxgate)" ;;
esac

step "check-config in the image"
out=$(docker run --rm --network none "$IMAGE" check-config --config /etc/mxgate/mxgate.toml 2>&1) ||
    fail "check-config failed: $out"
say "$out"

# ---------------------------------------------------------------------------
step "port 25 as non-root with only NET_BIND_SERVICE"
# The default sysctl Docker sets (ip_unprivileged_port_start=0) is put back
# to the kernel default, so only the binary's file capability allows port 25.
docker run -d --name "$C_PORT25" --network none \
    --sysctl net.ipv4.ip_unprivileged_port_start=1024 \
    --cap-drop ALL --cap-add NET_BIND_SERVICE \
    --read-only --tmpfs /tmp \
    "$IMAGE" >/dev/null || fail "cannot start the container"
# wait_healthy CONTAINER WHAT CHECK...: polls CHECK until it succeeds, failing
# early if the container exits, or after TIMEOUT seconds.
wait_healthy() {
    local c=$1 what=$2 deadline=$(($(date +%s) + TIMEOUT))
    shift 2
    until "$@" >/dev/null 2>&1; do
        running "$c" || fail "container exited: $(docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$c")"
        [ "$(date +%s)" -lt "$deadline" ] || fail "$what not 200 within ${TIMEOUT}s"
        sleep 0.5
    done
}
wait_healthy "$C_PORT25" "admin /healthz" docker exec "$C_PORT25" mxgate-healthcheck
banner=$(docker exec "$C_PORT25" bash -c \
    'exec 3<>/dev/tcp/127.0.0.1/25 && read -r -t 10 line <&3 && printf "%s\n" "$line" && printf "QUIT\r\n" >&3' |
    tr -d '\r') || fail "nothing answers on port 25 inside the container"
case "$banner" in
    "220 "*) say "port 25 banner: $banner" ;;
    *) fail "port 25 greeting is '$banner', want 220" ;;
esac
docker rm -f -v "$C_PORT25" >/dev/null

# ---------------------------------------------------------------------------
step "recording sink"
mkdir -p "$TMP/sink"
python3 "$HERE/sink.py" --listen 127.0.0.1 --port 0 --dir "$TMP/sink" \
    --port-file "$TMP/sink.port" >"$TMP/sink.log" 2>&1 &
SINK_PID=$!
wait_until "the sink to listen" test -s "$TMP/sink.port"
SINK_PORT=$(cat "$TMP/sink.port")
say "sink on 127.0.0.1:$SINK_PORT"

step "mxgate container on the host network"
SMTP_PORT=$(free_port)
ADMIN_PORT=$(free_port)
[ "$SMTP_PORT" != "$ADMIN_PORT" ] || ADMIN_PORT=$(free_port)
ADMIN_TOKEN="admin-$SUFFIX-$RANDOM"
docker run -d --name "$C_FLOW" --network host \
    --cap-drop ALL --cap-add NET_BIND_SERVICE \
    -e MXGATE_SMTP__LISTEN="127.0.0.1:$SMTP_PORT" \
    -e MXGATE_SMTP__HOSTNAME="$HOSTNAME_IN_CONTAINER" \
    -e MXGATE_ADMIN__LISTEN="127.0.0.1:$ADMIN_PORT" \
    -e MXGATE_RELAY__DOWNSTREAM="127.0.0.1:$SINK_PORT" \
    -e MXGATE_RELAY__DOMAINS="example.test,proof.test" \
    -e MXGATE_RELAY__TLS=opportunistic \
    -e MXGATE_ADMIN__TOKEN="$ADMIN_TOKEN" \
    "$IMAGE" >/dev/null || fail "cannot start the container"
healthz() {
    python3 - "$ADMIN_PORT" <<'EOF'
import sys, urllib.request
with urllib.request.urlopen("http://127.0.0.1:%s/healthz" % sys.argv[1], timeout=2) as r:
    sys.exit(0 if r.status == 200 else 1)
EOF
}
wait_healthy "$C_FLOW" "GET /healthz on 127.0.0.1:$ADMIN_PORT" healthz
out=$(docker exec "$C_FLOW" mxgate-healthcheck 2>&1) || fail "the image's HEALTHCHECK command fails: $out"
say "up: SMTP 127.0.0.1:$SMTP_PORT, admin 127.0.0.1:$ADMIN_PORT, HEALTHCHECK: $out"

step "send one message over STARTTLS"
TOKEN="proof-$SUFFIX-$(date +%s)"
QUEUE_ID=$(python3 "$HERE/send.py" --port "$SMTP_PORT" --from "$SENDER" --to "$RCPT" \
    --token "$TOKEN" 2>"$TMP/send.log") || fail "sending failed: $(cat "$TMP/send.log")"
say "$(cat "$TMP/send.log"); queue id $QUEUE_ID"

step "message reaches the sink"
has_token() { grep -lF "$TOKEN" "$TMP"/sink/*.eml; }
wait_until "the message to reach the sink" has_token
python3 "$HERE/check_message.py" --dir "$TMP/sink" --token "$TOKEN" \
    --hostname "$HOSTNAME_IN_CONTAINER" --to "$RCPT" --queue-id "$QUEUE_ID" 2>"$TMP/check.log" ||
    fail "$(cat "$TMP/check.log")"
sed 's/^/    /' "$TMP/check.log"

step "quarantine: a zip holding a program is held, found, released once"
python3 "$HERE/quarantine.py" --port "$SMTP_PORT" --admin "$ADMIN_PORT" --admin-token "$ADMIN_TOKEN" \
    --sink-dir "$TMP/sink" >"$TMP/quarantine.log" 2>&1 || fail "$(cat "$TMP/quarantine.log")"
sed 's/^/    /' "$TMP/quarantine.log"

step "docker stop (SIGTERM)"
s0=$(date +%s)
docker stop -t 45 "$C_FLOW" >/dev/null || fail "docker stop failed"
code=$(docker inspect -f '{{.State.ExitCode}}' "$C_FLOW")
[ "$code" = 0 ] || fail "exit status after SIGTERM is $code, want 0"
say "stopped cleanly in $(($(date +%s) - s0))s"

# ---------------------------------------------------------------------------
step "compose example (packaging/docker-compose.yml)"
# Published on a free loopback port only; hardening as in the file
# (read-only, ALL capabilities dropped but NET_BIND_SERVICE, no-new-privileges).
if ! command -v docker-compose >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null ||
        fail "cannot install docker-compose"
fi
COMPOSE_PROJECT="mxgateproof${SUFFIX//-/}"
PUB_PORT=$(free_port)
compose() { SMTP_PUBLISH="127.0.0.1:$PUB_PORT" docker-compose -p "$COMPOSE_PROJECT" -f "$ROOT/packaging/docker-compose.yml" "$@"; }
compose config -q || fail "docker-compose config rejects the file"
if [ "$IMAGE" != mxgate ]; then docker tag "$IMAGE" mxgate; fi
compose up -d --no-build >"$TMP/compose.log" 2>&1 || fail "docker-compose up failed: $(cat "$TMP/compose.log")"
banner() {
    python3 - "$PUB_PORT" <<'EOF'
import socket, sys
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5) as s:
    line = s.makefile("rb").readline().decode().strip()
    s.sendall(b"QUIT\r\n")
print(line)
sys.exit(0 if line.startswith("220 ") else 1)
EOF
}
wait_until "a 220 greeting on the published port 127.0.0.1:$PUB_PORT" banner
say "published port 127.0.0.1:$PUB_PORT: $(banner)"
out=$(compose exec -T mxgate mxgate-healthcheck 2>&1) || fail "HEALTHCHECK in the compose service fails: $out"
compose down -v >>"$TMP/compose.log" 2>&1 || fail "docker-compose down failed: $(cat "$TMP/compose.log")"
COMPOSE_PROJECT=""

CURRENT=""
say "all checks passed in $(($(date +%s) - T0))s"
echo "docker proof: 1 passed, 0 failed"

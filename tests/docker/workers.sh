#!/usr/bin/env bash
# Container-level proof of remote scanning (packaging/docker-compose.workers.yml):
# a gateway whose attachment and phishing stages run on worker containers,
# a clamd container for its clamav stage, and a recording sink, under a
# project name of its own.
#
#   1. a clean message reaches the sink
#   2. a message with the EICAR test file attached (base64, named notes.txt)
#      is answered 250 and quarantined with CLAMAV_VIRUS: clamd found it in
#      the decoded MIME part
#   3. tests/docker/workers_mail.py sends a stream of clean messages, zips
#      holding a program (the attachment stage quarantines them) and EICAR
#      attachments, retrying every 4xx later, as senders do
#   4. worker1 gets `docker kill` mid-stream: mail keeps being acknowledged
#   5. a third worker is started (the test's gateway lists it from the
#      start): it takes scans, mail keeps being acknowledged
#   6. every running worker is killed: the gateway answers 451 "not
#      scanned"; a 250 for a message whose DATA began after the kill and
#      was answered before the workers came back is a failure
#   7. the workers start again: mail is acknowledged again
#   8. clamd gets `docker kill`: the clamav stage's on_error (tempfail)
#      answers 451 naming CLAMAV_ERROR; again no 250 in that window
#   9. clamd starts again; the sender stops and retries what it owes
#  10. every acknowledged clean message is at the sink; no zip-with-program
#      or EICAR message is, each of them is in the quarantine with its
#      ATTACHMENT_* or CLAMAV_VIRUS symbol
#
# Needs the image `mxgate` (built here as in tests/docker/proof.sh when
# missing, or always with WORKERS_BUILD=1); builds mxgate-clamd
# (packaging/docker/clamd) and the sink image FROM the local
# debian:bookworm-slim. SMTP and the admin API are published on free
# 127.0.0.1 ports; the workers and clamd have fixed addresses in the
# gateway's /etc/hosts, so no lookup of a killed container's name leaves
# the compose network. Prints "docker workers: N passed, 0 failed"; on
# failure what failed and the containers' logs, exit 1. Always removes the
# project (down -v).
#
# Environment: WORKERS_RATE new messages/s (20), WORKERS_PHASE acks each
# phase must add (60), WORKERS_TIMEOUT seconds for each wait (60),
# WORKERS_BUDGET seconds for the whole run once images exist (240),
# WORKERS_BUILD=1 rebuild the mxgate image, WORKERS_LOGS a directory to
# keep every container's log in.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$ROOT/tests/docker"
# shellcheck source=tests/docker/lib.sh
. "$HERE/lib.sh"
FILE="$ROOT/packaging/docker-compose.workers.yml"
RATE=${WORKERS_RATE:-20}
PHASE=${WORKERS_PHASE:-60}
TIMEOUT=${WORKERS_TIMEOUT:-60}
BUDGET=${WORKERS_BUDGET:-240}
LOGS=${WORKERS_LOGS:-}

TMP=$(mktemp -d /tmp/mxgate-docker-workers.XXXXXX)
SUFFIX="$$$RANDOM"
PROJECT="mxgateworkers$SUFFIX"
RUN_ID="run$SUFFIX"
ADMIN_TOKEN="workers-admin-$SUFFIX"
SENDER_PID=""
UP=0
PASSED=0
CURRENT=""
T0=$(date +%s)
END=$((T0 + BUDGET))

say() { printf '[docker workers %3ds] %s\n' "$(($(date +%s) - T0))" "$*"; }
step() { CURRENT=$1; say "$1"; }
pass() { PASSED=$((PASSED + 1)); say "ok: $*"; }
mail() { python3 "$HERE/workers_mail.py" "$@"; }

compose() {
    GATEWAY_SMTP="127.0.0.1:$PS" GATEWAY_ADMIN="127.0.0.1:$PA" RESTART=no \
        WORKER_SECRET="workers-secret-$SUFFIX" ADMIN_TOKEN="$ADMIN_TOKEN" GATEWAY_CONFIG="$TMP/gateway.toml" \
        docker-compose -p "$PROJECT" -f "$FILE" -f "$TMP/test.yml" "$@"
}

trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
    echo "docker workers: FAILED at step '${CURRENT:-?}': $*" >&2
    [ -s "$TMP/send/progress.json" ] && echo "sender: $(cat "$TMP/send/progress.json")" >&2
    [ -s "$TMP/sender.log" ] && sed 's/^/    /' "$TMP/sender.log" >&2
    if [ -s "$TMP/send/tempfail.log" ]; then
        echo "---- last 4xx and broken sessions the sender saw ----" >&2
        tail -5 "$TMP/send/tempfail.log" | cut -c1-400 | sed 's/^/    /' >&2
    fi
    if [ "$UP" = 1 ]; then
        echo "---- container logs: last 20 WARN/ERROR lines, then the last 15 lines ----" >&2
        local s
        for s in gateway worker1 worker2 worker3 clamd sink; do
            echo "-- $s --" >&2
            compose logs --no-color "$s" >"$TMP/$s.log" 2>&1
            grep -E ' (WARN|ERROR) ' "$TMP/$s.log" | tail -20 | cut -c1-400 | sed 's/^/    /' >&2
            echo "    ..." >&2
            tail -15 "$TMP/$s.log" | cut -c1-400 | sed 's/^/    /' >&2
        done
    fi
    echo "docker workers: $PASSED passed, 1 failed"
    exit 1
}

container() { compose ps -q "$1"; }
stopped() { [ "$(docker container inspect -f '{{.State.Running}}' "$1")" = false ]; }

# kill_services SERVICE...: docker kill (SIGKILL) and wait until each is gone.
kill_services() {
    local s c
    for s in "$@"; do
        c=$(container "$s")
        [ -n "$c" ] || fail "no container for $s"
        docker kill "$c" >/dev/null || fail "docker kill $s failed"
        wait_until "$s to stop" stopped "$c"
    done
}

# write_override PREFIX: fixed addresses for the workers and clamd, the
# gateway's /etc/hosts entries for them, and worker3 (started later).
write_override() {
    local p=$1
    cat <<EOF
networks:
  scan:
    ipam:
      config:
        - subnet: $p.0/24
services:
  gateway:
    extra_hosts: ["worker1:$p.11", "worker2:$p.12", "worker3:$p.13", "clamd:$p.20"]
  worker1:
    networks: {scan: {ipv4_address: $p.11}}
  worker2:
    networks: {scan: {ipv4_address: $p.12}}
  clamd:
    networks: {scan: {ipv4_address: $p.20}}
  worker3:
    image: mxgate
    restart: "no"
    command: [worker, --config, /etc/mxgate/worker.toml]
    environment:
      MXGATE_WORKER__SECRET: "workers-secret-$SUFFIX"
    volumes:
      - $ROOT/packaging/docker/workers/worker.toml:/etc/mxgate/worker.toml:ro
    networks: {scan: {ipv4_address: $p.13}}
    cap_drop: [ALL]
    cap_add: [NET_BIND_SERVICE]
    security_opt: ["no-new-privileges:true"]
    read_only: true
    tmpfs: [/tmp]
    healthcheck: {disable: true}
EOF
}

# more_acks WHAT: the sender must get PHASE more 250s from here on.
more_acks() {
    sender_alive
    local want=$(($(progress acked) + PHASE))
    wait_until "$PHASE more acknowledged messages ($1)" acked_at_least "$want"
    pass "$PHASE more acknowledged: $1 (so far $(progress acked) acknowledged, $(progress tempfail) 4xx)"
}

# more_tempfails N WHAT: the sender must get N more 4xx answers.
more_tempfails() {
    sender_alive
    local want=$(($(progress tempfail) + $1))
    wait_until "$1 more 4xx answers ($2)" tempfail_at_least "$want"
}

# tempfails_with TEXT: one message, answered 451 naming TEXT.
tempfails_with() {
    local reply
    reply=$(mail one --port "$PS" --kind clean --token "probe-$SUFFIX-$RANDOM") || fail "the session broke"
    case "$reply" in
        "451 "*"not scanned"*"$1"*) say "reply: $reply" ;;
        *) fail "wanted 451 naming $1, got: $reply" ;;
    esac
}

# workers_json: the gateway's view of its workers.
workers_json() {
    python3 - "$PA" "$ADMIN_TOKEN" <<'EOF'
import json, sys, urllib.request
req = urllib.request.Request("http://127.0.0.1:%s/api/v1/pipeline/workers" % sys.argv[1],
                             headers={"Authorization": "Bearer " + sys.argv[2]})
print(json.dumps(json.load(urllib.request.urlopen(req, timeout=5))))
EOF
}
# worker_served ADDR MIN: ADDR served at least MIN scans (all stages) and is up.
worker_served() {
    workers_json | python3 -c '
import json, sys
ws = [w for w in json.load(sys.stdin) if w["addr"] == sys.argv[1]]
sys.exit(0 if ws and all(w["up"] for w in ws) and sum(w["served"] for w in ws) >= int(sys.argv[2]) else 1)' "$1" "$2"
}

# sink_tokens: every workers-token at the sink, one per line.
sink_tokens() {
    docker exec "$(container sink)" grep -rhoa --include='*.eml' 'workers-token: [A-Za-z0-9-]*' /srv/mail |
        cut -d' ' -f2 | sort -u
}
at_sink() { sink_tokens | grep -qxF "$1"; }
healthy() { [ "$(docker container inspect -f '{{.State.Health.Status}}' "$(container "$1")")" = healthy ]; }

# ---------------------------------------------------------------------------
step "prerequisites"
command -v docker >/dev/null || fail "docker CLI not found"
docker info >/dev/null 2>&1 || fail "docker engine not reachable"
if ! command -v docker-compose >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null ||
        fail "cannot install docker-compose"
fi
python3 -c 'import sys; assert sys.version_info >= (3, 8)' || fail "python3 >= 3.8 needed"

step "images"
if ! docker image inspect debian:bookworm-slim >/dev/null 2>&1; then
    bash "$ROOT/packaging/docker/build-base-images.sh" || fail "build-base-images.sh failed"
fi
if [ "${WORKERS_BUILD:-0}" = 1 ] || ! docker image inspect mxgate >/dev/null 2>&1; then
    say "building the mxgate image as tests/docker/proof.sh does"
    b0=$(date +%s)
    docker build --network host -t mxgate "$ROOT" >"$TMP/build.log" 2>&1 ||
        { tail -40 "$TMP/build.log" >&2; fail "docker build of mxgate failed"; }
    say "mxgate image built in $(($(date +%s) - b0))s"
    # As tests/docker/proof.sh: keep the build stage as mxgate:build-cache,
    # drop the stage and final images this rebuild left unused.
    stage_id=$(awk '/^ ---> [0-9a-f]+$/ { id = $2 } /^Step [0-9]+\/[0-9]+ : FROM \$\{BASE_IMAGE\}/ { print id; exit }' "$TMP/build.log")
    if [ -n "$stage_id" ] && docker tag "$stage_id" mxgate:build-cache 2>/dev/null; then
        docker image prune -f --filter label=mxgate.stage=build >/dev/null 2>&1 || true
    fi
    docker image prune -f --filter label=org.opencontainers.image.title=mxgate >/dev/null 2>&1 || true
fi
b0=$(date +%s)
docker build --network host -t mxgate-clamd "$ROOT/packaging/docker/clamd" >"$TMP/clamd-build.log" 2>&1 ||
    { tail -40 "$TMP/clamd-build.log" >&2; fail "building the clamd image failed"; }
say "mxgate-clamd image ready in $(($(date +%s) - b0))s"
docker build --network host -t mxgate-test-sink -f "$ROOT/packaging/docker/cluster/sink.Dockerfile" \
    "$ROOT/packaging/docker/cluster" >"$TMP/sink-build.log" 2>&1 ||
    { tail -20 "$TMP/sink-build.log" >&2; fail "building the sink image failed"; }
# The budget starts once the images exist.
T0=$(date +%s)
END=$((T0 + BUDGET))

step "compose up (project $PROJECT)"
PS=$(free_port)
PA=$(free_port)
[ "$PS" != "$PA" ] || PA=$(free_port)
# The test's gateway also lists worker3, which starts later (step 5).
sed 's/^remote = \["worker1:7500", "worker2:7500"\]/remote = ["worker1:7500", "worker2:7500", "worker3:7500"]/' \
    "$ROOT/packaging/docker/workers/gateway.toml" >"$TMP/gateway.toml"
[ "$(grep -c '"worker3:7500"' "$TMP/gateway.toml")" = 2 ] ||
    fail "packaging/docker/workers/gateway.toml: expected two remote = [\"worker1:7500\", \"worker2:7500\"] lines"
chmod 0644 "$TMP/gateway.toml"
PREFIX=$(free_subnet) || fail "no free 10.x.y.0/24 for the compose network"
write_override "$PREFIX" >"$TMP/test.yml"
compose config -q || fail "docker-compose rejects $FILE with $TMP/test.yml"
UP=1
compose up -d --no-build gateway worker1 worker2 clamd sink >"$TMP/up.log" 2>&1 ||
    fail "docker-compose up failed: $(cat "$TMP/up.log")"
say "network ${PROJECT}_scan: $PREFIX.0/24; SMTP 127.0.0.1:$PS, admin 127.0.0.1:$PA"

step "gateway and clamd ready"
wait_until "clamd's HEALTHCHECK (PING)" healthy clamd
wait_until "the gateway's admin /healthz" compose exec -T gateway mxgate-healthcheck
wait_until "a 220 greeting on 127.0.0.1:$PS" greets "$PS"
pass "gateway up, clamd answers PING"

step "a clean message reaches the sink"
TOKEN="clean-$SUFFIX"
reply=$(mail one --port "$PS" --kind clean --token "$TOKEN") || fail "sending failed"
case "$reply" in 250\ *) ;; *) fail "wanted 250, got: $reply" ;; esac
wait_until "the clean message at the sink" at_sink "$TOKEN"
pass "clean message: $reply; at the sink"

step "EICAR attachment: 250, quarantined with CLAMAV_VIRUS"
EICAR="eicar-$SUFFIX"
reply=$(mail one --port "$PS" --kind eicar --token "$EICAR") || fail "sending failed"
case "$reply" in 250\ *) ;; *) fail "wanted 250, got: $reply" ;; esac
symbols=$(mail held --admin "$PA" --admin-token "$ADMIN_TOKEN" --token "$EICAR") ||
    fail "the EICAR message is not in the quarantine"
case " $symbols " in *" CLAMAV_VIRUS "*) ;; *) fail "quarantined with $symbols, not CLAMAV_VIRUS" ;; esac
qid=$(sed -n 's/.*queued as \([^ ]*\).*/\1/p' <<<"$reply")
list=$(compose exec -T gateway mxgate quarantine list --config /etc/mxgate/mxgate.toml 2>&1) ||
    fail "mxgate quarantine list failed: $list"
[ -z "$qid" ] || grep -qF "$qid" <<<"$list" || fail "mxgate quarantine list does not show $qid: $list"
pass "EICAR message: $reply; held with $symbols"

step "a stream of mail, all workers up"
mkdir -p "$TMP/send"
# Twelve sessions at once: with clamd's container gone, its address drops
# connections rather than refusing them, and each message waits for the
# adapter's connect limit (2 s) before its 451.
mail stream --port "$PS" --dir "$TMP/send" --run-id "$RUN_ID" --rate "$RATE" --threads 12 --drain "$TIMEOUT" \
    >"$TMP/sender.log" 2>&1 &
SENDER_PID=$!
wait_until "the sender to start" test -s "$TMP/send/progress.json"
more_acks "worker1 and worker2"

step "docker kill worker1"
kill_services worker1
more_acks "worker1 dead"

step "start a third worker"
compose up -d --no-build worker3 >>"$TMP/up.log" 2>&1 || fail "starting worker3 failed: $(tail -5 "$TMP/up.log")"
wait_until "worker3 to serve scans" worker_served worker3:7500 10
more_acks "worker2 and worker3"

step "kill every running worker: 451, nothing passes unscanned"
kill_services worker2 worker3
T_NOWORKER=$(now)
more_tempfails 20 "no worker alive"
tempfails_with "_ERROR"
T_WORKERS=$(now)
pass "451 while no worker runs"

step "start the workers again"
compose start worker1 worker2 worker3 >>"$TMP/up.log" 2>&1 || fail "starting the workers failed"
more_acks "workers back"

step "docker kill clamd: the clamav stage's on_error (tempfail)"
kill_services clamd
T_NOCLAMD=$(now)
more_tempfails 12 "clamd dead"
tempfails_with "CLAMAV_ERROR"
T_CLAMD=$(now)
pass "451 naming CLAMAV_ERROR while clamd is down"

step "start clamd again"
compose start clamd >>"$TMP/up.log" 2>&1 || fail "starting clamd failed"
wait_until "clamd's HEALTHCHECK" healthy clamd
more_acks "clamd back"

step "stop sending; every owed message retried until acknowledged"
touch "$TMP/send/stop"
TIMEOUT=$((TIMEOUT + 15)) wait_until "the sender to finish" sender_done
wait "$SENDER_PID" || fail "the sender did not get every message acknowledged: $(cat "$TMP/sender.log")"
SENDER_PID=""
say "$(cat "$TMP/sender.log")"

step "where every acknowledged message went"
clean=$(awk -F'\t' '$2 == "clean" { print $1 }' "$TMP/send/acked.tsv" | sort -u)
all_clean_delivered() { sink_tokens >"$TMP/delivered" && [ -z "$(comm -23 <(echo "$clean") "$TMP/delivered")" ]; }
# Mail queued behind a slow delivery may wait for a retry (queue.retry_initial).
deadline=$(($(date +%s) + TIMEOUT))
until all_clean_delivered; do
    [ "$(date +%s)" -lt "$deadline" ] && [ "$(date +%s)" -lt "$END" ] || break
    sleep 1
done
sink_tokens >"$TMP/delivered"
! grep -qxF "$EICAR" "$TMP/delivered" || fail "the first EICAR message reached the sink"
out=$(mail verify --dir "$TMP/send" --delivered "$TMP/delivered" --admin "$PA" --admin-token "$ADMIN_TOKEN" \
    --forbid "$T_NOWORKER,$T_WORKERS" --forbid "$T_NOCLAMD,$T_CLAMD" 2>&1) || fail "$out"
pass "$out"

step "the gateway sees every worker in service"
all_up() {
    workers_json | python3 -c '
import json, sys
ws = json.load(sys.stdin)
sys.exit(0 if len(ws) == 6 and all(w["up"] for w in ws) else 1)'
}
wait_until "all 3 workers of both stages up" all_up
workers_json | python3 -c '
import json, sys
for w in json.load(sys.stdin):
    print("    %-10s %-13s up=%s served=%d failed=%d" % (w["stage"], w["addr"], w["up"], w["served"], w["failed"]))'
pass "3 workers in service for attachment and phishing"

CURRENT=""
say "all checks passed in $(($(date +%s) - T0))s"
echo "docker workers: $PASSED passed, 0 failed"

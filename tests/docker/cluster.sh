#!/usr/bin/env bash
# Container-level proof of the cluster (packaging/docker-compose.cluster.yml):
# two gateways, three storage nodes (replicas 2, write_quorum 2) and a
# recording sink as the downstream, under a project name of its own.
#
#   1. the gateways answer (each waits for write_quorum nodes) and
#      `mxgate cluster status` shows 3 nodes up
#   2. tests/docker/cluster_send.py sends to both gateways without pause,
#      recording every 250 and retrying every 4xx later, as senders do
#   3. storage1 gets `docker kill` (SIGKILL): mail keeps being acknowledged
#   4. storage2 is cut off the compose network: one node left, fewer than
#      write_quorum, so the gateways must answer 4xx; a 250 for a message
#      whose DATA began after the cut and was answered before the heal is a
#      failure (it cannot be on two nodes)
#   5. storage2 is connected again: mail is acknowledged again
#   6. storage1 is started again (same volume): mail is acknowledged
#   7. the sender stops and retries what it still owes until all got a 250
#   8. every token that got a 250 reaches the sink (duplicates are counted
#      and printed), and `mxgate cluster status --json` in each gateway
#      shows all three nodes up
#
# Needs the image `mxgate` (built here as in tests/docker/proof.sh when
# missing); the sink image is built FROM the local debian:bookworm-slim.
# SMTP is published on free 127.0.0.1 ports; all other traffic stays on the
# compose network: the gateways run no DNS-based scan stages here, and the
# storage nodes' names come from /etc/hosts (see "compose up").
# Prints "docker cluster: 1 passed, 0 failed"; on failure what failed and
# the containers' logs, exit 1. Always removes the project (down -v).
#
# Environment: CLUSTER_RATE new messages/s (40), CLUSTER_PHASE acks each
# phase must add (300), CLUSTER_TIMEOUT seconds for each wait (60),
# CLUSTER_BUDGET seconds for the whole run once images exist (280),
# CLUSTER_CUT seconds storage2 stays cut off at least (5), CLUSTER_LOGS a
# directory to keep every container's log in.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$ROOT/tests/docker"
# shellcheck source=tests/docker/lib.sh
. "$HERE/lib.sh"
FILE="$ROOT/packaging/docker-compose.cluster.yml"
RATE=${CLUSTER_RATE:-40}
PHASE=${CLUSTER_PHASE:-300}
TIMEOUT=${CLUSTER_TIMEOUT:-60}
BUDGET=${CLUSTER_BUDGET:-280}
CUT=${CLUSTER_CUT:-5}
LOGS=${CLUSTER_LOGS:-}

TMP=$(mktemp -d /tmp/mxgate-docker-cluster.XXXXXX)
SUFFIX="$$$RANDOM"
PROJECT="mxgatecluster$SUFFIX"
RUN_ID="run$SUFFIX"
SENDER_PID=""
UP=0
CURRENT=""
T0=$(date +%s)
END=$((T0 + BUDGET))

say() { printf '[docker cluster %3ds] %s\n' "$(($(date +%s) - T0))" "$*"; }
step() { CURRENT=$1; say "$1"; }

compose() {
    GATEWAY1_SMTP="127.0.0.1:$P1" GATEWAY2_SMTP="127.0.0.1:$P2" RESTART=no \
        CLUSTER_SECRET="cluster-proof-secret-$SUFFIX" GATEWAY_CONFIG="$TMP/gateway.toml" \
        docker-compose -p "$PROJECT" -f "$FILE" -f "$TMP/hosts.yml" "$@"
}

trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
    echo "docker cluster: FAILED at step '${CURRENT:-?}': $*" >&2
    [ -s "$TMP/send/progress.json" ] && echo "sender: $(cat "$TMP/send/progress.json")" >&2
    [ -s "$TMP/sender.log" ] && sed 's/^/    /' "$TMP/sender.log" >&2
    if [ -s "$TMP/send/tempfail.log" ]; then
        echo "---- last 4xx and connection errors the sender saw ----" >&2
        tail -5 "$TMP/send/tempfail.log" | sed 's/^/    /' >&2
    fi
    if [ "$UP" = 1 ]; then
        # Warnings and errors first: at this rate the tail is mostly
        # one INFO line per message.
        echo "---- container logs: last 20 WARN/ERROR lines, then the last 15 lines ----" >&2
        local s
        for s in storage1 storage2 storage3 gateway1 gateway2 sink; do
            echo "-- $s --" >&2
            compose logs --no-color "$s" >"$TMP/$s.log" 2>&1
            grep -E ' (WARN|ERROR) ' "$TMP/$s.log" | tail -20 | cut -c1-400 | sed 's/^/    /' >&2
            echo "    ..." >&2
            tail -15 "$TMP/$s.log" | cut -c1-400 | sed 's/^/    /' >&2
        done
    fi
    echo "docker cluster: 0 passed, 1 failed"
    exit 1
}

container() { compose ps -q "$1"; }

# write_hosts_override PREFIX: compose override giving storage node N the
# address PREFIX.1N and every mxgate container an /etc/hosts entry for each.
write_hosts_override() {
    local p=$1 n s
    printf 'networks:\n  cluster:\n    ipam:\n      config:\n        - subnet: %s.0/24\n' "$p"
    printf 'services:\n'
    for s in storage1 storage2 storage3 gateway1 gateway2; do
        printf '  %s:\n    extra_hosts:\n' "$s"
        for n in 1 2 3; do printf '      - "storage%s:%s.1%s"\n' "$n" "$p" "$n"; done
        case $s in
            storage?) printf '    networks:\n      cluster:\n        ipv4_address: %s.1%s\n' "$p" "${s#storage}" ;;
        esac
    done
}

# more_acks WHAT: the sender must get PHASE more 250s from here on.
more_acks() {
    sender_alive
    local want=$(($(progress acked) + PHASE))
    wait_until "$PHASE more acknowledged messages ($1)" acked_at_least "$want"
    say "acknowledged so far: $(progress acked) ($(progress tempfail) 4xx, $(progress errors) connection errors)"
}

# all_up GATEWAY: cluster status --json in the gateway lists 3 nodes, all
# up, and the gateway accepts mail.
all_up() {
    compose exec -T "$1" mxgate cluster status --json --config /etc/mxgate/mxgate.toml >"$TMP/status.json" 2>&1 &&
        python3 - "$TMP/status.json" <<'EOF'
import json, sys
v = json.load(open(sys.argv[1]))
n = v["nodes"]
sys.exit(0 if len(n) == 3 and all(x["state"] == "up" for x in n) and v["accepting_mail"] else 1)
EOF
}

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
if ! docker image inspect mxgate >/dev/null 2>&1; then
    say "image mxgate missing: building it as tests/docker/proof.sh does"
    docker build --network host -t mxgate "$ROOT" >"$TMP/build.log" 2>&1 ||
        { tail -40 "$TMP/build.log" >&2; fail "docker build of mxgate failed"; }
fi
docker build --network host -t mxgate-test-sink -f "$ROOT/packaging/docker/cluster/sink.Dockerfile" \
    "$ROOT/packaging/docker/cluster" >"$TMP/sink-build.log" 2>&1 ||
    { tail -20 "$TMP/sink-build.log" >&2; fail "building the sink image failed"; }
# The budget starts once the images exist.
T0=$(date +%s)
END=$((T0 + BUDGET))

step "compose up (project $PROJECT)"
P1=$(free_port)
P2=$(free_port)
[ "$P1" != "$P2" ] || P2=$(free_port)
# SPF, DKIM, DMARC and ARC would look up the test's domains in DNS outside
# the compose network; the cluster does not depend on them.
{ cat "$ROOT/packaging/docker/cluster/gateway.toml"; printf '\n[scan]\nstages = ["attachment", "phishing", "heuristics"]\n'; } \
    >"$TMP/gateway.toml"
chmod 0644 "$TMP/gateway.toml"
# Docker's DNS forwards a name it does not know, such as a killed node's, to
# the host's resolvers. Fixed addresses in /etc/hosts keep every lookup of
# a storage node inside the containers; a dead node is then an address that
# no longer answers, as when a machine is gone.
PREFIX=$(free_subnet) || fail "no free 10.x.y.0/24 for the compose network"
write_hosts_override "$PREFIX" >"$TMP/hosts.yml"
compose config -q || fail "docker-compose rejects $FILE with $TMP/hosts.yml"
UP=1
compose up -d --no-build >"$TMP/up.log" 2>&1 || fail "docker-compose up failed: $(cat "$TMP/up.log")"
NET="${PROJECT}_cluster"
docker network inspect "$NET" >/dev/null 2>&1 || fail "network $NET not found"
say "network $NET: $PREFIX.0/24"
S1=$(container storage1)
S2=$(container storage2)

step "gateways ready"
for g in gateway1 gateway2; do
    wait_until "$g's admin /healthz (it waits for write_quorum nodes)" compose exec -T "$g" mxgate-healthcheck
    wait_until "$g to list 3 nodes up" all_up "$g"
done
wait_until "a 220 greeting on 127.0.0.1:$P1" greets "$P1"
wait_until "a 220 greeting on 127.0.0.1:$P2" greets "$P2"
say "gateway1 127.0.0.1:$P1, gateway2 127.0.0.1:$P2"

step "mail flows through both gateways"
mkdir -p "$TMP/send"
python3 "$HERE/cluster_send.py" --gateway "127.0.0.1:$P1" --gateway "127.0.0.1:$P2" --dir "$TMP/send" \
    --run-id "$RUN_ID" --rate "$RATE" --drain "$TIMEOUT" >"$TMP/sender.log" 2>&1 &
SENDER_PID=$!
wait_until "the sender to start" test -s "$TMP/send/progress.json"
more_acks "all nodes up"

step "docker kill storage1"
docker kill "$S1" >/dev/null || fail "docker kill failed"
T_KILL=$(now)
more_acks "storage1 dead, 2 of 3 nodes"

step "cut storage2 off the network"
docker network disconnect "$NET" "$S2" || fail "docker network disconnect failed"
T_CUT=$(now)
want=$(($(progress tempfail) + 100))
wait_until "100 more 4xx answers with 1 of 3 nodes reachable" tempfail_at_least "$want"
# Long enough for deliveries and lease renewals to meet the outage too.
held=$(python3 -c 'import sys,time; print(max(0.0, float(sys.argv[1]) - (time.time() - float(sys.argv[2]))))' "$CUT" "$T_CUT")
sleep "$held"
say "4xx answers so far: $(progress tempfail)"

step "reconnect storage2"
T_HEAL=$(now)
docker network connect --ip "$PREFIX.12" --alias storage2 "$NET" "$S2" || fail "docker network connect failed"
more_acks "storage2 back, 2 of 3 nodes"

step "docker start storage1"
docker start "$S1" >/dev/null || fail "docker start failed"
more_acks "storage1 back, 3 of 3 nodes"

step "stop sending; every owed message retried until acknowledged"
touch "$TMP/send/stop"
TIMEOUT=$((TIMEOUT + 15)) wait_until "the sender to finish" sender_done
wait "$SENDER_PID" || fail "the sender did not get every message acknowledged: $(cat "$TMP/sender.log")"
SENDER_PID=""
say "$(cat "$TMP/sender.log")"

step "no 250 while only one node was reachable"
bad=$(awk -F'\t' -v cut="$T_CUT" -v heal="$T_HEAL" '$3 > cut && $4 < heal' "$TMP/send/acked.tsv")
[ -z "$bad" ] || fail "250 for messages whose DATA began after the cut and ended before the heal:
$bad"
say "none (cut at $T_CUT, healed at $T_HEAL)"
# For the record, not a verdict: when the sender saw 4xx around each event.
python3 - "$TMP/send/tempfail.log" "$T_KILL" "$T_CUT" "$T_HEAL" <<'EOF'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
fails = [(float(r[0]), r[4]) for r in rows if r[3] == "tempfail"]
kill, cut, heal = map(float, sys.argv[2:5])
def span(lo, hi, name):
    t = [x for x, _ in fails if lo < x <= hi]
    where = " (first +%.1fs, last +%.1fs)" % (t[0] - lo, t[-1] - lo) if t else ""
    print("    4xx %s: %d%s" % (name, len(t), where))
span(0, kill, "before the kill")
span(kill, cut, "after the kill, before the cut")
span(cut, heal, "during the cut")
span(heal, float("inf"), "after the heal")
if fails:
    print("    e.g. " + fails[0][1])
EOF

step "every acknowledged message reaches the sink"
SINK=$(container sink)
cut -f1 "$TMP/send/acked.tsv" | sort -u >"$TMP/acked.tokens"
delivered() {
    docker exec "$SINK" grep -rhoa --include='*.eml' 'cluster-token: [A-Za-z0-9-]*' /srv/mail |
        cut -d' ' -f2 | sort >"$TMP/delivered.all"
    sort -u "$TMP/delivered.all" >"$TMP/delivered.tokens"
    [ -z "$(comm -23 "$TMP/acked.tokens" "$TMP/delivered.tokens")" ]
}
# Mail queued while nodes were down may wait for a retry (queue.retry_initial).
deadline=$(($(date +%s) + 2 * TIMEOUT))
[ "$deadline" -le "$END" ] || deadline=$END
until delivered; do
    [ "$(date +%s)" -lt "$deadline" ] || break
    sleep 1
done
missing=$(comm -23 "$TMP/acked.tokens" "$TMP/delivered.tokens" | wc -l)
[ "$missing" = 0 ] || fail "$missing of $(wc -l <"$TMP/acked.tokens") acknowledged messages are not at the sink, e.g.
$(comm -23 "$TMP/acked.tokens" "$TMP/delivered.tokens" | head -10)"
unseen=$(comm -13 "$TMP/acked.tokens" "$TMP/delivered.tokens" | wc -l)
total=$(wc -l <"$TMP/delivered.all")
unique=$(wc -l <"$TMP/delivered.tokens")
say "$(wc -l <"$TMP/acked.tokens") acknowledged, all delivered; $total deliveries in all"
say "duplicates: $((total - unique)) extra deliveries of $(uniq -d "$TMP/delivered.all" | wc -l) messages"
uniq -c "$TMP/delivered.all" | awk '$1 > 1 { print "    " $2 " delivered " $1 " times" }' | head -20
say "delivered though the sender saw no 250 (connection broke after DATA): $unseen"

step "cluster status: all three nodes up"
for g in gateway1 gateway2; do
    wait_until "$g to show 3 nodes up" all_up "$g"
done
compose exec -T gateway1 mxgate cluster status --config /etc/mxgate/mxgate.toml | sed 's/^/    /'

CURRENT=""
say "all checks passed in $(($(date +%s) - T0))s"
echo "docker cluster: 1 passed, 0 failed"

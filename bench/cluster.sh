#!/usr/bin/env bash
# Cluster benchmark: mxgate with the storage cluster (3 storage nodes on
# loopback, replicas 2, write_quorum 2) beside mxgate single-node, then what
# a storage node's failure and return cost. Method: bench/cluster.md.
#
# 1. Relay throughput: smtp-source -> mxgate -> smtp-sink, 10 KB messages,
#    the gateway either single-node (embedded store) or a gateway of the
#    cluster; runs alternate (single cluster single cluster ...), each on
#    fresh storage. Ratio of the medians cluster/single (target >= 0.60).
# 2. Failover: `bench_cluster failover` keeps a cluster gateway loaded and
#    records the time and reply code of every message; it SIGKILLs one
#    storage node midway. The 4xx window after the kill (target <= 2 s),
#    the stall, the rates before and after; then every 250 must reach the
#    sink.
# 3. Catch-up: one node stopped, `bench_cluster write` enqueues RECORDS
#    entries (~1 KB) through the cluster client, the node is started again
#    and `bench_cluster catchup` times it until caught up (target < 30 s
#    for 100000 records), then reads back everything it owns from it alone.
#
# Usage:  bench/cluster.sh                   full run (figures quoted in bench/cluster.md)
#         BENCH_QUICK=1 bench/cluster.sh     small counts, ~2-3 minutes + build (CI)
#
# Environment (defaults: full | quick):
#   BENCH_C_N            messages per throughput run            [20000 | 5000]
#   BENCH_C_REPEAT       throughput runs per system                     [3 | 2]
#   BENCH_C_SIZE         payload octets                                  [10240]
#   BENCH_SESSIONS       concurrent SMTP sessions                           [20]
#   BENCH_C_FAILOVER_SECS  length of the failover load, seconds        [60 | 20]
#   BENCH_C_KILL_AT      when the node is killed, seconds into it       [20 | 8]
#   BENCH_C_RECORDS      records written while a node is down  [100000 | 50000]
#   BENCH_C_PARTS        parts to run        ["throughput failover catchup"]
#   BENCH_QUIET_WAIT     before each timed part, wait up to this many seconds
#                        for other processes to use < 10 % of the CPU  [30 | 0]
#   BENCH_RUN_TIMEOUT    seconds allowed for one throughput run      [300 | 120]
#   Ports (127.0.0.1): BENCH_C_MX_PORT [2545] BENCH_C_ADMIN_PORT [8045]
#     BENCH_C_SINK_PORT [2745] BENCH_C_NODE_PORTS ["7461 7462 7463"]
#   MXGATE_BIN           [<repo>/target/release/mxgate]
#   BENCH_C_BIN          [<repo>/target/release/examples/bench_cluster]
#   BENCH_SKIP_BUILD=1   don't cargo build --release
#   BENCH_SKIP_INSTALL=1 don't apt-get install postfix (smtp-source, smtp-sink)
#   BENCH_DIR            scratch dir [mktemp in /var/tmp]; BENCH_KEEP=1 keeps it
#   BENCH_C_RESULTS      [bench/results/cluster.md | cluster-quick.md]
#
# Everything listens on 127.0.0.1; every process started here is stopped by
# its pid. Exit 0 done, 2 a step failed.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
QUICK=${BENCH_QUICK:-0}
if [[ "$QUICK" == 1 ]]; then
  N=${BENCH_C_N:-5000}; REPEAT=${BENCH_C_REPEAT:-2}; F_SECS=${BENCH_C_FAILOVER_SECS:-20}
  KILL_AT=${BENCH_C_KILL_AT:-8}; RECORDS=${BENCH_C_RECORDS:-50000}; QUIET_WAIT=${BENCH_QUIET_WAIT:-0}
  RUN_TIMEOUT=${BENCH_RUN_TIMEOUT:-120}; RESULTS=${BENCH_C_RESULTS:-$HERE/results/cluster-quick.md}
else
  N=${BENCH_C_N:-20000}; REPEAT=${BENCH_C_REPEAT:-3}; F_SECS=${BENCH_C_FAILOVER_SECS:-60}
  KILL_AT=${BENCH_C_KILL_AT:-20}; RECORDS=${BENCH_C_RECORDS:-100000}; QUIET_WAIT=${BENCH_QUIET_WAIT:-30}
  RUN_TIMEOUT=${BENCH_RUN_TIMEOUT:-300}; RESULTS=${BENCH_C_RESULTS:-$HERE/results/cluster.md}
fi
SIZE=${BENCH_C_SIZE:-10240}
SESSIONS=${BENCH_SESSIONS:-20}
PARTS=${BENCH_C_PARTS:-throughput failover catchup}
MX_PORT=${BENCH_C_MX_PORT:-2545}
ADMIN_PORT=${BENCH_C_ADMIN_PORT:-8045}
SINK_PORT=${BENCH_C_SINK_PORT:-2745}
read -r -a NODE_PORTS <<<"${BENCH_C_NODE_PORTS:-7461 7462 7463}"
MXGATE_BIN=${MXGATE_BIN:-$ROOT/target/release/mxgate}
CBIN=${BENCH_C_BIN:-$ROOT/target/release/examples/bench_cluster}
SECRET="bench-cluster-secret-0123456789"
SINK_USER=()
[[ $(id -u) != 0 ]] || SINK_USER=(-u postfix) # smtp-sink refuses to run as root

log() { printf '[cluster %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "FATAL: $*"; BENCH_KEEP=1; exit 2; } # the scratch dir is kept for its logs
port_busy() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }
pid_alive() { [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null; }
now() { echo "$EPOCHREALTIME"; }
json() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
wait_port() { # port seconds
  local end=$((SECONDS + $2))
  until port_busy "$1"; do ((SECONDS < end)) || return 1; sleep 0.05; done
}
wait_port_free() { # port seconds
  local end=$((SECONDS + $2))
  while port_busy "$1"; do ((SECONDS < end)) || return 1; sleep 0.1; done
}
# Other processes' CPU share (bench/cpuwatch.py) and the hypervisor's steal,
# in % of one core, during each timed part; as in bench/quarantine.sh.
quiet() {
  ((QUIET_WAIT > 0)) || return 0
  local q; q=$(python3 "$HERE/cpuwatch.py" quiet --ours $$ --max-wait "$QUIET_WAIT" --threshold 10)
  [[ $q == *'"quiet": true'* ]] || log "WARNING: machine still busy after ${QUIET_WAIT}s: $q"
}
steal() { awk 'NR == 1 {print $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat; }
snap() { python3 "$HERE/cpuwatch.py" snap "$DIR/cpu.snap" --ours $$; steal >"$DIR/steal.snap"; }
foreign() {
  local f s0 t0 s1 t1
  f=$(python3 "$HERE/cpuwatch.py" diff "$DIR/cpu.snap" --ours $$ \
    | python3 -c 'import json,sys; print(round(json.load(sys.stdin).get("foreign_pct") or 0))') || f=999
  read -r s0 t0 <"$DIR/steal.snap"; read -r s1 t1 < <(steal)
  echo $((f + (s1 - s0) * 100 * $(nproc) / (t1 - t0 > 0 ? t1 - t0 : 1)))
}

stop_pid() { # pid seconds
  pid_alive "$1" || return 0
  kill -TERM "$1" 2>/dev/null || true
  local end=$((SECONDS + $2))
  while pid_alive "$1" && ((SECONDS < end)); do sleep 0.1; done
  pid_alive "$1" && { log "pid $1 ignored SIGTERM; SIGKILL"; kill -KILL "$1" 2>/dev/null || true; }
  wait "$1" 2>/dev/null || true
}

# ------------------------------------------------------------ processes
GW_PID="" SINK_PIDFILE="" FAILED=0
NODE_PIDS=("" "" "")
node_list() { local p s=""; for p in "${NODE_PORTS[@]}"; do s+="${s:+, }\"127.0.0.1:$p\""; done; echo "[$s]"; }
cluster_section() {
  printf '[cluster]\nnodes = %s\nreplicas = 2\nwrite_quorum = 2\nsecret = "%s"\n' "$(node_list)" "$SECRET"
}

node_start() { # index(0-2) dir: starts (or restarts) one storage node
  local i=$1 d="$2/n$(($1 + 1))" port=${NODE_PORTS[$1]}
  mkdir -p "$d"
  wait_port_free "$port" 20 || die "port 127.0.0.1:$port is still in use"
  [[ -f "$d/node.toml" ]] || cat >"$d/node.toml" <<EOF
[node]
listen = "127.0.0.1:$port"
repair_interval = "2s"

[storage]
path = "$d/data"

[log]
level = "warn"

$(cluster_section)
EOF
  "$MXGATE_BIN" storage --config "$d/node.toml" >>"$d/node.log" 2>&1 &
  NODE_PIDS[i]=$!
}

nodes_start() { # dir
  local i
  for i in 0 1 2; do node_start "$i" "$1"; done
  for i in 0 1 2; do
    wait_port "${NODE_PORTS[$i]}" 30 || { tail -5 "$1/n$((i + 1))/node.log" >&2; die "storage node $((i + 1)) did not listen"; }
  done
}

nodes_stop() { local i; for i in 0 1 2; do stop_pid "${NODE_PIDS[$i]}" 30; NODE_PIDS[i]=""; done; }

gw_start() { # dir single|cluster
  local d=$1 p
  for p in "$MX_PORT" "$ADMIN_PORT"; do wait_port_free "$p" 20 || die "port 127.0.0.1:$p is still in use"; done
  mkdir -p "$d/gw-data"
  cat >"$d/mxgate.toml" <<EOF
[smtp]
listen = "127.0.0.1:$MX_PORT"
hostname = "mx.bench.test"
max_connections = 12000
max_connections_per_ip = 12000

[relay]
domains = ["example.test"]
downstream = "127.0.0.1:$SINK_PORT"
tls = "none"
# DSNs (none expected) go nowhere: not to the sink, where they would count.
outbound = "127.0.0.1:9"

[storage]
path = "$d/gw-data"

[admin]
listen = "127.0.0.1:$ADMIN_PORT"

[dns]
nameservers = ["127.0.0.1:53"]

[log]
level = "warn"

[scan]
stages = []
EOF
  if [[ $2 == cluster ]]; then printf '\n%s\nname = "gw1"\n' "$(cluster_section)" >>"$d/mxgate.toml"; fi
  local t0; t0=$(now)
  "$MXGATE_BIN" serve --config "$d/mxgate.toml" >>"$d/mxgate.log" 2>&1 &
  GW_PID=$!
  "$CBIN" ready --admin "127.0.0.1:$ADMIN_PORT" --since "$t0" --timeout 120 >/dev/null \
    || { tail -5 "$d/mxgate.log" >&2; die "mxgate ($2) did not start"; }
  pid_alive "$GW_PID" || { tail -5 "$d/mxgate.log" >&2; die "mxgate ($2) exited at start"; }
}

gw_stop() { stop_pid "$GW_PID" 40; GW_PID=""; }

sink_start() { # dir max (0: no limit): smtp-sink; DIR/sink.done gets "rc time" at its exit
  local d=$1 max=()
  (($2 > 0)) && max=(-M "$2")
  rm -f "$d/sink.done" "$d/sink.pid"
  wait_port_free "$SINK_PORT" 10 || die "port 127.0.0.1:$SINK_PORT is still in use"
  (
    smtp-sink -c "${SINK_USER[@]}" "${max[@]}" "127.0.0.1:$SINK_PORT" 1000 >"$d/sink.out" 2>&1 &
    echo $! >"$d/sink.pid"
    rc=0; wait $! || rc=$?
    echo "$rc $EPOCHREALTIME" >"$d/sink.done"
  ) &
  SINK_PIDFILE="$d/sink.pid"
  wait_port "$SINK_PORT" 10 || die "smtp-sink did not listen on $SINK_PORT"
}
sink_count() { local g; g=$(tr '\r' '\n' <"$1/sink.out" | grep -o 'mesg=[0-9]*' | tail -1 | cut -d= -f2); echo "${g:-0}"; }
sink_stop() {
  [[ -n "$SINK_PIDFILE" && -f "$SINK_PIDFILE" ]] && { kill "$(cat "$SINK_PIDFILE")" 2>/dev/null || true; }
  SINK_PIDFILE=""
  wait_port_free "$SINK_PORT" 10 || true
}

cleanup() {
  gw_stop
  nodes_stop
  sink_stop
  [[ -n "${DIR_CREATED:-}" ]] || return 0
  if [[ "${BENCH_KEEP:-0}" != 1 ]]; then rm -rf "$DIR_CREATED"; else log "scratch files kept in $DIR"; fi
}

# ------------------------------------------------------------- throughput
# tp_run MODE REP: one timed run on fresh storage; appends
# "MODE REP e2e_s ingress_s got source_rc others%" to $DIR/tp.txt.
tp_run() {
  local mode=$1 rep=$2 d="$DIR/tp-$1-$2"
  rm -rf "$d"; mkdir -p "$d"; chmod 755 "$DIR" "$d"
  [[ $mode == single ]] || nodes_start "$d"
  gw_start "$d" "$mode"
  sink_start "$d" "$N"
  quiet
  snap
  local t0 t1 t2="" rc=0 src=0
  t0=$(now)
  timeout "$RUN_TIMEOUT" smtp-source -s "$SESSIONS" -l "$SIZE" -m "$N" -f bench@sender.test \
    -t user@example.test -M client.bench.test "127.0.0.1:$MX_PORT" >"$d/source.out" 2>&1 || src=$?
  t1=$(now)
  local end=$((SECONDS + RUN_TIMEOUT))
  while [[ ! -f "$d/sink.done" ]] && ((SECONDS < end)); do sleep 0.05; done
  local cpu; cpu=$(foreign)
  [[ -f "$d/sink.done" ]] && read -r rc t2 <"$d/sink.done"
  local got; got=$(sink_count "$d")
  sink_stop; gw_stop; nodes_stop
  if [[ -z "$t2" || $rc != 0 ]]; then
    tail -3 "$d/source.out" "$d/mxgate.log" >&2 || true
    die "$mode run $rep: the sink got $got of $N messages"
  fi
  local e2e ingress
  e2e=$(python3 -c "print(round($t2 - $t0, 3))"); ingress=$(python3 -c "print(round($t1 - $t0, 3))")
  log "$(printf '%-7s run %d: %d messages end to end in %s s: %s msg/s (ingress %s s; others %s %% CPU)' \
    "$mode" "$rep" "$N" "$e2e" "$(python3 -c "print(round($N / $e2e, 1))")" "$ingress" "$cpu")"
  echo "$mode $rep $e2e $ingress $got $src $cpu" >>"$DIR/tp.txt"
  rm -rf "$d"/n*/data "$d/gw-data"
}

throughput() {
  : >"$DIR/tp.txt"
  log "throughput: $N messages of $SIZE octets per run, $SESSIONS sessions, $REPEAT runs per system"
  local rep
  for ((rep = 1; rep <= REPEAT; rep++)); do
    tp_run single "$rep"
    tp_run cluster "$rep"
  done
}

# --------------------------------------------------------------- failover
failover() {
  local d="$DIR/failover"
  rm -rf "$d"; mkdir -p "$d"; chmod 755 "$DIR" "$d"
  nodes_start "$d"
  gw_start "$d" cluster
  sink_start "$d" 0
  quiet
  snap
  local victim=${NODE_PIDS[1]}
  log "failover: ${F_SECS} s of load, $SESSIONS sessions; kill -9 storage node 2 (pid $victim) at ${KILL_AT} s"
  timeout $((${F_SECS%.*} + 120)) "$CBIN" failover --target "127.0.0.1:$MX_PORT" --sessions "$SESSIONS" \
    --seconds "$F_SECS" --kill-pid "$victim" --kill-at "$KILL_AT" --size "$SIZE" \
    --answers "$d/answers.jsonl" >"$d/failover.json" || die "failover load failed"
  foreign >"$d/others.txt"
  wait "$victim" 2>/dev/null || true
  NODE_PIDS[1]=""
  python3 -c 'import sys, urllib.request
print(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/api/v1/cluster", timeout=10).read().decode())' \
    "$ADMIN_PORT" >"$d/cluster-after.json" 2>/dev/null || echo null >"$d/cluster-after.json"
  # Every message that got a 250 must reach the sink (duplicates counted).
  local ok; ok=$(json "$d/failover.json" ok)
  local end=$((SECONDS + 60))
  while (($(sink_count "$d") < ok)) && ((SECONDS < end)); do sleep 0.2; done
  sleep 1 # late duplicates, if any
  sink_count "$d" >"$d/delivered.txt"
  log "failover: $ok accepted, $(cat "$d/delivered.txt") delivered"
  sink_stop; gw_stop; nodes_stop
}

# ---------------------------------------------------------------- catch-up
catchup() {
  local d="$DIR/catchup" node="127.0.0.1:${NODE_PORTS[2]}"
  rm -rf "$d"; mkdir -p "$d"
  nodes_start "$d"
  log "catch-up: storage node 3 stopped (SIGTERM); $RECORDS records written through the cluster client"
  stop_pid "${NODE_PIDS[2]}" 30
  NODE_PIDS[2]=""
  timeout 600 "$CBIN" write --config "$d/n1/node.toml" --count "$RECORDS" --down "$node" >"$d/write.json" \
    || die "writing the records failed"
  log "written: $(cat "$d/write.json")"
  # Written back before the node returns, so the catch-up does not share
  # the disk with the writes' writeback.
  sync
  quiet
  snap
  local t0; t0=$(now)
  node_start 2 "$d"
  timeout 660 "$CBIN" catchup --config "$d/n1/node.toml" --node "$node" --count "$RECORDS" --since "$t0" \
    --timeout 600 >"$d/catchup.json" || { FAILED=1; log "catch-up FAILED: $(cut -c1-600 "$d/catchup.json")"; }
  foreign >"$d/others.txt"
  nodes_stop
  [[ -s "$d/catchup.json" ]] || die "no catch-up figures"
}

# ----------------------------------------------------------------- report
# The summary (markdown) from the parts' files in $DIR.
report() {
  python3 - "$DIR" "$N" "$SIZE" "$RECORDS" <<'PY'
import json, os, statistics, sys
d, n, size, records = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def load(path):
    try:
        return json.load(open(os.path.join(d, path)))
    except Exception:
        return None
def text(path):
    try:
        return open(os.path.join(d, path)).read().strip()
    except Exception:
        return "?"
out = []
if os.path.exists(os.path.join(d, "tp.txt")):
    runs = {}
    for line in open(os.path.join(d, "tp.txt")):
        mode, rep, e2e, ingress, got, src, cpu = line.split()
        runs.setdefault(mode, []).append((n / float(e2e), n / float(ingress), int(cpu) >= 10))
    if "single" in runs and "cluster" in runs:
        med = {m: statistics.median(r[0] for r in runs[m]) for m in runs}
        ing = {m: statistics.median(r[1] for r in runs[m]) for m in runs}
        out.append(f"| {size // 1024} KB, {n} messages, median of {len(runs['single'])} | single-node | cluster | ratio |")
        out.append("|---|---:|---:|---:|")
        out.append(f"| relay msg/s, end to end | {med['single']:.1f} | {med['cluster']:.1f} | "
                   f"{med['cluster'] / med['single']:.2f} (target >= 0.60) |")
        out.append(f"| ingress msg/s (250s) | {ing['single']:.1f} | {ing['cluster']:.1f} | "
                   f"{ing['cluster'] / ing['single']:.2f} |")
        out.append("")
        for m in ("single", "cluster"):
            out.append(f"{m} runs, msg/s: " + ", ".join(f"{r[0]:.1f}" + "*" * r[2] for r in runs[m]))
        pairs = [(c[0] / s[0], s[2] or c[2]) for s, c in zip(runs["single"], runs["cluster"])]
        out.append("cluster/single per pair of runs: " + ", ".join(f"{r:.2f}" + "*" * b for r, b in pairs)
                   + " (* = others, steal included, used >= 10 % of a CPU)")
        out.append("")
f = load("failover/failover.json")
if f:
    out.append(f"failover (kill -9 of 1 of 3 storage nodes at {f['kill_at']:.1f} s of {f['seconds']:.0f} s of load, "
               f"{f['sessions']} sessions): 4xx window {f['window_4xx']:.2f} s (target <= 2 s), "
               f"{f['tempfail_after_kill']} 4xx answers, {f['no_answer_after_kill']} sessions without an answer, "
               f"{f['permfail_after_kill']} 5xx")
    out.append(f"failover: accepted msg/s before the kill {f['rate_before']:.1f}, after {f['rate_after']:.1f}; "
               f"longest time without a 250: {f['stall']:.2f} s after the kill ({f['longest_gap_before']:.2f} s before)")
    out.append(f"failover: {f['ok']} messages got 250, {text('failover/delivered.txt')} reached the sink; "
               f"others used {text('failover/others.txt')} % of a CPU")
    if f.get("tempfail_samples"):
        out.append(f"failover: first 4xx: {f['tempfail_samples'][0]}")
    tl = [r for r in f["timeline"] if -3 <= r[0] <= 5]
    out.append("failover: answers per second around the kill (s: 250/4xx/5xx/none): "
               + ", ".join(f"{r[0]:+d}: {r[1]}/{r[2]}/{r[3]}/{r[4]}" for r in tl))
    out.append("")
w, c = load("catchup/write.json"), load("catchup/catchup.json")
if w and c:
    note = "" if records == 100000 else f" [over {records} records; the target is for 100000]"
    cu = c.get("caught_up")
    at = lambda v: "never" if v is None else f"{v:.2f} s"
    out.append(f"catch-up: {w['count']} records of ~{w['size']} octets written with 1 of 3 nodes down "
               f"({w['writes_per_s']:.0f} records/s); the node owns {c['expected']}, {w['behind']} waited as hints")
    out.append("catch-up: caught up " + (f"{cu:.2f} s" if cu is not None else "NOT within the limit")
               + f" after its restart (target < 30 s){note}; answering at {at(c['answered'])}, all records at "
               f"{at(c['records_complete'])}, hints drained at {at(c['hints_drained'])}, first anti-entropy pass "
               f"done at {at(c['anti_entropy_done'])}")
    out.append(f"catch-up: read back from the node alone: {c['verified_present']} of {c['expected']} records with "
               f"their bodies ({c['missing']} missing); others used {text('catchup/others.txt')} % of a CPU")
print("\n".join(out))
PY
}

# ------------------------------------------------------------------- main
main() {
  for p in "$MX_PORT" "$ADMIN_PORT" "$SINK_PORT" "${NODE_PORTS[@]}"; do
    port_busy "$p" && die "port 127.0.0.1:$p is in use; set BENCH_C_*_PORT(S)"
  done
  if ! command -v smtp-source >/dev/null || ! command -v smtp-sink >/dev/null; then
    [[ "${BENCH_SKIP_INSTALL:-0}" != 1 ]] || die "smtp-source/smtp-sink missing and BENCH_SKIP_INSTALL=1"
    log "installing postfix (smtp-source, smtp-sink) with apt-get"
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    echo "postfix postfix/mailname string bench.test" | debconf-set-selections
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix >/dev/null
  fi
  if [[ -z "${BENCH_DIR:-}" ]]; then
    DIR=$(mktemp -d /var/tmp/mxcbench.XXXXXX); DIR_CREATED=$DIR
  else
    DIR=$BENCH_DIR; mkdir -p "$DIR"
  fi
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
    log "cargo build --release --bins --example bench_cluster"
    (cd "$ROOT" && cargo build --release --bins --example bench_cluster) >"$DIR/build.log" 2>&1 \
      || { tail -20 "$DIR/build.log" >&2; die "build failed"; }
  fi
  [[ -x "$MXGATE_BIN" && -x "$CBIN" ]] || die "missing $MXGATE_BIN or $CBIN (cargo build --release --bins --example bench_cluster)"
  # The revision, taken with the copy: commits may land during the run.
  local rev; rev="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  [[ -z "$(git -C "$ROOT" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ]] || rev="$rev+uncommitted-changes"
  rev="$rev, binary built $(date -u -r "$MXGATE_BIN" '+%H:%M UTC')"
  # Private copies: a rebuild during the run must not swap binaries.
  cp "$MXGATE_BIN" "$DIR/mxgate" && MXGATE_BIN="$DIR/mxgate"
  cp "$CBIN" "$DIR/bench_cluster" && CBIN="$DIR/bench_cluster"
  ulimit -n 65536 2>/dev/null || true
  local t0=$SECONDS
  [[ " $PARTS " != *" throughput "* ]] || throughput
  [[ " $PARTS " != *" failover "* ]] || failover
  [[ " $PARTS " != *" catchup "* ]] || catchup
  local summary; summary=$(report)
  mkdir -p "$(dirname "$RESULTS")"
  {
    echo "# Cluster benchmark$( [[ $QUICK == 1 ]] && echo ' (quick mode)')"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), mxgate $rev (sha256 $(sha256sum "$MXGATE_BIN" | cut -c1-12)), $(nproc) cores, $((SECONDS - t0)) s."
    echo "3 storage nodes and the gateway on one machine (loopback), replicas 2, write_quorum 2. Method: bench/cluster.md."
    echo
    echo "$summary"
  } >"$RESULTS"
  echo "$summary"
  log "results: $RESULTS ($((SECONDS - t0)) s)"
  ((FAILED == 0)) || { BENCH_KEEP=1; exit 2; }
}

main "$@"

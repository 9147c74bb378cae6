#!/usr/bin/env bash
# Relay benchmark: smtp-source -> {Postfix | mxgate} -> smtp-sink, the same
# with a mixed corpus and mxgate's full scanning pipeline (bench_load ->
# {Postfix | mxgate with every stage} -> smtp-sink, DNS from a local stub),
# plus the memory cost of idle connections on mxgate. Method and figures:
# bench/README.md.
#
# Usage:  bench/run.sh              full run (figures quoted in the README)
#         BENCH_QUICK=1 bench/run.sh   small counts, a few minutes (CI)
#
# Environment (defaults in brackets; quick-mode defaults second):
#   BENCH_QUICK=0|1          quick mode                                   [0]
#   BENCH_N_10K              messages per 10 KB run                [20000 | 3000]
#   BENCH_N_100K             messages per 100 KB run               [5000 | 800]
#   BENCH_REPEAT             runs per (size, system); median kept     [3 | 1]
#   BENCH_SESSIONS           smtp-source parallel sessions               [20]
#   BENCH_SOURCE_OPTS        extra smtp-source options (e.g. -d)         []
#   BENCH_N_MIX              messages per mixed-corpus run        [10000 | 1500]
#   BENCH_CHECK_N            messages sent one at a time through the gateway
#                            before each mix run, to check the path   [100 | 40]
#   BENCH_SYSTEMS            systems to run
#                            ["direct postfix mxgate direct-mix postfix-mix mxgate-scan"]
#                            direct = smtp-source straight to smtp-sink;
#                            postfix, mxgate = smtp-source, fixed-size payloads,
#                              mxgate with no scanning stages ([scan] stages = []);
#                            *-mix, mxgate-scan = bench_load's mixed corpus;
#                              mxgate-scan runs every built-in stage, DNS from
#                              the stub (bench_load dns)
#   BENCH_SIZES              payload sizes in octets        ["10240 102400"]
#   BENCH_IDLE_CONNS         idle connections for the RSS test    [5000 | 5000]
#   BENCH_SKIP_RSS=1         skip the idle-connection RSS test
#   BENCH_SKIP_QUARANTINE=1  skip the quarantine benchmark (bench/quarantine.sh,
#                            run last; its own knobs are BENCH_Q_*)
#   BENCH_SKIP_CLUSTER=1     skip the cluster benchmark (bench/cluster.sh,
#                            run last; its own knobs are BENCH_C_*)
#   BENCH_SKIP_WORKERS=1     skip the workers benchmark (bench/workers.sh,
#                            run after the cluster's; its own knobs are BENCH_W_*)
#   BENCH_PROBE_INTERVAL     seconds between latency probes             [0.1]
#   BENCH_RUN_TIMEOUT        seconds allowed for one load run           [300]
#   BENCH_QUIET_WAIT         before each run, wait up to this many seconds for
#                            other processes to use < BENCH_QUIET_PCT % of the
#                            CPU (bench/cpuwatch.py)                 [300 | 0]
#   BENCH_QUIET_PCT          foreign CPU share that marks a run disturbed [10]
#   BENCH_POSTFIX_EXTRA      lines added to Postfix's main.cf ("\n" between lines),
#                            e.g. "relay_destination_concurrency_limit = 50"   []
#   BENCH_MXGATE_EXTRA       TOML added at the end of mxgate's config,
#                            e.g. "[queue]\nconnections_per_route = 50"        []
#   BENCH_SKIP_INSTALL=1     don't apt-get install postfix/python3
#   BENCH_SKIP_BUILD=1       don't cargo build --release
#   MXGATE_BIN               mxgate binary     [<repo>/target/release/mxgate]
#   BENCH_LOAD_BIN           load generator and DNS stub
#                            [<repo>/target/release/examples/bench_load]
#   BENCH_DIR                scratch dir (queues, logs)  [mktemp in /var/tmp]
#   BENCH_KEEP=1             keep BENCH_DIR afterwards (logs, queues)
#   BENCH_ENFORCE_TARGETS=1  exit 3 when a target (ratio >= 2 @10KB, mxgate-scan/
#                            postfix-mix >= 1 @mix, RSS < 20 KB) is missed
#   BENCH_RESULTS            results file
#                            [bench/results/latest.md | bench/results/quick.md]
#   Ports (all on 127.0.0.1): BENCH_PF_PORT [2626] BENCH_MX_PORT [2525]
#     BENCH_SINK_PORT [2700] BENCH_PROBE_PORT [2701] BENCH_ADMIN_PORT [8025]
#     BENCH_DNS_PORT [2553] (UDP and TCP)
#
# All traffic stays on 127.0.0.1. Every load run is bounded in message count
# and in time (timeout), and every server started here is stopped by its pid.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")

QUICK=${BENCH_QUICK:-0}
if [[ "$QUICK" == 1 ]]; then
  N_10K=${BENCH_N_10K:-3000}; N_100K=${BENCH_N_100K:-800}; REPEAT=${BENCH_REPEAT:-1}
  N_MIX=${BENCH_N_MIX:-1500}; CHECK_N=${BENCH_CHECK_N:-40}
else
  N_10K=${BENCH_N_10K:-20000}; N_100K=${BENCH_N_100K:-5000}; REPEAT=${BENCH_REPEAT:-3}
  N_MIX=${BENCH_N_MIX:-10000}; CHECK_N=${BENCH_CHECK_N:-100}
fi
IDLE_CONNS=${BENCH_IDLE_CONNS:-5000}
if [[ "$QUICK" == 1 ]]; then QUIET_WAIT=${BENCH_QUIET_WAIT:-0}; else QUIET_WAIT=${BENCH_QUIET_WAIT:-300}; fi
QUIET_PCT=${BENCH_QUIET_PCT:-10}
SESSIONS=${BENCH_SESSIONS:-20}
SOURCE_OPTS=${BENCH_SOURCE_OPTS:-}
SYSTEMS=${BENCH_SYSTEMS:-direct postfix mxgate direct-mix postfix-mix mxgate-scan}
SIZES=${BENCH_SIZES:-10240 102400}
PROBE_INTERVAL=${BENCH_PROBE_INTERVAL:-0.1}
RUN_TIMEOUT=${BENCH_RUN_TIMEOUT:-300}
MXGATE_BIN=${MXGATE_BIN:-$ROOT/target/release/mxgate}
if [[ "$QUICK" == 1 ]]; then RESULTS=${BENCH_RESULTS:-$HERE/results/quick.md}; else RESULTS=${BENCH_RESULTS:-$HERE/results/latest.md}; fi
PF_PORT=${BENCH_PF_PORT:-2626}
MX_PORT=${BENCH_MX_PORT:-2525}
SINK_PORT=${BENCH_SINK_PORT:-2700}
PROBE_PORT=${BENCH_PROBE_PORT:-2701}
ADMIN_PORT=${BENCH_ADMIN_PORT:-8025}
DNS_PORT=${BENCH_DNS_PORT:-2553}
LOAD_BIN=${BENCH_LOAD_BIN:-$ROOT/target/release/examples/bench_load}
PY=${PYTHON:-python3}

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }

# ------------------------------------------------------------------ install
install_deps() {
  local missing=()
  command -v smtp-source >/dev/null && command -v smtp-sink >/dev/null \
    && command -v postfix >/dev/null || missing+=(postfix)
  command -v "$PY" >/dev/null || missing+=(python3)
  command -v ss >/dev/null || missing+=(iproute2)
  ((${#missing[@]} == 0)) && return 0
  [[ "${BENCH_SKIP_INSTALL:-0}" == 1 ]] && die "missing ${missing[*]} and BENCH_SKIP_INSTALL=1"
  log "installing ${missing[*]} (apt)"
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  echo "postfix postfix/mailname string bench.test" | debconf-set-selections
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# The package may start the system instance; it is not ours to run here.
stop_system_postfix() {
  if [[ -f /etc/postfix/main.cf ]] && postfix status >/dev/null 2>&1; then
    log "stopping the system Postfix instance (postfix stop)"
    postfix stop >/dev/null 2>&1 || true
  fi
}

port_busy() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

wait_port() { # port seconds
  local end=$((SECONDS + $2))
  while ((SECONDS < end)); do
    port_busy "$1" && return 0
    sleep 0.05
  done
  return 1
}

wait_port_free() { # port seconds
  local end=$((SECONDS + $2))
  while ((SECONDS < end)); do
    port_busy "$1" || return 0
    sleep 0.1
  done
  return 1
}

pid_alive() { [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null; }

wait_pid_gone() { # pid seconds
  local end=$((SECONDS + $2))
  while ((SECONDS < end)); do
    pid_alive "$1" || return 0
    sleep 0.1
  done
  return 1
}

# ------------------------------------------------------------------ postfix
PF_DIR=""
pf_start() { # dir
  PF_DIR=$1
  rm -rf "$PF_DIR"
  mkdir -p "$PF_DIR/etc" "$PF_DIR/spool" "$PF_DIR/lib"
  chmod 755 "$PF_DIR" "$PF_DIR/etc"
  chown postfix "$PF_DIR/lib"
  cat >"$PF_DIR/etc/main.cf" <<EOF
# Private benchmark instance: a plain relay for example.test to smtp-sink.
compatibility_level = 3.6
myhostname = mx-postfix.bench.test
mydomain = bench.test
myorigin = \$myhostname
queue_directory = $PF_DIR/spool
data_directory = $PF_DIR/lib
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
relay_domains = example.test, probe.test
relayhost = [127.0.0.1]:$SINK_PORT
transport_maps = inline:{ probe.test=smtp:[127.0.0.1]:$PROBE_PORT }
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination
default_process_limit = 200
smtp_dns_support_level = disabled
maillog_file = $PF_DIR/postfix.log
biff = no
EOF
  [[ -z "${BENCH_POSTFIX_EXTRA:-}" ]] || printf '# BENCH_POSTFIX_EXTRA\n%b\n' "$BENCH_POSTFIX_EXTRA" >>"$PF_DIR/etc/main.cf"
  # Debian's master.cf with chroot off everywhere and the smtpd listener moved
  # from *:25 to 127.0.0.1:$PF_PORT.
  awk -v port="$PF_PORT" '
    /^smtp[ \t]+inet[ \t]/ { print "127.0.0.1:" port " inet n - n - - smtpd"; next }
    /^[a-z]/ && NF >= 8 && ($5 == "y" || $5 == "-") { $5 = "n" }
    { print }' /usr/share/postfix/master.cf.dist >"$PF_DIR/etc/master.cf"
  postfix -c "$PF_DIR/etc" check >>"$PF_DIR/start.log" 2>&1 || true
  postfix -c "$PF_DIR/etc" start >>"$PF_DIR/start.log" 2>&1 \
    || { cat "$PF_DIR/start.log" "$PF_DIR/postfix.log" >&2 2>/dev/null; return 1; }
  wait_port "$PF_PORT" 30 || { log "postfix did not listen on $PF_PORT"; return 1; }
}

pf_pid() { tr -d ' \n' <"$PF_DIR/spool/pid/master.pid" 2>/dev/null || true; }

pf_stop() {
  [[ -n "$PF_DIR" && -d "$PF_DIR/etc" ]] || return 0
  local pid
  pid=$(pf_pid)
  postfix -c "$PF_DIR/etc" stop >>"$PF_DIR/start.log" 2>&1 || true
  if [[ -n "$pid" ]] && ! wait_pid_gone "$pid" 30; then
    postfix -c "$PF_DIR/etc" abort >>"$PF_DIR/start.log" 2>&1 || true
    wait_pid_gone "$pid" 10 || log "postfix master $pid still running"
  fi
  wait_port_free "$PF_PORT" 10 || true
  PF_DIR=""
}

# ------------------------------------------------------------------- mxgate
MX_DIR=""
MX_PID=""
# The [scan] part of mxgate's config: "plain" relays without scanning (the
# default config runs every stage, so it is switched off explicitly); "scan"
# runs every built-in stage, with one DNS block list and one URI list served
# (as "not listed") by the stub.
scan_config() { # plain|scan
  if [[ $1 != scan ]]; then
    printf '[scan]\nstages = []\n'
    return
  fi
  cat <<EOF
[scan]
# The default stage list, spelled out.
stages = ["spf", "dkim", "dmarc", "arc", "dnsbl", "uribl", "attachment", "phishing", "heuristics"]

[scan.dnsbl]
# The load comes from 127.0.0.1: look it up anyway, so every message costs a
# real DNSBL lookup (answered from the resolver's cache after the first).
check_private = true

[[scan.dnsbl.zones]]
zone = "bl.bench.test"

[[scan.uribl.zones]]
zone = "uribl.bench.test"
EOF
}

mx_start() { # dir [plain|scan]
  MX_DIR=$1
  local mode=${2:-plain} ns="127.0.0.1:53"
  [[ $mode == scan ]] && ns="127.0.0.1:$DNS_PORT"
  rm -rf "$MX_DIR"
  mkdir -p "$MX_DIR/data"
  cat >"$MX_DIR/mxgate.toml" <<EOF
[smtp]
listen = "127.0.0.1:$MX_PORT"
hostname = "mx.bench.test"
max_connections = 12000
max_connections_per_ip = 12000

[relay]
domains = ["example.test", "probe.test"]
downstream = "127.0.0.1:$SINK_PORT"
tls = "none"
# DSNs (none expected) stay on loopback too.
outbound = "127.0.0.1:$PROBE_PORT"

[relay.routes]
"probe.test" = "127.0.0.1:$PROBE_PORT"

[storage]
path = "$MX_DIR/data"

[admin]
listen = "127.0.0.1:$ADMIN_PORT"

# No name lookups leave the machine.
[dns]
nameservers = ["$ns"]

[log]
level = "warn"

$(scan_config "$mode")
EOF
  [[ -z "${BENCH_MXGATE_EXTRA:-}" ]] || printf '# BENCH_MXGATE_EXTRA\n%b\n' "$BENCH_MXGATE_EXTRA" >>"$MX_DIR/mxgate.toml"
  ulimit -n "$NOFILE"
  "$MXGATE_BIN" serve --config "$MX_DIR/mxgate.toml" >"$MX_DIR/mxgate.log" 2>&1 &
  MX_PID=$!
  local end=$((SECONDS + 30))
  while ((SECONDS < end)); do
    pid_alive "$MX_PID" || { log "mxgate exited at start:"; tail -20 "$MX_DIR/mxgate.log" >&2; MX_PID=""; return 1; }
    if "$PY" - "$ADMIN_PORT" <<'EOF' 2>/dev/null; then return 0; fi
import sys, urllib.request
sys.exit(0 if urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/healthz", timeout=1).status == 200 else 1)
EOF
    sleep 0.1
  done
  log "mxgate /healthz did not answer 200 within 30 s"
  if port_busy "$MX_PORT"; then log "(but port $MX_PORT accepts: going on)"; return 0; fi
  return 1
}

mx_stop() {
  if pid_alive "$MX_PID"; then
    kill -TERM "$MX_PID" 2>/dev/null || true
    if ! wait_pid_gone "$MX_PID" 40; then
      log "mxgate $MX_PID ignored SIGTERM for 40 s; sending SIGKILL"
      kill -KILL "$MX_PID" 2>/dev/null || true
    fi
    wait "$MX_PID" 2>/dev/null || true
  fi
  MX_PID=""
  wait_port_free "$MX_PORT" 10 || true
}

# ---------------------------------------------------------------- DNS stub
DNS_PID=""
dns_start() {
  local ready="$BENCH_DIR/dns.ready"
  rm -f "$ready"
  "$LOAD_BIN" dns --listen "127.0.0.1:$DNS_PORT" --ready-file "$ready" --max-seconds 7200 \
    2>"$BENCH_DIR/dns.log" &
  DNS_PID=$!
  local end=$((SECONDS + 10))
  while [[ ! -f "$ready" ]] && ((SECONDS < end)); do
    pid_alive "$DNS_PID" || break
    sleep 0.05
  done
  [[ -f "$ready" ]] || { log "DNS stub did not start: $(tail -2 "$BENCH_DIR/dns.log")"; DNS_PID=""; return 1; }
}

dns_stop() {
  pid_alive "$DNS_PID" && { kill -TERM "$DNS_PID" 2>/dev/null || true; wait "$DNS_PID" 2>/dev/null || true; }
  DNS_PID=""
}

# The mixed-corpus systems (bench_load instead of smtp-source).
is_mix() { [[ $1 == *-mix || $1 == mxgate-scan ]]; }

# mxgate's per-stage totals since start (JSON list of {stage, runs, total_ns}).
stage_times() {
  "$PY" -c 'import sys, urllib.request
print(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/api/v1/pipeline/stages", timeout=5).read().decode())' \
    "$ADMIN_PORT" 2>/dev/null || echo null
}

stop_all() {
  mx_stop || true
  pf_stop || true
  dns_stop || true
  [[ -n "${SINK_PIDFILE:-}" && -f "$SINK_PIDFILE" ]] && { kill "$(cat "$SINK_PIDFILE")" 2>/dev/null || true; }
  [[ -n "${PROBE_PID:-}" ]] && { kill "$PROBE_PID" 2>/dev/null || true; }
  if [[ "${BENCH_KEEP:-0}" != 1 && -n "${BENCH_DIR_CREATED:-}" ]]; then
    rm -rf "$BENCH_DIR_CREATED"
  elif [[ -n "${BENCH_DIR:-}" ]]; then
    log "scratch files kept in $BENCH_DIR"
  fi
}

# ------------------------------------------------------------------ one run
# run_load SYSTEM SIZE N REP -> appends one JSON line to $RUNS
# (SIZE is 0 for the mixed-corpus systems.)
run_load() {
  local sys=$1 size=$2 n=$3 rep=$4
  local d="$BENCH_DIR/runs/$sys-$size-$rep" mix=0 probe_size=$size what="size=$size"
  local port
  if is_mix "$sys"; then
    mix=1 probe_size=10240 what="mix" d="$BENCH_DIR/runs/$sys-$rep"
    [[ -x "$LOAD_BIN" ]] || { record_fail "$sys" "$size" "$n" "$rep" "no bench_load binary"; return; }
  fi
  mkdir -p "$d"
  chmod 755 "$BENCH_DIR" "$BENCH_DIR/runs" "$d"
  case $sys in
    direct | direct-mix) port=$SINK_PORT ;; # no gateway: the harness's own ceiling
    postfix | postfix-mix)
      pf_start "$BENCH_DIR/pf" || { record_fail "$sys" "$size" "$n" "$rep" "postfix did not start"; return; }
      port=$PF_PORT ;;
    mxgate | mxgate-scan)
      if [[ ! -x "$MXGATE_BIN" ]]; then record_fail "$sys" "$size" "$n" "$rep" "no mxgate binary"; return; fi
      local mode=plain
      if [[ $sys == mxgate-scan ]]; then
        mode=scan
        pid_alive "$DNS_PID" || dns_start || { record_fail "$sys" "$size" "$n" "$rep" "DNS stub did not start"; return; }
      fi
      mx_start "$BENCH_DIR/mx" "$mode" || { record_fail "$sys" "$size" "$n" "$rep" "mxgate did not start"; return; }
      port=$MX_PORT ;;
  esac

  # Mix runs through a gateway: first send CHECK_N messages one at a time to
  # bench_load's own sink (the probe port) and check what arrives; for
  # mxgate-scan every one must carry a delivering verdict and pass SPF (and
  # DKIM and DMARC when signed). mxgate's stage times after it are the
  # per-message cost on an idle gateway.
  echo '{"ok": true, "skipped": true}' >"$d/check.json"
  echo null >"$d/stages-idle.json"
  echo null >"$d/stages-load.json"
  if ((mix)) && [[ $sys != direct-mix ]]; then
    local expect=""
    [[ $sys == mxgate-scan ]] && expect=--expect-scan
    log "$sys rep=$rep: check: $CHECK_N messages one at a time through the gateway"
    # shellcheck disable=SC2086
    timeout $((CHECK_N * 30 + 60)) "$LOAD_BIN" check --target "127.0.0.1:$port" \
      --listen "127.0.0.1:$PROBE_PORT" --count "$CHECK_N" $expect >"$d/check.json" 2>"$d/check.err" \
      || log "check FAILED: $(tail -1 "$d/check.err")"
    [[ -s "$d/check.json" ]] || echo '{"ok": false, "failures": ["no output"]}' >"$d/check.json"
    [[ $sys == mxgate-scan ]] && stage_times >"$d/stages-idle.json"
    if ! grep -q '"ok":true' "$d/check.json"; then
      # No timed run: it would measure something else (and held or
      # tempfailed mail would keep the sink waiting until the time limit).
      case $sys in
        postfix-mix) cp "$BENCH_DIR/pf/postfix.log" "$d/gateway.log" 2>/dev/null || true; pf_stop ;;
        mxgate-scan) mx_stop; cp "$BENCH_DIR/mx/mxgate.log" "$d/gateway.log" 2>/dev/null || true ;;
      esac
      record_fail "$sys" "$size" "$n" "$rep" "check failed ($d/check.json): $(cut -c1-400 "$d/check.json")"
      return
    fi
    # Let connections the gateway keeps open to the check sink expire
    # (Postfix caches them for 2 s) before the probe takes the port.
    sleep 3
  fi

  # The sink: counts messages and exits after the n-th; its exit time ends the run.
  SINK_PIDFILE="$d/sink.pid"
  rm -f "$d/sink.done" "$d/stop" "$d/probe.ready"
  (
    smtp-sink -c -u postfix -M "$n" "127.0.0.1:$SINK_PORT" 1000 >"$d/sink.out" 2>&1 &
    echo $! >"$SINK_PIDFILE"
    rc=0; wait $! || rc=$?
    echo "$rc $EPOCHREALTIME" >"$d/sink.done"
  ) &
  wait_port "$SINK_PORT" 10 || log "smtp-sink is not listening on $SINK_PORT"

  # Latency probe and its recording sink (not for "direct": smtp-sink would
  # count the probes).
  PROBE_PID=""
  if [[ $sys != direct* ]]; then
    timeout $((RUN_TIMEOUT + 120)) "$PY" "$HERE/probe.py" --gateway "127.0.0.1:$port" \
      --listen "127.0.0.1:$PROBE_PORT" --size "$probe_size" --interval "$PROBE_INTERVAL" \
      --max 100000 --max-seconds "$RUN_TIMEOUT" --stop-file "$d/stop" \
      --ready-file "$d/probe.ready" --drain 60 --out "$d/probe.json" 2>"$d/probe.err" &
    PROBE_PID=$!
  fi
  local end=$((SECONDS + 10))
  while [[ -n "$PROBE_PID" && ! -f "$d/probe.ready" ]] && ((SECONDS < end)); do sleep 0.02; done

  if ((QUIET_WAIT > 0)); then
    local q
    q=$("$PY" "$HERE/cpuwatch.py" quiet --ours $$ --max-wait "$QUIET_WAIT" --threshold "$QUIET_PCT")
    [[ $q == *'"quiet": true'* ]] || log "WARNING: machine still busy after ${QUIET_WAIT}s: $q"
  fi
  if ((mix)); then
    log "$sys n=$n rep=$rep: bench_load send --sessions $SESSIONS --count $n"
  else
    log "$sys size=$size n=$n rep=$rep: smtp-source -s $SESSIONS -l $size -m $n $SOURCE_OPTS"
  fi
  local t0 t1 src_rc=0
  "$PY" "$HERE/cpuwatch.py" snap "$d/cpu.snap" --ours $$
  t0=$EPOCHREALTIME
  if ((mix)); then
    timeout "$RUN_TIMEOUT" "$LOAD_BIN" send --target "127.0.0.1:$port" --sessions "$SESSIONS" --count "$n" \
      >"$d/load.json" 2>"$d/source.out" || src_rc=$?
  else
    # shellcheck disable=SC2086
    timeout "$RUN_TIMEOUT" smtp-source -s "$SESSIONS" -l "$size" -m "$n" $SOURCE_OPTS \
      -f bench@sender.test -t user@example.test -M client.bench.test \
      "127.0.0.1:$port" >"$d/source.out" 2>&1 || src_rc=$?
  fi
  t1=$EPOCHREALTIME

  # Wait for the sink to count n messages, within the run's time limit (for
  # a mix run whose sender saw failures, at most 30 s more: the sink cannot
  # get them all).
  local deadline
  deadline=$("$PY" -c "print(int($t0 + $RUN_TIMEOUT))")
  if ((mix && src_rc != 0)); then deadline=$(($(date +%s) + 30 < deadline ? $(date +%s) + 30 : deadline)); fi
  while [[ ! -f "$d/sink.done" ]] && (($(date +%s) < deadline)); do sleep 0.05; done
  "$PY" "$HERE/cpuwatch.py" diff "$d/cpu.snap" --ours $$ >"$d/cpu.json" || echo '{}' >"$d/cpu.json"
  touch "$d/stop"
  local sink_rc="" t2="" got
  if [[ -f "$d/sink.done" ]]; then
    read -r sink_rc t2 <"$d/sink.done"
  else
    kill "$(cat "$SINK_PIDFILE")" 2>/dev/null || true
    sleep 0.5
  fi
  got=$(tr '\r' '\n' <"$d/sink.out" | grep -o 'mesg=[0-9]*' | tail -1 | cut -d= -f2)
  got=${got:-0}
  [[ -z "$PROBE_PID" ]] || wait "$PROBE_PID" 2>/dev/null || true
  PROBE_PID=""
  [[ $sys == mxgate-scan ]] && stage_times >"$d/stages-load.json"

  # Stop the gateway; keep its log for the report.
  local gwlog=""
  case $sys in
    postfix | postfix-mix) gwlog="$d/gateway.log"; cp "$BENCH_DIR/pf/postfix.log" "$gwlog" 2>/dev/null || true; pf_stop ;;
    mxgate | mxgate-scan) gwlog="$d/gateway.log"; mx_stop; cp "$BENCH_DIR/mx/mxgate.log" "$gwlog" 2>/dev/null || true ;;
  esac
  wait_port_free "$SINK_PORT" 10 || true
  SINK_PIDFILE=""

  "$PY" - "$RUNS" <<EOF
import json, sys
d = "$d"
probe = {}
try:
    probe = json.load(open(d + "/probe.json"))
except Exception as e:
    probe = {} if "$sys".startswith("direct") else {"error": "probe produced no result: %s" % e}
src_tail = open(d + "/source.out", errors="replace").read()[-600:]
t0, t1, t2 = float("$t0"), float("$t1"), ("$t2" and float("$t2")) or None
row = {
    "system": "$sys", "size": $size, "n": $n, "rep": $rep,
    "sessions": $SESSIONS, "source_opts": "$SOURCE_OPTS",
    "complete": t2 is not None and "$sink_rc" == "0",
    "sink_got": int("$got"),
    "e2e_s": (t2 - t0) if t2 else None,
    "ingress_s": t1 - t0,
    "source_rc": $src_rc,
    "source_tail": src_tail if $src_rc != 0 else "",
    "probe": probe,
    "dir": d,
}
row["msgs_per_s"] = ($n / row["e2e_s"]) if row["e2e_s"] else None
if $mix:
    row["workload"] = "mix"
    def load(name):
        try:
            return json.load(open(d + "/" + name))
        except Exception as e:
            return {"error": "%s: %s" % (name, e)}
    row["load"] = load("load.json")
    row["check"] = load("check.json")
    row["stages_idle"] = load("stages-idle.json")
    row["stages_load"] = load("stages-load.json")
    # A run whose check failed (tempfails, rejects, failed authentication,
    # missing verdicts) measured something else: it does not count.
    if not (row["check"] or {}).get("ok"):
        row["complete"] = False
        row["failed"] = "check failed: %s" % ((row["check"] or {}).get("failures") or ["?"])[:2]
try:
    row["foreign_cpu"] = json.load(open(d + "/cpu.json"))
except Exception:
    row["foreign_cpu"] = {}
row["disturbed"] = (row["foreign_cpu"].get("foreign_pct") or 0) >= $QUIET_PCT
with open(sys.argv[1], "a") as f:
    f.write(json.dumps(row) + "\n")
print(f"  -> complete={row['complete']} got={row['sink_got']}/{$n} "
      f"e2e={row['e2e_s'] and round(row['e2e_s'], 2)}s "
      f"rate={row['msgs_per_s'] and round(row['msgs_per_s'], 1)}/s "
      f"ingress={round(row['ingress_s'], 2)}s src_rc={$src_rc} " + (
      f"probe p50={probe.get('e2e_p50_ms') and round(probe['e2e_p50_ms'], 1)}ms "
      f"p99={probe.get('e2e_p99_ms') and round(probe['e2e_p99_ms'], 1)}ms "
      f"({probe.get('arrived')}/{probe.get('sent')} arrived, {probe.get('errors')} errors)"
      if not "$sys".startswith("direct") else "(no probe)") +
      f" foreign_cpu={row['foreign_cpu'].get('foreign_pct')}%"
      + (f" DISTURBED by {row['foreign_cpu'].get('top')}" if row["disturbed"] else ""), file=sys.stderr)
EOF
  if [[ $src_rc != 0 && $sys != direct* ]]; then
    log "load generator exit $src_rc; last output:"; tail -5 "$d/source.out" >&2
    ((mix)) && cut -c1-600 "$d/load.json" >&2
  fi # (direct: smtp-sink exits at the n-th message, cutting sessions still open)
  if [[ -s "$gwlog" && $sys == mxgate* ]]; then
    local nl; nl=$(wc -l <"$gwlog")
    ((nl > 0)) && { log "mxgate log ($nl lines at level warn), last lines:"; tail -5 "$gwlog" >&2; }
  fi
}

record_fail() { # sys size n rep why
  log "$1 $( (($2 == 0)) && echo mix || echo "size=$2") rep=$4: FAILED: $5"
  "$PY" -c 'import json,sys; print(json.dumps({"system":sys.argv[1],"size":int(sys.argv[2]),"n":int(sys.argv[3]),"rep":int(sys.argv[4]),"complete":False,"failed":sys.argv[5],"sink_got":0}))' \
    "$@" >>"$RUNS"
}

# ------------------------------------------------------------ idle RSS test
run_rss() { # mode
  local mode=$1
  local d="$BENCH_DIR/rss-$mode"
  mkdir -p "$d"
  if [[ ! -x "$MXGATE_BIN" ]] || ! mx_start "$BENCH_DIR/mx"; then
    echo "{\"mode\": \"$mode\", \"error\": \"mxgate did not start\"}" >"$d/rss.json"
    cp "$d/rss.json" "$BENCH_DIR/rss-$mode.json"
    return
  fi
  log "idle RSS, $mode: $IDLE_CONNS connections to mxgate (pid $MX_PID)"
  timeout 400 "$PY" "$HERE/idle_conns.py" --target "127.0.0.1:$MX_PORT" --pid "$MX_PID" \
    --count "$IDLE_CONNS" --mode "$mode" --deadline 360 --out "$d/rss.json" 2>"$d/rss.err" \
    || log "idle_conns.py exit $?: $(tail -3 "$d/rss.err")"
  [[ -s "$d/rss.json" ]] || echo "{\"mode\": \"$mode\", \"error\": \"idle_conns.py gave no result\"}" >"$d/rss.json"
  mx_stop
  cp "$BENCH_DIR/mx/mxgate.log" "$d/mxgate.log" 2>/dev/null || true
  cp "$d/rss.json" "$BENCH_DIR/rss-$mode.json"
  "$PY" -c 'import json,sys; r=json.load(open(sys.argv[1])); print("  ->", {k: r.get(k) for k in ("open","errors","rss_before_kb","rss_after_kb","kb_per_conn","noop_ok","error_samples","error")}, file=sys.stderr)' "$d/rss.json"
}

# --------------------------------------------------------------------- main
main() {
  [[ $(id -u) == 0 ]] || die "run as root (apt-get, postfix and smtp-sink -u postfix need it)"
  install_deps
  stop_system_postfix

  for p in "$PF_PORT" "$MX_PORT" "$SINK_PORT" "$PROBE_PORT" "$ADMIN_PORT" "$DNS_PORT"; do
    port_busy "$p" && die "port 127.0.0.1:$p is in use; set BENCH_*_PORT"
  done

  if [[ -z "${BENCH_DIR:-}" ]]; then
    BENCH_DIR=$(mktemp -d /var/tmp/mxbench.XXXXXX)
    BENCH_DIR_CREATED=$BENCH_DIR
  fi
  mkdir -p "$BENCH_DIR"
  chmod 755 "$BENCH_DIR"
  trap stop_all EXIT
  trap 'exit 130' INT TERM

  if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]] && [[ "$SYSTEMS" == *mxgate* || "$SYSTEMS" == *-mix* || "${BENCH_SKIP_RSS:-0}" != 1 ]]; then
    log "cargo build --release --bins --example bench_load (log: $BENCH_DIR/build.log)"
    if ! (cd "$ROOT" && cargo build --release --bins --example bench_load) >"$BENCH_DIR/build.log" 2>&1; then
      tail -20 "$BENCH_DIR/build.log" >&2
      BENCH_KEEP=1
      die "cargo build --release failed: not benchmarking a stale binary"
    fi
  fi
  MX_REV="none"
  if [[ -x "$MXGATE_BIN" ]]; then
    # Benchmark a private copy: a rebuild during the run must not swap binaries.
    MX_REV="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo uncommitted)"
    [[ -z "$(git -C "$ROOT" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ]] \
      || MX_REV="$MX_REV+uncommitted-changes"
    cp "$MXGATE_BIN" "$BENCH_DIR/mxgate"
    MXGATE_BIN="$BENCH_DIR/mxgate"
    log "mxgate $MX_REV (sha256 $(sha256sum "$MXGATE_BIN" | cut -c1-12))"
  else
    log "WARNING: $MXGATE_BIN missing: mxgate figures will be absent"
  fi
  if [[ -x "$LOAD_BIN" ]]; then
    cp "$LOAD_BIN" "$BENCH_DIR/bench_load"
    LOAD_BIN="$BENCH_DIR/bench_load"
  fi

  NOFILE=65536
  ulimit -n "$NOFILE" 2>/dev/null || { NOFILE=$(ulimit -Hn); ulimit -n "$NOFILE"; }
  ((NOFILE > IDLE_CONNS + 500)) || log "WARNING: ulimit -n $NOFILE is low for $IDLE_CONNS connections"

  RUNS="$BENCH_DIR/runs.jsonl"
  : >"$RUNS"
  log "scratch dir $BENCH_DIR; sizes: $SIZES; systems: $SYSTEMS; repeat $REPEAT"

  local size n rep sys plain_systems="" mix_systems=""
  for sys in $SYSTEMS; do
    if is_mix "$sys"; then mix_systems+=" $sys"; else plain_systems+=" $sys"; fi
  done
  if [[ -n "$plain_systems" ]]; then
    for size in $SIZES; do
      case $size in 10240) n=$N_10K ;; 102400) n=$N_100K ;; *) n=${BENCH_N:-$N_10K} ;; esac
      for ((rep = 1; rep <= REPEAT; rep++)); do
        for sys in $plain_systems; do
          run_load "$sys" "$size" "$n" "$rep"
        done
      done
    done
  fi
  if [[ -n "$mix_systems" ]]; then
    for ((rep = 1; rep <= REPEAT; rep++)); do
      for sys in $mix_systems; do
        run_load "$sys" 0 "$N_MIX" "$rep"
      done
    done
  fi
  dns_stop

  if [[ "${BENCH_SKIP_RSS:-0}" != 1 ]]; then
    run_rss plain
    run_rss starttls
  fi

  mkdir -p "$(dirname "$RESULTS")"
  local rc=0
  "$PY" "$HERE/report.py" --runs "$RUNS" --rss-plain "$BENCH_DIR/rss-plain.json" \
    --rss-starttls "$BENCH_DIR/rss-starttls.json" --out "$RESULTS" \
    --quick "$QUICK" --mxgate-rev "$MX_REV" --repo "$ROOT" \
    --idle-conns "$IDLE_CONNS" --sessions "$SESSIONS" --source-opts "$SOURCE_OPTS" \
    --probe-interval "$PROBE_INTERVAL" --quiet-pct "$QUIET_PCT" --enforce-targets "${BENCH_ENFORCE_TARGETS:-0}" || rc=$?
  cp "$RUNS" "$(dirname "$RESULTS")/$(basename "$RESULTS" .md).runs.jsonl"
  # The quarantine benchmark: its own gateways, figures and results file.
  if [[ "${BENCH_SKIP_QUARANTINE:-0}" != 1 && -x "$MXGATE_BIN" ]]; then
    log "quarantine benchmark (bench/quarantine.sh)"
    BENCH_QUICK=$QUICK BENCH_DIR="$BENCH_DIR/quarantine" MXGATE_BIN="$MXGATE_BIN" BENCH_SESSIONS=$SESSIONS \
      BENCH_MX_PORT=$MX_PORT BENCH_ADMIN_PORT=$ADMIN_PORT bash "$HERE/quarantine.sh" || { ((rc != 0)) || rc=2; }
  fi
  # The cluster benchmark: its own gateway, storage nodes, figures and results file.
  if [[ "${BENCH_SKIP_CLUSTER:-0}" != 1 && -x "$MXGATE_BIN" ]]; then
    log "cluster benchmark (bench/cluster.sh)"
    BENCH_QUICK=$QUICK BENCH_DIR="$BENCH_DIR/cluster" MXGATE_BIN="$MXGATE_BIN" BENCH_SESSIONS=$SESSIONS \
      BENCH_SKIP_INSTALL=1 bash "$HERE/cluster.sh" || { ((rc != 0)) || rc=2; }
  fi
  # The workers benchmark: remote stages and outside scanners, its own results file.
  if [[ "${BENCH_SKIP_WORKERS:-0}" != 1 && -x "$MXGATE_BIN" ]]; then
    log "workers benchmark (bench/workers.sh)"
    BENCH_QUICK=$QUICK BENCH_DIR="$BENCH_DIR/workers" MXGATE_BIN="$MXGATE_BIN" BENCH_LOAD_BIN="$LOAD_BIN" \
      BENCH_SESSIONS=$SESSIONS BENCH_SKIP_BUILD=1 bash "$HERE/workers.sh" || { ((rc != 0)) || rc=2; }
  fi
  if ((rc != 0)); then
    BENCH_KEEP=1
    log "exit $rc: $( ((rc == 2)) && echo 'a run failed' || echo 'a target was missed') (scratch dir kept for its logs)"
  fi
  return "$rc"
}

main "$@"

# shellcheck shell=bash
# Sourced by bench/workers.sh: processes (gateway, sinks, scanners), the
# quiet-machine check and the install step. Every process is stopped by its
# pid; everything listens on 127.0.0.1.

log() { printf '[workers %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "FATAL: $*"; BENCH_KEEP=1; exit 2; } # the scratch dir is kept for its logs
port_busy() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }
pid_alive() { [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null; }
now() { echo "$EPOCHREALTIME"; }
wait_port() { # port seconds
  local end=$((SECONDS + $2))
  until port_busy "$1"; do ((SECONDS < end)) || return 1; sleep 0.05; done
}
wait_port_free() { # port seconds
  local end=$((SECONDS + $2))
  while port_busy "$1"; do ((SECONDS < end)) || return 1; sleep 0.1; done
}
stop_pid() { # pid seconds
  pid_alive "$1" || return 0
  kill -TERM "$1" 2>/dev/null || true
  local end=$((SECONDS + $2))
  while pid_alive "$1" && ((SECONDS < end)); do sleep 0.1; done
  pid_alive "$1" && { log "pid $1 ignored SIGTERM; SIGKILL"; kill -KILL "$1" 2>/dev/null || true; }
  wait "$1" 2>/dev/null || true
}

# Other processes' CPU share (bench/cpuwatch.py) and the hypervisor's steal,
# in % of one core, during each timed run; as in bench/cluster.sh.
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

install_deps() {
  local missing=() norec=()
  command -v smtp-source >/dev/null && command -v smtp-sink >/dev/null || missing+=(postfix)
  command -v ss >/dev/null || missing+=(iproute2)
  if [[ " $PARTS " == *" scanners "* ]]; then
    [[ " $SCANNERS " != *" clamav "* ]] || command -v clamd >/dev/null || missing+=(clamav-daemon)
    [[ " $SCANNERS " != *" spamassassin "* ]] || command -v spamd >/dev/null || missing+=(spamassassin spamd)
    # Without recommends: no Redis server (rspamd runs without one here).
    [[ " $SCANNERS " != *" rspamd "* ]] || command -v rspamd >/dev/null || norec+=(rspamd)
  fi
  ((${#missing[@]} + ${#norec[@]} == 0)) && return 0
  [[ "${BENCH_SKIP_INSTALL:-0}" != 1 ]] || die "missing ${missing[*]} ${norec[*]} and BENCH_SKIP_INSTALL=1"
  log "installing ${missing[*]} ${norec[*]} with apt-get"
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  echo "postfix postfix/mailname string bench.test" | debconf-set-selections
  # The packages' own services (freshclam would fetch signatures from the
  # internet) must not start: a policy-rc.d that denies every start, for
  # the time of the install, unless the machine has its own.
  local policy=/usr/sbin/policy-rc.d made=0 rc=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\n# bench/workers.sh: no service starts during its install\nexit 101\n' >"$policy"
    chmod 755 "$policy"; made=1
  fi
  apt-get update -qq || rc=$?
  ((rc != 0 || ${#missing[@]} == 0)) \
    || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null || rc=$?
  ((rc != 0 || ${#norec[@]} == 0)) \
    || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${norec[@]}" >/dev/null || rc=$?
  ((made == 0)) || rm -f "$policy"
  ((rc == 0)) || die "apt-get failed (exit $rc)"
}

# ---------------------------------------------------------------- gateway
GW_PID=""
# gw_start DIR SCAN_STAGES PIPELINE_TOML: mxgate relaying example.test to
# the sink and check.test to the check sink; admin API without a token.
gw_start() {
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
domains = ["example.test", "check.test"]
downstream = "127.0.0.1:$SINK_PORT"
tls = "none"
# DSNs (none expected) go nowhere: not to the sink, where they would count.
outbound = "127.0.0.1:9"

[relay.routes]
"check.test" = "127.0.0.1:$CHECK_PORT"

[storage]
path = "$d/gw-data"

[admin]
listen = "127.0.0.1:$ADMIN_PORT"

[dns]
nameservers = ["127.0.0.1:$DNS_PORT"]

[log]
level = "warn"

[scan]
stages = $2
$3
EOF
  "$MXGATE_BIN" serve --config "$d/mxgate.toml" >>"$d/mxgate.log" 2>&1 &
  GW_PID=$!
  local end=$((SECONDS + 60))
  until "${PY[@]}" get "$ADMIN_PORT" healthz >/dev/null 2>&1; do
    pid_alive "$GW_PID" || { tail -5 "$d/mxgate.log" >&2; die "mxgate exited at start"; }
    ((SECONDS < end)) || die "mxgate did not answer /healthz within 60 s"
    sleep 0.1
  done
}
gw_stop() { stop_pid "$GW_PID" 40; GW_PID=""; }
stages() { "${PY[@]}" get "$ADMIN_PORT" api/v1/pipeline/stages 2>/dev/null || echo null; }

# ------------------------------------------------------------------ sinks
SINK_PIDFILE=""
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
sink_count() {
  local g; g=$(tr '\r' '\n' <"$1/sink.out" | grep -o 'mesg=[0-9]*' | tail -1 | cut -d= -f2)
  echo "${g:-0}"
}
sink_stop() {
  [[ -n "$SINK_PIDFILE" && -f "$SINK_PIDFILE" ]] && { kill "$(cat "$SINK_PIDFILE")" 2>/dev/null || true; }
  SINK_PIDFILE=""
  wait_port_free "$SINK_PORT" 10 || true
}

# check_run DIR COUNT: COUNT test messages one at a time to check@check.test,
# dumped by a second smtp-sink; each must arrive with a delivering verdict
# (DIR/check.json says what they got; DIR/check-lat.json how long each SMTP
# transaction took).
check_run() {
  local d=$1 n=$2 pid
  mkdir -p "$d/dump"; chown postfix "$d/dump" 2>/dev/null || true
  wait_port_free "$CHECK_PORT" 10 || die "port 127.0.0.1:$CHECK_PORT is still in use"
  smtp-sink "${SINK_USER[@]}" -d "$d/dump/m" -M "$n" "127.0.0.1:$CHECK_PORT" 100 >"$d/check-sink.out" 2>&1 &
  pid=$!
  wait_port "$CHECK_PORT" 10 || die "the check smtp-sink did not listen on $CHECK_PORT"
  timeout $((n * 30 + 60)) "${PY[@]}" latency --target "127.0.0.1:$MX_PORT" --file "$DIR/msg.eml" --count "$n" \
    --rcpt check@check.test >"$d/check-lat.json" || true
  local end=$((SECONDS + 60))
  while pid_alive "$pid" && ((SECONDS < end)); do sleep 0.05; done
  stop_pid "$pid" 5
  "${PY[@]}" verify "$d/dump" "$n" >"$d/check.json"
}

# --------------------------------------------------------------- scanners
# The daemons are set up as in tests/external/scanners.sh and rspamd.sh.
# clamd: a private signature database holding only EICAR (no freshclam).
clamav_start() {
  local d="$1/clamd"
  mkdir -p "$d/db" "$d/tmp"
  printf '%s' 'X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*' >"$d/eicar.txt"
  echo "Eicar-Test-Signature:0:*:$(od -An -tx1 -v "$d/eicar.txt" | tr -d ' \n')" >"$d/db/mxgate-test.ndb"
  cat >"$d/clamd.conf" <<EOF
Foreground yes
DatabaseDirectory $d/db
TemporaryDirectory $d/tmp
TCPSocket $CLAMD_PORT
TCPAddr 127.0.0.1
LogFile $d/clamd.log
StreamMaxLength 30M
SelfCheck 0
EOF
  clamd -c "$d/clamd.conf" >"$d/clamd.out" 2>&1 &
  DAEMON_PIDS+=($!)
}
clamav_ready() { wait_port "$CLAMD_PORT" 120; }

# spamd: Debian's shipped rules, local tests only (-L: no DNS, no network
# checks), no user configs; Bayes off, so the series does not learn (and
# write) as it goes.
spamassassin_start() {
  local d="$1/spamd"
  mkdir -p "$d/home"
  chown nobody "$d/home"
  spamd -L -x -u nobody -H "$d/home" --listen "127.0.0.1:$SPAMD_PORT" --min-children 1 --max-children 2 \
    -s stderr --pidfile "$d/spamd.pid" --cf='use_bayes 0' --cf='bayes_auto_learn 0' >"$d/spamd.log" 2>&1 &
  DAEMON_PIDS+=($!)
}
spamassassin_ready() { wait_port "$SPAMD_PORT" 300; }

# rspamd: one normal worker, Debian's stock rules, the stub as its only name
# server (DNS list lookups are real queries answered "not listed"), no Redis
# (Bayes and the Redis-backed modules stay idle). Off: the modules that
# fetch from rspamd.com over HTTP or UDP (their names would not resolve
# anyway). The public suffix list becomes a few names, as in
# tests/external/rspamd.sh: its compile takes a minute at start on a busy
# machine, and with it .test would not be a known suffix. Logged at info:
# that is where the worker says it has loaded its Hyperscan database.
rspamd_start() {
  local d="$1/rspamd" m
  mkdir -p "$d/conf/local.d" "$d/db" "$d/run" "$d/log"
  dns_start "$1"
  cat >"$d/conf/rspamd.conf" <<EOF
.include "\$CONFDIR/common.conf"
options {
  pidfile = "\$RUNDIR/rspamd.pid";
  .include "\$CONFDIR/options.inc"
  .include(try=true; priority=1,duplicate=merge) "\$LOCAL_CONFDIR/local.d/options.inc"
}
logging { type = "file"; filename = "\$LOGDIR/rspamd.log"; level = "info"; }
worker "normal" {
  bind_socket = "127.0.0.1:$RSPAMD_PORT";
  count = 1;
  .include "\$CONFDIR/worker-normal.inc"
}
EOF
  printf 'test\ncom\norg\nnet\n' >"$d/conf/tld.dat"
  printf 'dns { nameserver = ["127.0.0.1:%s"]; }\nurl_tld = "%s";\n' "$DNS_PORT" "$d/conf/tld.dat" \
    >"$d/conf/local.d/options.inc"
  for m in fuzzy_check rspamd_update; do echo 'enabled = false;' >"$d/conf/local.d/$m.conf"; done
  rspamd -f -i -u root -g root -c "$d/conf/rspamd.conf" --var="LOCAL_CONFDIR=$d/conf" --var="DBDIR=$d/db" \
    --var="RUNDIR=$d/run" --var="LOGDIR=$d/log" >"$d/rspamd.out" 2>&1 &
  DAEMON_PIDS+=($!)
}
rspamd_ready() {
  local end=$((SECONDS + 300)) log="$1/rspamd/log/rspamd.log"
  until "${PY[@]}" get "$RSPAMD_PORT" ping >/dev/null 2>&1; do ((SECONDS < end)) || return 1; sleep 0.2; done
  # Its hs_helper compiles the rules' regular expressions for Hyperscan
  # after the start (seconds to minutes); until the worker loads them it
  # matches with PCRE, slower. Measured is the rspamd of after that.
  grep -q "loaded hyperscan engine" "$log" || return 0
  until grep -q "(normal).*full hyperscan database of .* has been loaded" "$log"; do
    ((SECONDS < end)) || { log "WARNING: rspamd has not loaded its Hyperscan database after 300 s"; return 0; }
    sleep 0.2
  done
}

# The DNS stub (bench_load dns): NXDOMAIN for every name but the senders'.
dns_start() {
  local d="$1/dns"
  mkdir -p "$d"
  [[ -x "$LOAD_BIN" ]] || die "no $LOAD_BIN (cargo build --release --example bench_load): rspamd's DNS stub"
  "$LOAD_BIN" dns --listen "127.0.0.1:$DNS_PORT" --ready-file "$d/ready" --max-seconds 7200 2>"$d/dns.log" &
  DAEMON_PIDS+=($!)
  local end=$((SECONDS + 10))
  until [[ -f "$d/ready" ]]; do ((SECONDS < end)) || die "the DNS stub did not start"; sleep 0.05; done
}

DAEMON_PIDS=()
WORKER_PIDS=()
daemons_stop() { local p; for p in "${DAEMON_PIDS[@]}"; do stop_pid "$p" 30; done; DAEMON_PIDS=(); }

cleanup() {
  gw_stop
  workers_stop
  sink_stop
  daemons_stop
  [[ -n "${DIR_CREATED:-}" ]] || return 0
  if [[ "${BENCH_KEEP:-0}" != 1 ]]; then rm -rf "$DIR_CREATED"; else log "scratch files kept in $DIR"; fi
}

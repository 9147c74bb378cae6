#!/usr/bin/env bash
# Workers benchmark: what running stages on remote workers costs, and what
# outside scanners add per message. Method: bench/README.md, section
# "Remote workers and outside scanners".
#
# 1. remote: smtp-source -> mxgate -> smtp-sink, one 10 KB message (text +
#    HTML with 40 links + a zip; bench/workers.py writes it), the attachment
#    and phishing stages either in-process ("local") or on 2 `mxgate worker`
#    processes ("remote": [[pipeline.stage]] remote = [w1, w2]). Runs
#    alternate (local remote local remote ...). Ratio of the medians
#    remote/local (target >= 0.70), and each stage's time per message from
#    GET /api/v1/pipeline/stages, idle and under load.
# 2. scanners: a gateway with no built-in stage, alone and with one adapter
#    stage each (clamav -> clamd, rspamd -> rspamd, spamassassin -> spamd):
#    LAT_N messages sent one at a time, each SMTP transaction timed from the
#    client (connect to the 250 after the data: mean, p50, p95), and the
#    stage's own mean from the stage times endpoint.
#
# Usage:  bench/workers.sh                 full run (bench/results/workers.md)
#         BENCH_QUICK=1 bench/workers.sh   small counts, ~2 minutes + build (CI)
#
# Environment (defaults: full | quick):
#   BENCH_W_N            messages per throughput run                 [20000 | 3000]
#   BENCH_W_REPEAT       throughput runs per mode (median kept)           [3 | 1]
#   BENCH_W_CHECK_N      messages sent one at a time before each run,
#                        checked at the sink and timed per stage        [50 | 20]
#   BENCH_W_LAT_N        messages per scanner latency series         [1000 | 200]
#   BENCH_W_PARTS        parts to run                     ["remote scanners"]
#   BENCH_W_SCANNERS     adapters measured       ["clamav rspamd spamassassin"]
#   BENCH_SESSIONS       concurrent SMTP sessions                         [20]
#   BENCH_QUIET_WAIT     before each timed run, wait up to this many seconds
#                        for other processes to use < 10 % of the CPU  [30 | 0]
#   BENCH_RUN_TIMEOUT    seconds allowed for one throughput run     [300 | 120]
#   Ports (127.0.0.1): BENCH_W_MX_PORT [2565] BENCH_W_ADMIN_PORT [8065]
#     BENCH_W_SINK_PORT [2765] BENCH_W_CHECK_PORT [2766] (check sink)
#     BENCH_W_WORKER_PORTS ["7471 7472"] BENCH_W_CLAMD_PORT [7473]
#     BENCH_W_SPAMD_PORT [7474] BENCH_W_RSPAMD_PORT [7475]
#     BENCH_W_DNS_PORT [2566] (DNS stub for rspamd, UDP and TCP)
#   MXGATE_BIN           [<repo>/target/release/mxgate]
#   BENCH_LOAD_BIN       DNS stub [<repo>/target/release/examples/bench_load]
#   BENCH_SKIP_BUILD=1   don't cargo build --release
#   BENCH_SKIP_INSTALL=1 don't apt-get install postfix, clamav-daemon, rspamd,
#                        spamd
#   BENCH_DIR            scratch dir [mktemp in /var/tmp]; BENCH_KEEP=1 keeps it
#   BENCH_W_RESULTS      [bench/results/workers.md | workers-quick.md]
#
# Everything listens on 127.0.0.1 (the scanners have no network tests and
# rspamd's only name server is the stub); every process started here is
# stopped by its pid. Exit 0 done, 2 a step failed.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
QUICK=${BENCH_QUICK:-0}
if [[ "$QUICK" == 1 ]]; then
  N=${BENCH_W_N:-3000}; REPEAT=${BENCH_W_REPEAT:-1}; CHECK_N=${BENCH_W_CHECK_N:-20}
  LAT_N=${BENCH_W_LAT_N:-200}; QUIET_WAIT=${BENCH_QUIET_WAIT:-0}; RUN_TIMEOUT=${BENCH_RUN_TIMEOUT:-120}
  RESULTS=${BENCH_W_RESULTS:-$HERE/results/workers-quick.md}
else
  N=${BENCH_W_N:-20000}; REPEAT=${BENCH_W_REPEAT:-3}; CHECK_N=${BENCH_W_CHECK_N:-50}
  LAT_N=${BENCH_W_LAT_N:-1000}; QUIET_WAIT=${BENCH_QUIET_WAIT:-30}; RUN_TIMEOUT=${BENCH_RUN_TIMEOUT:-300}
  RESULTS=${BENCH_W_RESULTS:-$HERE/results/workers.md}
fi
SESSIONS=${BENCH_SESSIONS:-20}
PARTS=${BENCH_W_PARTS:-remote scanners}
SCANNERS=${BENCH_W_SCANNERS:-clamav rspamd spamassassin}
MX_PORT=${BENCH_W_MX_PORT:-2565}
ADMIN_PORT=${BENCH_W_ADMIN_PORT:-8065}
SINK_PORT=${BENCH_W_SINK_PORT:-2765}
CHECK_PORT=${BENCH_W_CHECK_PORT:-2766}
read -r -a WORKER_PORTS <<<"${BENCH_W_WORKER_PORTS:-7471 7472}"
CLAMD_PORT=${BENCH_W_CLAMD_PORT:-7473}
SPAMD_PORT=${BENCH_W_SPAMD_PORT:-7474}
RSPAMD_PORT=${BENCH_W_RSPAMD_PORT:-7475}
DNS_PORT=${BENCH_W_DNS_PORT:-2566}
MXGATE_BIN=${MXGATE_BIN:-$ROOT/target/release/mxgate}
LOAD_BIN=${BENCH_LOAD_BIN:-$ROOT/target/release/examples/bench_load}
SECRET="bench-workers-secret-0123456789"
PY=(python3 "$HERE/workers.py")
SINK_USER=()
[[ $(id -u) != 0 ]] || SINK_USER=(-u postfix) # smtp-sink refuses to run as root

# shellcheck source=bench/workers_lib.sh
source "$HERE/workers_lib.sh"

# ------------------------------------------------------------ remote stages
worker_start() { # index dir
  local i=$1 d="$2/w$(($1 + 1))" port=${WORKER_PORTS[$1]}
  mkdir -p "$d"
  wait_port_free "$port" 20 || die "port 127.0.0.1:$port is still in use"
  cat >"$d/worker.toml" <<EOF
[worker]
listen = "127.0.0.1:$port"
secret = "$SECRET"
stages = ["attachment", "phishing"]
hostname = "mx.bench.test"
# The gateway's [relay] domains: phishing protects the same ones.
domains = ["example.test", "check.test"]

[scan]
stages = ["attachment", "phishing"]

[log]
level = "warn"
EOF
  "$MXGATE_BIN" worker --config "$d/worker.toml" >>"$d/worker.log" 2>&1 &
  WORKER_PIDS[i]=$!
}

workers_stop() { local p; for p in "${WORKER_PIDS[@]}"; do stop_pid "$p" 20; done; WORKER_PIDS=(); }

remote_section() { # the two stages on the workers
  local p s="" name
  for p in "${WORKER_PORTS[@]}"; do s+="${s:+, }\"127.0.0.1:$p\""; done
  for name in attachment phishing; do
    printf '\n[[pipeline.stage]]\nname = "%s"\nremote = [%s]\nsecret = "%s"\ntimeout = "5s"\non_error = "tempfail"\n' \
      "$name" "$s" "$SECRET"
  done
}

# tp_run MODE REP: check, then one timed run; appends
# "MODE REP e2e_s ingress_s got source_rc others%" to $DIR/tp.txt.
tp_run() {
  local mode=$1 rep=$2 d="$DIR/tp-$1-$2" extra=""
  rm -rf "$d"; mkdir -p "$d"; chmod 755 "$DIR" "$d"
  [[ $mode == local ]] || extra=$(remote_section)
  gw_start "$d" '["attachment", "phishing"]' "$extra"
  check_run "$d" "$CHECK_N" || die "$mode run $rep: check failed: $(cat "$d/check.json")"
  stages >"$d/stages-check.json"
  sink_start "$d" "$N"
  quiet
  snap
  stages >"$d/stages-before.json"
  local t0 t1 t2="" rc=0 src=0
  t0=$(now)
  timeout "$RUN_TIMEOUT" smtp-source -s "$SESSIONS" -m "$N" -F "$DIR/msg.eml" -f bench@sender.test \
    -t user@example.test -M client.bench.test "127.0.0.1:$MX_PORT" >"$d/source.out" 2>&1 || src=$?
  t1=$(now)
  local end=$((SECONDS + RUN_TIMEOUT))
  while [[ ! -f "$d/sink.done" ]] && ((SECONDS < end)); do sleep 0.05; done
  local cpu; cpu=$(foreign)
  stages >"$d/stages-after.json"
  "${PY[@]}" get "$ADMIN_PORT" api/v1/pipeline/workers >"$d/workers.json" 2>/dev/null || echo '[]' >"$d/workers.json"
  [[ -f "$d/sink.done" ]] && read -r rc t2 <"$d/sink.done"
  local got; got=$(sink_count "$d")
  sink_stop; gw_stop
  if [[ -z "$t2" || $rc != 0 ]]; then
    tail -3 "$d/source.out" "$d/mxgate.log" >&2 || true
    die "$mode run $rep: the sink got $got of $N messages"
  fi
  local e2e ingress
  e2e=$(python3 -c "print(round($t2 - $t0, 3))"); ingress=$(python3 -c "print(round($t1 - $t0, 3))")
  log "$(printf '%-6s run %d: %d messages end to end in %s s: %s msg/s (ingress %s s; others %s %% CPU)' \
    "$mode" "$rep" "$N" "$e2e" "$(python3 -c "print(round($N / $e2e, 1))")" "$ingress" "$cpu")"
  echo "$mode $rep $e2e $ingress $got $src $cpu" >>"$DIR/tp.txt"
  rm -rf "$d/gw-data"
}

remote() {
  : >"$DIR/tp.txt"
  local i
  for i in "${!WORKER_PORTS[@]}"; do worker_start "$i" "$DIR"; done
  for i in "${!WORKER_PORTS[@]}"; do
    wait_port "${WORKER_PORTS[$i]}" 30 \
      || { tail -5 "$DIR/w$((i + 1))/worker.log" >&2; die "worker $((i + 1)) did not listen"; }
  done
  log "remote: $N messages of $(wc -c <"$DIR/msg.eml") octets per run, $SESSIONS sessions, $REPEAT runs per mode"
  local rep
  for ((rep = 1; rep <= REPEAT; rep++)); do
    tp_run local "$rep"
    tp_run remote "$rep"
  done
  workers_stop
}

# --------------------------------------------------------------- scanners
adapter_section() { # name
  case $1 in
    clamav) printf '\n[[pipeline.stage]]\nname = "clamav"\naddress = "127.0.0.1:%s"\n' "$CLAMD_PORT" ;;
    rspamd) printf '\n[[pipeline.stage]]\nname = "rspamd"\nurl = "http://127.0.0.1:%s"\n' "$RSPAMD_PORT" ;;
    spamassassin) printf '\n[[pipeline.stage]]\nname = "spamassassin"\naddress = "127.0.0.1:%s"\n' "$SPAMD_PORT" ;;
    none) return 0 ;;
  esac
  printf 'timeout = "30s"\non_error = "tempfail"\n'
}

# lat_run NAME: the gateway with adapter NAME (or none); what one clean
# message gets at the check sink, LAT_N timed transactions, the stage's
# totals over them, then one message the scanner must catch (EICAR for
# clamd, GTUBE for the others), which must land in the quarantine.
lat_run() {
  local name=$1 d="$DIR/lat-$1"
  rm -rf "$d"; mkdir -p "$d"; chmod 755 "$d"
  gw_start "$d" '[]' "$(adapter_section "$name")"
  check_run "$d" 1 || die "$name: the clean message did not arrive as delivered: $(cat "$d/check.json")"
  # Warm-up, not timed: spamd's children finish loading on their first messages.
  "${PY[@]}" latency --target "127.0.0.1:$MX_PORT" --file "$DIR/msg.eml" --count 5 >"$d/warmup.json" \
    || die "$name: warm-up failed: $(cut -c1-400 "$d/warmup.json")"
  quiet
  stages >"$d/stages-before.json"
  log "$name: $LAT_N messages one at a time"
  timeout $((LAT_N * 30 + 60)) "${PY[@]}" latency --target "127.0.0.1:$MX_PORT" --file "$DIR/msg.eml" --count "$LAT_N" \
    >"$d/lat.json" || die "$name: latency series failed: $(cut -c1-400 "$d/lat.json")"
  stages >"$d/stages-after.json"
  if [[ $name != none ]]; then
    local bad=gtube sym
    [[ $name == clamav ]] && bad=eicar
    "${PY[@]}" latency --target "127.0.0.1:$MX_PORT" --file "$DIR/$bad.eml" --count 1 >"$d/bad.json" \
      || die "$name: the $bad message was not accepted: $(cat "$d/bad.json")"
    case $name in clamav) sym=CLAMAV_VIRUS ;; rspamd) sym=RSPAMD_ ;; spamassassin) sym=SA_SPAM ;; esac
    local end=$((SECONDS + 10))
    until "${PY[@]}" get "$ADMIN_PORT" api/v1/quarantine >"$d/quarantine.json" 2>/dev/null \
      && grep -q "$sym" "$d/quarantine.json"; do
      ((SECONDS < end)) || die "$name: the $bad message is not in the quarantine with $sym"
      sleep 0.2
    done
  fi
  log "$name: $(python3 -c 'import json, sys; r = json.load(open(sys.argv[1]))
print("mean %.2f ms, p50 %.2f, p95 %.2f" % (r["mean_ms"], r["p50_ms"], r["p95_ms"]))' "$d/lat.json")"
  gw_stop
}

scanners() {
  local s
  log "scanners: starting $SCANNERS"
  {
    [[ " $SCANNERS " != *" clamav "* ]] || clamd --version
    [[ " $SCANNERS " != *" rspamd "* ]] || rspamd --version
    [[ " $SCANNERS " != *" spamassassin "* ]] || spamd --version | head -1
  } >"$DIR/versions.txt" 2>&1 || true
  for s in $SCANNERS; do "${s}_start" "$DIR/daemons"; done
  for s in $SCANNERS; do "${s}_ready" "$DIR/daemons" || die "$s did not start (logs in $DIR/daemons)"; done
  sink_start "$DIR" 0
  for s in none $SCANNERS; do lat_run "$s"; done
  sink_stop
  daemons_stop
}

# ------------------------------------------------------------------- main
main() {
  for p in "$MX_PORT" "$ADMIN_PORT" "$SINK_PORT" "$CHECK_PORT" "${WORKER_PORTS[@]}" "$CLAMD_PORT" "$SPAMD_PORT" \
    "$RSPAMD_PORT" "$DNS_PORT"; do
    port_busy "$p" && die "port 127.0.0.1:$p is in use; set BENCH_W_*_PORT(S)"
  done
  install_deps
  if [[ -z "${BENCH_DIR:-}" ]]; then
    DIR=$(mktemp -d /var/tmp/mxwbench.XXXXXX); DIR_CREATED=$DIR
  else
    DIR=$BENCH_DIR; mkdir -p "$DIR"
  fi
  chmod 755 "$DIR"
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
    log "cargo build --release --bins --example bench_load"
    (cd "$ROOT" && cargo build --release --bins --example bench_load) >"$DIR/build.log" 2>&1 \
      || { tail -20 "$DIR/build.log" >&2; die "build failed"; }
  fi
  [[ -x "$MXGATE_BIN" ]] || die "missing $MXGATE_BIN (cargo build --release --bins)"
  # The revision, taken with the copy: commits may land during the run.
  local rev; rev="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  [[ -z "$(git -C "$ROOT" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ]] \
    || rev="$rev+uncommitted-changes"
  rev="$rev, binary built $(date -u -r "$MXGATE_BIN" '+%H:%M UTC')"
  # Private copies: a rebuild during the run must not swap binaries.
  cp "$MXGATE_BIN" "$DIR/mxgate" && MXGATE_BIN="$DIR/mxgate"
  [[ ! -x "$LOAD_BIN" ]] || { cp "$LOAD_BIN" "$DIR/bench_load" && LOAD_BIN="$DIR/bench_load"; }
  "${PY[@]}" message "$DIR" >/dev/null
  ulimit -n 65536 2>/dev/null || true
  local t0=$SECONDS
  [[ " $PARTS " != *" remote "* ]] || remote
  [[ " $PARTS " != *" scanners "* ]] || scanners
  local summary cpu
  summary=$(python3 "$HERE/workers_report.py" "$DIR" "$N" "$CHECK_N" "$LAT_N" "$SESSIONS")
  cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
  mkdir -p "$(dirname "$RESULTS")"
  {
    echo "# Workers benchmark$( [[ $QUICK == 1 ]] && echo ' (quick mode)')"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), mxgate $rev (sha256 $(sha256sum "$MXGATE_BIN" | cut -c1-12)),"\
      "$(nproc) cores ($cpu), $((SECONDS - t0)) s."
    echo "Gateway, workers, scanners, load generator and sink on one machine (loopback)."\
      "Method: bench/README.md, \"Remote workers and outside scanners\"."
    echo
    echo "$summary"
  } >"$RESULTS"
  echo "$summary"
  log "results: $RESULTS ($((SECONDS - t0)) s)"
}

main "$@"

#!/usr/bin/env bash
# Quarantine benchmark: search and show over a large
# quarantine through mxgate's admin API, and SMTP acceptance when every
# message is quarantined against when every message is delivered.
#
# 1. `bench_quarantine seed` fills a store with N records (~2 KB bodies)
#    through mxgate's own storage code; mxgate then starts on it (its search
#    index is rebuilt from storage: the startup time and RSS are measured)
#    and `bench_quarantine query` times list/search and show requests over
#    HTTP, one at a time, per kind of filter.
# 2. The same messages (~10 KB text plus a zip holding an .exe) go over SMTP
#    to two configurations that differ only in the attachment symbol's action
#    (quarantine or deliver); deliveries go to a silent next hop (tarpit) so
#    they wait instead of competing for the CPU. Runs alternate
#    (Q D, D Q, Q D...); the medians are compared.
#
# Usage:  bench/quarantine.sh              full run (figures quoted in the README)
#         BENCH_QUICK=1 bench/quarantine.sh   small counts (CI; run.sh calls it)
#
# Environment (defaults: full | quick):
#   BENCH_Q_RECORDS     records seeded                     [1000000 | 100000]
#   BENCH_Q_PER_KIND    timed requests per kind of query          [200 | 100]
#   BENCH_Q_SMTP_N      messages per acceptance run             [8000 | 1500]
#   BENCH_Q_REPEAT      acceptance runs per configuration             [3 | 3]
#   BENCH_Q_PARTS       which parts to run             ["search acceptance"]
#   BENCH_SESSIONS      concurrent SMTP sessions                         [20]
#   BENCH_QUIET_WAIT    before the queries and before the acceptance runs, wait
#                       up to this many seconds for other processes to use
#                       < 10 % of the CPU (bench/cpuwatch.py)             [30 | 0]
#   BENCH_MX_PORT [2525] BENCH_ADMIN_PORT [8025] BENCH_Q_TARPIT_PORT [2702]
#   MXGATE_BIN          [<repo>/target/release/mxgate]
#   BENCH_Q_BIN         [<repo>/target/release/examples/bench_quarantine]
#   BENCH_SKIP_BUILD=1  don't cargo build --release
#   BENCH_DIR           scratch dir [mktemp in /var/tmp]; BENCH_KEEP=1 keeps it
#   BENCH_Q_RESULTS     [bench/results/quarantine.md | quarantine-quick.md]
#
# Everything listens on 127.0.0.1; every process started here is stopped by
# its pid. Exit 0 done, 2 a step failed.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
QUICK=${BENCH_QUICK:-0}
if [[ "$QUICK" == 1 ]]; then
  RECORDS=${BENCH_Q_RECORDS:-100000}; PER_KIND=${BENCH_Q_PER_KIND:-100}; SMTP_N=${BENCH_Q_SMTP_N:-1500}
  RESULTS=${BENCH_Q_RESULTS:-$HERE/results/quarantine-quick.md}
else
  RECORDS=${BENCH_Q_RECORDS:-1000000}; PER_KIND=${BENCH_Q_PER_KIND:-200}; SMTP_N=${BENCH_Q_SMTP_N:-8000}
  RESULTS=${BENCH_Q_RESULTS:-$HERE/results/quarantine.md}
fi
REPEAT=${BENCH_Q_REPEAT:-3}
PARTS=${BENCH_Q_PARTS:-search acceptance}
if [[ "$QUICK" == 1 ]]; then QUIET_WAIT=${BENCH_QUIET_WAIT:-0}; else QUIET_WAIT=${BENCH_QUIET_WAIT:-30}; fi
SESSIONS=${BENCH_SESSIONS:-20}
MX_PORT=${BENCH_MX_PORT:-2525}
ADMIN_PORT=${BENCH_ADMIN_PORT:-8025}
TARPIT_PORT=${BENCH_Q_TARPIT_PORT:-2702}
MXGATE_BIN=${MXGATE_BIN:-$ROOT/target/release/mxgate}
QBIN=${BENCH_Q_BIN:-$ROOT/target/release/examples/bench_quarantine}
export BENCH_Q_TOKEN="bench-quarantine-token"

log() { printf '[quarantine %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "FATAL: $*"; exit 2; }
port_busy() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }
pid_alive() { [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null; }
now() { echo "$EPOCHREALTIME"; }
json() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
# Other processes' CPU share (bench/cpuwatch.py): wait for a quiet machine
# (full mode), and record the share during each timed phase.
quiet() {
  ((QUIET_WAIT > 0)) || return 0
  local q; q=$(python3 "$HERE/cpuwatch.py" quiet --ours $$ --max-wait "$QUIET_WAIT" --threshold 10)
  [[ $q == *'"quiet": true'* ]] || log "WARNING: machine still busy after ${QUIET_WAIT}s: $q"
}
# CPU time the hypervisor gave to other machines also shows in the figures
# (steal, /proc/stat): it counts as "other processes" too.
steal() { awk 'NR == 1 {print $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat; }
snap() { python3 "$HERE/cpuwatch.py" snap "$DIR/cpu.snap" --ours $$; steal >"$DIR/steal.snap"; }
foreign() {
  local f s0 t0 s1 t1
  f=$(python3 "$HERE/cpuwatch.py" diff "$DIR/cpu.snap" --ours $$ \
    | python3 -c 'import json,sys; print(round(json.load(sys.stdin).get("foreign_pct") or 0))') || f=999
  read -r s0 t0 <"$DIR/steal.snap"; read -r s1 t1 < <(steal)
  # Both in % of one core, like cpuwatch.py's figure (2 cores = 200 %).
  echo $((f + (s1 - s0) * 100 * $(nproc) / (t1 - t0 > 0 ? t1 - t0 : 1)))
}
# CPU time (user + system, clock ticks) a process has used.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
kb() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$2/status"; }

MX_PID="" TARPIT_PID="" STARTUP=""
stop_pid() { # pid seconds
  pid_alive "$1" || return 0
  kill -TERM "$1" 2>/dev/null || true
  local end=$((SECONDS + $2))
  while pid_alive "$1" && ((SECONDS < end)); do sleep 0.1; done
  pid_alive "$1" && { log "pid $1 ignored SIGTERM; SIGKILL"; kill -KILL "$1" 2>/dev/null || true; }
  wait "$1" 2>/dev/null || true
}
cleanup() {
  stop_pid "$TARPIT_PID" 5
  stop_pid "$MX_PID" 40
  # A BENCH_DIR given by the caller (run.sh) is the caller's to remove.
  [[ -n "${DIR_CREATED:-}" ]] || return 0
  if [[ "${BENCH_KEEP:-0}" != 1 ]]; then rm -rf "$DIR_CREATED"; else log "scratch files kept in $DIR"; fi
}

# mx_config DIR STAGES ACTION: storage in DIR/store; ACTION is the
# attachment symbol's action (empty: the default).
mx_config() {
  cat <<EOF
[smtp]
listen = "127.0.0.1:$MX_PORT"
hostname = "mx.bench.test"

[relay]
domains = ["example.test", "other.test"]
downstream = "127.0.0.1:$TARPIT_PORT"
tls = "none"
outbound = "127.0.0.1:$TARPIT_PORT"

[storage]
path = "$1/store"

[admin]
listen = "127.0.0.1:$ADMIN_PORT"
token = "$BENCH_Q_TOKEN"

[dns]
nameservers = ["127.0.0.1:$TARPIT_PORT"]

[log]
level = "warn"

[scan]
stages = $2
EOF
  # A zip holding an .exe raises both symbols (blocked extension, program).
  if [[ -n "$3" ]]; then
    printf '\n[policy.symbols]\n'
    printf '%s = { score = 0.0, action = "%s" }\n' ATTACHMENT_EXECUTABLE "$3" ATTACHMENT_BLOCKED_EXTENSION "$3"
  fi
}

# mx_start DIR STAGES ACTION -> MX_PID, and STARTUP (seconds to /healthz).
mx_start() {
  local p end=$((SECONDS + 20))
  for p in "$MX_PORT" "$ADMIN_PORT"; do
    while port_busy "$p"; do ((SECONDS < end)) || die "port 127.0.0.1:$p is still in use"; sleep 0.1; done
  done
  mx_config "$@" >"$1/mxgate.toml"
  local t0; t0=$(now)
  "$MXGATE_BIN" serve --config "$1/mxgate.toml" >>"$1/mxgate.log" 2>&1 &
  MX_PID=$!
  STARTUP=$("$QBIN" ready --admin "127.0.0.1:$ADMIN_PORT" --since "$t0" --timeout 600) \
    || { tail -5 "$1/mxgate.log" >&2; die "mxgate did not start"; }
  # The answer must come from this gateway, not from another on the port.
  pid_alive "$MX_PID" || { tail -5 "$1/mxgate.log" >&2; die "mxgate exited at start"; }
}

# ------------------------------------------------------------ search/show
search_show() {
  local d="$DIR/search"
  rm -rf "$d/store"
  mkdir -p "$d"
  log "seeding $RECORDS quarantined records (bench_quarantine seed)"
  local seed; seed=$("$QBIN" seed --dir "$d/store" --count "$RECORDS") || die "seed failed"
  echo "$seed" >"$d/seed.json"
  local rate secs; rate=$(json "$seed" inserts_per_s); secs=$(json "$seed" insert_secs)
  local disk; disk=$(du -sm "$d/store" | cut -f1)
  SEED_LINE=$(printf 'seed: %d records in %.1f s (%.0f records/s, 512 writes in flight); %d MB on disk' \
    "$RECORDS" "$secs" "$rate" "$disk")
  log "$SEED_LINE"
  # Written back before the gateway starts, so that startup and queries do
  # not share the disk with gigabytes of writeback (the page cache stays warm).
  sync
  log "starting mxgate on them (the search index is rebuilt at startup)"
  mx_start "$d" '[]' ''
  local startup=$STARTUP
  local rss hwm; rss=$(kb VmRSS "$MX_PID"); hwm=$(kb VmHWM "$MX_PID")
  START_LINE=$(printf 'startup with %d records: %.2f s; RSS after startup %d MB (peak %d MB)' \
    "$RECORDS" "$startup" $((rss / 1024)) $((hwm / 1024)))
  log "$START_LINE"
  quiet
  log "queries: $PER_KIND timed requests per kind, one at a time"
  snap
  "$QBIN" query --admin "127.0.0.1:$ADMIN_PORT" --per-kind "$PER_KIND" | tee "$d/query.txt" >&2 \
    || die "queries failed"
  rss=$(kb VmRSS "$MX_PID")
  AFTER_LINE=$(printf 'RSS after the queries: %d MB; other processes (and steal) used %s %% of a CPU during them' \
    $((rss / 1024)) "$(foreign)")
  log "$AFTER_LINE"
  stop_pid "$MX_PID" 40
  MX_PID=""
  rm -rf "$d/store"
  sync
}

# ------------------------------------------------------------- acceptance
# accept_run ACTION REP: one run on a fresh store; appends "ACTION REP msg/s
# others% us/msg" to $DIR/accept.txt. Checks every message got the verdict.
accept_run() {
  local action=$1 rep=$2 d="$DIR/accept-$1-$2"
  rm -rf "$d/store"
  mkdir -p "$d"
  "$QBIN" tarpit --listen "127.0.0.1:$TARPIT_PORT" --max-seconds 900 2>>"$d/tarpit.log" &
  TARPIT_PID=$!
  mx_start "$d" '["attachment"]' "$action"
  snap
  local ticks0; ticks0=$(ticks "$MX_PID")
  local out; out=$("$QBIN" send --target "127.0.0.1:$MX_PORT" --sessions "$SESSIONS" --count "$SMTP_N") \
    || die "$action run $rep: sending failed: $out"
  # CPU figures first: the count below costs the gateway CPU too.
  local us cpu; us=$(( ($(ticks "$MX_PID") - ticks0) * 1000000 / $(getconf CLK_TCK) / SMTP_N )); cpu=$(foreign)
  echo "$out" >"$d/send.json"
  local held want=0; held=$("$QBIN" count --admin "127.0.0.1:$ADMIN_PORT")
  [[ $action == quarantine ]] && want=$SMTP_N
  ((held == want)) || die "$action run $rep: $held records in the quarantine, expected $want"
  local rate; rate=$(json "$out" msgs_per_s)
  log "$(printf '%-10s run %d: %d messages in %.2f s: %.1f msg/s, mxgate CPU %d us/msg (%d held; others, steal included: %s %% CPU)' \
    "$action" "$rep" "$SMTP_N" "$(json "$out" secs)" "$rate" "$us" "$held" "$cpu")"
  echo "$action $rep $rate $cpu $us" >>"$DIR/accept.txt"
  # The tarpit first: its closed connections end the waiting deliveries.
  stop_pid "$TARPIT_PID" 5
  TARPIT_PID=""
  stop_pid "$MX_PID" 40
  MX_PID=""
  rm -rf "$d/store"
}

acceptance() {
  : >"$DIR/accept.txt"
  quiet
  log "acceptance: $SMTP_N messages per run, $SESSIONS sessions, $REPEAT runs per configuration"
  local rep
  for ((rep = 1; rep <= REPEAT; rep++)); do
    if ((rep % 2)); then accept_run quarantine "$rep"; accept_run deliver "$rep"
    else accept_run deliver "$rep"; accept_run quarantine "$rep"; fi
  done
  ACCEPT_LINES=$(python3 - "$DIR/accept.txt" <<'EOF'
import statistics, sys
# A run during which other processes (or the hypervisor: steal) used >= 10 %
# of a CPU is marked disturbed (*). The medians take every run; pairs ran
# back to back, so a pair's ratio is the least exposed to drift.
runs, pairs, cost = {}, {}, {}
for line in open(sys.argv[1]):
    k, rep, v, cpu, us = line.split()
    bad = not cpu.isdigit() or int(cpu) >= 10
    runs.setdefault(k, []).append((float(v), bad))
    pairs.setdefault(rep, {})[k] = (float(v), bad)
    cost.setdefault(k, []).append(int(us))
med = {k: statistics.median(v for v, _ in runs[k]) for k in runs}
for k in ("quarantine", "deliver"):
    print(f"acceptance, every message {k}{'d' if k == 'quarantine' else 'ed'}: median {med[k]:.1f} msg/s "
          f"(runs: {', '.join(f'{v:.1f}' + '*' * bad for v, bad in runs[k])})")
ratios = [(p["quarantine"][0] / p["deliver"][0], p["quarantine"][1] or p["deliver"][1])
          for p in pairs.values() if len(p) == 2]
print(f"quarantine/deliver per pair of runs: {', '.join(f'{x:.2f}' + '*' * bad for x, bad in ratios)}"
      " (* = others used >= 10 % of a CPU)")
# CPU per message is less exposed to other processes than the rate.
cq, cd = statistics.median(cost["quarantine"]), statistics.median(cost["deliver"])
print(f"mxgate CPU per accepted message (median): quarantine {cq:.0f} us, deliver {cd:.0f} us ({cq / cd:.2f}x)")
print(f"ratio quarantine/deliver acceptance: {med['quarantine'] / med['deliver']:.2f} (target >= 0.90)"
      + ("; WARNING: disturbed runs, see above" if any(bad for _, bad in ratios) else ""))
EOF
)
}

# ------------------------------------------------------------------- main
main() {
  for p in "$MX_PORT" "$ADMIN_PORT" "$TARPIT_PORT"; do
    port_busy "$p" && die "port 127.0.0.1:$p is in use; set BENCH_MX_PORT/BENCH_ADMIN_PORT/BENCH_Q_TARPIT_PORT"
  done
  if [[ -z "${BENCH_DIR:-}" ]]; then
    DIR=$(mktemp -d /var/tmp/mxqbench.XXXXXX); DIR_CREATED=$DIR
  else
    DIR=$BENCH_DIR; mkdir -p "$DIR"
  fi
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
    log "cargo build --release --bins --example bench_quarantine"
    (cd "$ROOT" && cargo build --release --bins --example bench_quarantine) >"$DIR/build.log" 2>&1 \
      || { tail -20 "$DIR/build.log" >&2; die "build failed"; }
  fi
  [[ -x "$MXGATE_BIN" && -x "$QBIN" ]] || die "missing $MXGATE_BIN or $QBIN (cargo build --release --bins --example bench_quarantine)"
  # Private copies: a rebuild during the run must not swap binaries.
  cp "$MXGATE_BIN" "$DIR/mxgate" && MXGATE_BIN="$DIR/mxgate"
  cp "$QBIN" "$DIR/bench_quarantine" && QBIN="$DIR/bench_quarantine"
  ulimit -n 65536 2>/dev/null || true
  local t0=$SECONDS
  SEED_LINE="" START_LINE="" AFTER_LINE="" ACCEPT_LINES=""
  [[ " $PARTS " != *" search "* ]] || search_show
  [[ " $PARTS " != *" acceptance "* ]] || acceptance
  local rev; rev="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  [[ -z "$(git -C "$ROOT" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ]] || rev="$rev+uncommitted-changes"
  mkdir -p "$(dirname "$RESULTS")"
  {
    echo "# Quarantine benchmark$( [[ $QUICK == 1 ]] && echo ' (quick mode)')"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), mxgate $rev (sha256 $(sha256sum "$MXGATE_BIN" | cut -c1-12)), $(nproc) cores, $((SECONDS - t0)) s. Method: the header of bench/quarantine.sh."
    echo
    echo '```'
    echo "$SEED_LINE"; echo "$START_LINE"; echo
    cat "$DIR/search/query.txt" 2>/dev/null || true; echo "$AFTER_LINE"; echo
    echo "$ACCEPT_LINES"
    echo '```'
  } >"$RESULTS"
  local note=""
  [[ $RECORDS == 1000000 ]] || note=" [over $RECORDS records; the target is for 1000000]"
  grep -E '^quarantine (search|show) p99' "$DIR/search/query.txt" 2>/dev/null | sed "s/\$/$note/" || true
  echo "$ACCEPT_LINES" | grep -E '^(ratio|quarantine/deliver per pair|mxgate CPU)' || true
  log "results: $RESULTS ($((SECONDS - t0)) s)"
}

main "$@"

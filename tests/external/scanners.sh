#!/usr/bin/env bash
# The clamav and spamassassin adapters against the real daemons (Debian's
# clamd and spamd), each a private instance on loopback. clamd loads only a
# signature database written here (EICAR as a body signature; freshclam never
# runs). spamd runs with Debian's shipped rules and local tests only (-L: no
# DNS, no network checks), so no rule download is needed. Two gateways relay
# to a recording sink: A reaches both daemons over TCP with on_error =
# tempfail and max_size = 10 KiB; B over their Unix sockets with on_error =
# skip and a max_size above clamd's own StreamMaxLength. Then swaks sends
# clean mail, EICAR, GTUBE and oversized mail, and clamd is killed mid-run.
# Prints each stage's mean time per message as seen through mxgate.
# Usage: tests/external/scanners.sh [path/to/mxgate]
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-target/debug/mxgate}
[ -x "$BIN" ] || cargo build --quiet
if ! command -v clamd >/dev/null || ! command -v spamd >/dev/null || ! command -v swaks >/dev/null; then
  apt-get update -qq
  # clamav-freshclam comes along as a dependency; nothing here starts it.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clamav-daemon spamd spamassassin swaks >/dev/null
fi

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
# spamd's children run as nobody and need to reach their home below here.
chmod 755 "$work"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq "${2:-100}"); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.2; done; return 1; }
wait_file() { for _ in $(seq 150); do [ -S "$1" ] && return 0; sleep 0.2; done; return 1; }
http_get() { python3 -c 'import sys, urllib.request as u
sys.stdout.write(u.urlopen(u.Request(sys.argv[1], headers={"Authorization": "Bearer " + sys.argv[2]}), timeout=5).read().decode())' "$@"; }

# The EICAR test file (68 bytes, no newline) and an ndb body signature for
# it, matching anywhere in any file type (target 0, offset *).
printf '%s' 'X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*' >"$work/eicar.txt"
mkdir -p "$work/clamdb" "$work/clamtmp"
echo "Eicar-Test-Signature:0:*:$(od -An -tx1 -v "$work/eicar.txt" | tr -d ' \n')" >"$work/clamdb/mxgate-test.ndb"
CLAMD=$(free_port)
cat >"$work/clamd.conf" <<CFG
Foreground yes
DatabaseDirectory $work/clamdb
TemporaryDirectory $work/clamtmp
TCPSocket $CLAMD
TCPAddr 127.0.0.1
LocalSocket $work/clamd.sock
LogFile $work/clamd.log
StreamMaxLength 64K
SelfCheck 0
CFG
clamd -c "$work/clamd.conf" >"$work/clamd.out" 2>&1 &
clamd_pid=$!
pids+=($clamd_pid)

SPAMD=$(free_port)
mkdir -p "$work/sa"
chown nobody "$work/sa"
spamd -L -x -u nobody -H "$work/sa" --listen "127.0.0.1:$SPAMD" --listen "$work/spamd.sock" \
  --min-children 1 --max-children 2 -s stderr --pidfile "$work/spamd.pid" >"$work/spamd.log" 2>&1 &
pids+=($!)

if ! wait_port "$CLAMD" 150 || ! wait_file "$work/clamd.sock"; then
  echo "FAIL - clamd did not start"; tail -20 "$work/clamd.out" "$work/clamd.log"; exit 1
fi
# spamd compiles its rules before it listens.
if ! wait_port "$SPAMD" 300 || ! wait_file "$work/spamd.sock"; then
  echo "FAIL - spamd did not start"; tail -20 "$work/spamd.log"; exit 1
fi

mkdir -p "$work/sink"
python3 tests/docker/sink.py --listen 127.0.0.1 --port 0 --dir "$work/sink" --port-file "$work/sink.port" 2>"$work/sink.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/sink.port" ] && break; sleep 0.1; done
SINK=$(cat "$work/sink.port")
DNS=$(free_port) # nothing listens: no stage here resolves names
TOKEN=scanners-check-token

# gateway NAME CLAMAV_ADDRESS SPAMD_ADDRESS ON_ERROR MAX_SIZE: writes
# $work/NAME.toml, starts it, sets SMTP_<NAME> and ADMIN_<NAME>.
gateway() {
  local name=$1 smtp admin
  smtp=$(free_port); admin=$(free_port)
  cat >"$work/$name.toml" <<CFG
[smtp]
listen = "127.0.0.1:$smtp"
hostname = "mx-$name.scanners.test"
[relay]
domains = ["example.test"]
downstream = "127.0.0.1:$SINK"
[storage]
path = "$work/data-$name"
[admin]
listen = "127.0.0.1:$admin"
token = "$TOKEN"
[dns]
nameservers = ["127.0.0.1:$DNS"]
[scan]
stages = []

[[pipeline.stage]]
name = "clamav"
address = "$2"
timeout = "20s"
on_error = "$4"
max_size = $5

[[pipeline.stage]]
name = "spamassassin"
address = "$3"
timeout = "20s"
on_error = "$4"
CFG
  "$BIN" serve --config "$work/$name.toml" 2>"$work/$name.log" &
  pids+=($!)
  wait_port "$smtp" || { echo "FAIL - gateway $name did not start"; tail -20 "$work/$name.log"; exit 1; }
  printf -v "SMTP_$name" %s "$smtp"
  printf -v "ADMIN_$name" %s "$admin"
}
gateway A "127.0.0.1:$CLAMD" "127.0.0.1:$SPAMD" tempfail 10240
gateway B "$work/clamd.sock" "$work/spamd.sock" skip 1048576

passed=0; failed=0
ok()   { echo "ok   - $1"; passed=$((passed+1)); }
fail() { echo "FAIL - $1"; failed=$((failed+1)); sed 's/^/     /' "$work/last.out" | tail -15; }
count() { find "$work/sink" -name "*.eml" | wc -l; }
delivered() { for _ in $(seq 150); do [ "$(count)" -ge "$1" ] && return 0; sleep 0.1; done; return 1; }
at_sink() { grep -l "^Subject: $1" "$work"/sink/*.eml 2>/dev/null | head -1; }
# send GATEWAY SUBJECT [swaks args...]: one message; output in last.out.
send() { local port="SMTP_$1" subject=$2; shift 2
  swaks --server 127.0.0.1 --port "${!port}" --from a@sender.test --to b@example.test --helo swaks.test \
    --timeout 60 --header "Subject: $subject" "$@" >"$work/last.out" 2>&1; }
queued_id() { grep -o "queued as [0-9A-Za-z]*" "$work/last.out" | awk '{print $3}'; }
# held GATEWAY SYMBOL: the message just sent is held in the quarantine,
# which names SYMBOL.
held() { local id; id=$(queued_id) && [ -n "$id" ] \
  && "$BIN" quarantine show "$id" --config "$work/$1.toml" >>"$work/last.out" 2>&1 \
  && grep -q "status: *held" "$work/last.out" && grep -q "$2" "$work/last.out"; }
header_of() { grep -i "^$2:" "$1" | head -1; }

# 1. Clean mail over TCP: delivered, with spamd's score in the verdict.
n=$(count)
if send A "scanners clean tcp" --body "Lunch at noon? See you there." && delivered $((n+1)) \
   && f=$(at_sink "scanners clean tcp") && [ -n "$f" ] && header_of "$f" X-Mxgate-Symbols | grep -q "SA_SCORE" \
   && ! header_of "$f" X-Mxgate-Symbols | grep -q "CLAMAV_"; then
  ok "clean mail over TCP delivered ($(header_of "$f" X-Mxgate-Symbols))"; else fail "clean mail over TCP"; fi

# 2. EICAR as an attachment: clamd finds it, the message is held.
if send A "scanners eicar tcp" --attach-type text/plain --attach-name readme.txt --attach @"$work/eicar.txt" \
   && grep -q "^<-  250 " "$work/last.out" && held A CLAMAV_VIRUS && grep -q "Eicar-Test-Signature" "$work/last.out"; then
  ok "EICAR attachment quarantined with CLAMAV_VIRUS (TCP)"; else fail "EICAR over TCP"; fi

# 3. GTUBE: spamd calls it spam; SA_SPAM quarantines.
GTUBE='XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X'
if send A "scanners gtube tcp" --body "$GTUBE" && held A SA_SPAM && grep -q "GTUBE" "$work/last.out"; then
  ok "GTUBE quarantined with SA_SPAM (TCP)"; else fail "GTUBE over TCP"; fi

# 4. Over max_size (10 KiB): not sent to clamd, never clean.
python3 -c "print(('x' * 75 + '\n') * 400, end='')" >"$work/big.txt"
if send A "scanners big tcp" --body @"$work/big.txt" && held A CLAMAV_LIMIT && grep -q "over max_size" "$work/last.out"; then
  ok "message over max_size quarantined with CLAMAV_LIMIT"; else fail "max_size"; fi

# 5. The same over the Unix sockets of both daemons.
n=$(count)
if send B "scanners clean unix" --body "Minutes of the meeting attached." && delivered $((n+1)) \
   && f=$(at_sink "scanners clean unix") && [ -n "$f" ] && header_of "$f" X-Mxgate-Symbols | grep -q "SA_SCORE"; then
  ok "clean mail over Unix sockets delivered"; else fail "clean mail over Unix sockets"; fi
if send B "scanners eicar unix" --attach-type application/octet-stream --attach-name data.bin --attach @"$work/eicar.txt" \
   && held B CLAMAV_VIRUS; then ok "EICAR quarantined over clamd's Unix socket"; else fail "EICAR over Unix socket"; fi
if send B "scanners gtube unix" --body "$GTUBE" && held B SA_SPAM; then
  ok "GTUBE quarantined over spamd's Unix socket"; else fail "GTUBE over Unix socket"; fi

# 6. Under our max_size (1 MiB) but over clamd's StreamMaxLength (64 KiB):
#    clamd's "size limit exceeded" is never clean either.
python3 -c "print(('y' * 75 + '\n') * 1200, end='')" >"$work/bigger.txt"
if send B "scanners streammax unix" --body @"$work/bigger.txt" && held B CLAMAV_LIMIT \
   && grep -q "StreamMaxLength" "$work/last.out"; then
  ok "clamd's StreamMaxLength refusal quarantined with CLAMAV_LIMIT"; else fail "clamd size limit"; fi

# Latency per message through mxgate, from the stage totals.
for g in A B; do
  port="ADMIN_$g"
  http_get "http://127.0.0.1:${!port}/api/v1/pipeline/stages" "$TOKEN" >"$work/stages-$g.json" 2>"$work/last.out" || true
done
latency=$(python3 - "$work/stages-A.json" "$work/stages-B.json" <<'PY'
import json, sys
for path, via in zip(sys.argv[1:], ("TCP", "Unix socket")):
    try:
        stages = json.load(open(path))
    except (OSError, ValueError):
        continue
    stages = stages.get("stages", stages) if isinstance(stages, dict) else stages
    for s in stages:
        if s["runs"]:
            print("     %-13s over %-11s: %3d runs, %7.2f ms per message" % (s["stage"], via, s["runs"], s["total_ns"] / s["runs"] / 1e6))
PY
)
if grep -q "clamav" <<<"$latency" && grep -q "spamassassin" <<<"$latency"; then
  ok "stage times from /api/v1/pipeline/stages"; echo "$latency"
else cat "$work"/stages-*.json >"$work/last.out" 2>&1; fail "stage times"; fi

# 7. clamd dies mid-run: A (on_error = tempfail) answers 451 and delivers
#    nothing; B (on_error = skip) delivers with CLAMAV_ERROR.
kill -9 "$clamd_pid"; wait "$clamd_pid" 2>/dev/null || true
n=$(count)
if ! send A "scanners clamd down tcp" --body "Sent while clamd is down." && grep -q "^<\*\* *451 4.7.1" "$work/last.out" \
   && grep -q "CLAMAV_ERROR" "$work/last.out"; then
  ok "clamd down, on_error = tempfail: 451 4.7.1"; else fail "clamd down with tempfail"; fi
if send B "scanners clamd down unix" --body "Sent while clamd is down." && delivered $((n+1)) \
   && f=$(at_sink "scanners clamd down unix") && [ -n "$f" ] && header_of "$f" X-Mxgate-Symbols | grep -q "CLAMAV_ERROR"; then
  ok "clamd down, on_error = skip: delivered with CLAMAV_ERROR"; else fail "clamd down with skip"; fi

# 8. Nothing held or refused ever reached the sink. The last check's message
#    was delivered after all of them, through the same queue path.
: >"$work/last.out"
leaked=""
for s in "eicar tcp" "gtube tcp" "big tcp" "eicar unix" "gtube unix" "streammax unix" "clamd down tcp"; do
  [ -z "$(at_sink "scanners $s")" ] || leaked="$leaked [$s]"
done
if [ -z "$leaked" ] && [ "$(count)" -eq 3 ]; then ok "only the 3 clean or skipped messages reached the sink"
else echo "leaked:$leaked; sink holds $(count)" >"$work/last.out"; fail "condemned mail reached the sink"; fi

echo "scanners: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

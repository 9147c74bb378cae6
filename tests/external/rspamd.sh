#!/usr/bin/env bash
# The rspamd adapter against a real rspamd (Debian's package): a private
# instance on a free loopback port, with its own config, database and run
# directories, no Redis and no controller, its DNS pointed at a dnsmasq that
# answers only for .test (NXDOMAIN for everything else), so it sends nothing
# off the machine. mxgate sends each message to it through
# [[pipeline.stage]] name = "rspamd", relaying to a recording sink.
# Usage: tests/external/rspamd.sh [path/to/mxgate]
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-target/debug/mxgate}
[ -x "$BIN" ] || cargo build --quiet
if ! command -v rspamd >/dev/null || ! command -v swaks >/dev/null || ! command -v dnsmasq >/dev/null; then
  apt-get update -qq
  # Without recommends: no Redis server, which the test must do without.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rspamd swaks dnsmasq-base >/dev/null
fi

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# HTTP GET on loopback; prints the body, fails on any error.
http_get() { python3 -c 'import sys, urllib.request as u
h = {"Authorization": "Bearer " + sys.argv[2]} if len(sys.argv) > 2 else {}
sys.stdout.write(u.urlopen(u.Request(sys.argv[1], headers=h), timeout=5).read().decode())' "$@"; }

# DNS: .test from these records only; every other name is NXDOMAIN
# (address=/#/), and dnsmasq asks no one else.
DNS=$(free_port)
dnsmasq --keep-in-foreground --port="$DNS" --listen-address=127.0.0.1 --bind-interfaces \
  --no-resolv --no-hosts --local=/test/ --address=/#/ --pid-file="$work/dnsmasq.pid" \
  --txt-record=sender.test,"v=spf1 ip4:127.0.0.1 -all" 2>"$work/dnsmasq.log" &
pids+=($!)

# rspamd: Debian's rules ($CONFDIR=/etc/rspamd) with a top-level file of
# our own (one normal worker, no controller or proxy) and $LOCAL_CONFDIR,
# $DBDIR, $RUNDIR, $LOGDIR private to this run.
RSPAMD=$(free_port)
rs="$work/rspamd"
mkdir -p "$rs/local.d" "$rs/db" "$rs/run" "$rs/log"
cat > "$rs/rspamd.conf" <<CFG
.include "\$CONFDIR/common.conf"
options {
  pidfile = "\$RUNDIR/rspamd.pid";
  .include "\$CONFDIR/options.inc"
  .include(try=true; priority=1,duplicate=merge) "\$LOCAL_CONFDIR/local.d/options.inc"
}
logging { type = "console"; level = "notice"; }
worker "normal" {
  bind_socket = "127.0.0.1:$RSPAMD";
  count = 1;
  .include "\$CONFDIR/worker-normal.inc"
}
CFG
# The public suffix list becomes a few names: rspamd compiles the whole
# list into a matcher at start (a minute on a busy machine), and the
# messages here name only .test domains.
printf 'test\ncom\norg\nnet\n' >"$rs/tld.dat"
cat > "$rs/local.d/options.inc" <<CFG
dns { nameserver = ["127.0.0.1:$DNS"]; }
url_tld = "$rs/tld.dat";
CFG
# Modules that fetch maps over HTTPS, ask rspamd.com's fuzzy servers or
# check for updates: off (their names would not resolve anyway). Bayes and
# the Redis-backed modules report that no Redis is configured and stay idle.
for m in fuzzy_check phishing multimap mime_types whitelist mid rspamd_update rbl asn dkim_signing; do
  echo "enabled = false;" > "$rs/local.d/$m.conf"
done
rspamd -f -u root -g root -c "$rs/rspamd.conf" --var "LOCAL_CONFDIR=$rs" --var "DBDIR=$rs/db" \
  --var "RUNDIR=$rs/run" --var "LOGDIR=$rs/log" >"$work/rspamd.log" 2>&1 &
rspamd_pid=$!
pids+=($rspamd_pid)
for _ in $(seq 600); do http_get "http://127.0.0.1:$RSPAMD/ping" >/dev/null 2>&1 && break; sleep 0.2; done
if ! http_get "http://127.0.0.1:$RSPAMD/ping" >/dev/null 2>&1; then
  echo "FAIL - rspamd did not start"; grep -av "redis" "$work/rspamd.log" | tail -20; exit 1
fi

mkdir -p "$work/sink"
python3 tests/docker/sink.py --listen 127.0.0.1 --port 0 --dir "$work/sink" --port-file "$work/sink.port" 2>"$work/sink.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/sink.port" ] && break; sleep 0.1; done
SINK=$(cat "$work/sink.port")
SMTP=$(free_port); ADMIN=$(free_port); TOKEN=rspamd-check-token
cat > "$work/mxgate.toml" <<CFG
[smtp]
listen = "127.0.0.1:$SMTP"
hostname = "mx.rspamd.test"
[relay]
domains = ["example.test"]
downstream = "127.0.0.1:$SINK"
[storage]
path = "$work/data"
[admin]
listen = "127.0.0.1:$ADMIN"
token = "$TOKEN"
# Other stages skip on error: the 451 below comes from rspamd's own on_error.
[scan]
on_error = "skip"
[dns]
nameservers = ["127.0.0.1:$DNS"]

[[pipeline.stage]]
name = "rspamd"
url = "http://127.0.0.1:$RSPAMD"
weight = 2.0
on_error = "tempfail"
CFG
"$BIN" serve --config "$work/mxgate.toml" 2>"$work/mxgate.log" &
pids+=($!)
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$SMTP) 2>/dev/null && break; sleep 0.1; done

echo "     rspamd up after $SECONDS s"
passed=0; failed=0
ok()   { echo "ok   - $1"; passed=$((passed+1)); }
fail() { echo "FAIL - $1"; failed=$((failed+1)); sed 's/^/     /' "$work/last.out" | tail -15; }
count() { ls "$work/sink"/*.eml 2>/dev/null | wc -l; }
delivered() { # wait until the sink holds N messages
  for _ in $(seq 100); do [ "$(count)" -ge "$1" ] && return 0; sleep 0.1; done; return 1; }
# Delivered files whose subject ends in $1 (a tagged one has a prefix).
with_subject() { grep -l "^Subject: .*$1\s*\$" "$work"/sink/*.eml 2>/dev/null || true; }
# A header of a delivered message, unfolded (RFC 5322 section 2.2.3).
header() { python3 -c 'import email, sys
v = email.message_from_binary_file(open(sys.argv[1], "rb"))[sys.argv[2]]
print(" ".join(str(v).split()) if v is not None else "")' "$1" "$2"; }

s=(swaks --server 127.0.0.1 --port "$SMTP" --from a@sender.test --to b@example.test --helo swaks.test)
GTUBE='XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X'

# 1. A clean message is delivered with rspamd's verdict among the symbols.
if "${s[@]}" --header "Subject: rspamd clean" --body "Lunch tomorrow at noon?" >"$work/last.out" 2>&1 \
   && grep -q "250 2.0.0 Ok: queued as" "$work/last.out" && delivered 1 \
   && f=$(with_subject "rspamd clean") && [ -n "$f" ] \
   && header "$f" X-Mxgate-Symbols | grep -q "RSPAMD_ACTION(0.0)" && [ "$(header "$f" X-Mxgate-Verdict)" = deliver ]; then
  ok "clean message delivered with RSPAMD_ACTION"
else [ -n "${f:-}" ] && header "$f" X-Mxgate-Symbols >>"$work/last.out"; fail "clean message delivered"; fi

# 2. rspamd's scored symbols arrive weighted: no Message-ID is its
#    MISSING_MID (2.5), times weight 2.0.
printf 'From: a@sender.test\r\nTo: b@example.test\r\nSubject: rspamd no mid\r\nDate: %s\r\n\r\nHi.\r\n' \
  "$(date -R)" >"$work/nomid.eml"
if "${s[@]}" --data "$work/nomid.eml" >"$work/last.out" 2>&1 && delivered 2 \
   && f=$(with_subject "rspamd no mid") && [ -n "$f" ] \
   && header "$f" X-Mxgate-Symbols | grep -q "RSPAMD_MISSING_MID(5.0)"; then
  ok "rspamd symbols weighted into X-Mxgate-Symbols"
else [ -n "${f:-}" ] && header "$f" X-Mxgate-Symbols >>"$work/last.out"; fail "rspamd symbols weighted"; fi

# 3. GTUBE: rspamd says reject, spam_action (quarantine) holds it.
if "${s[@]}" --header "Subject: rspamd gtube" --body "$GTUBE" >"$work/last.out" 2>&1 \
   && id=$(grep -o "queued as [0-9A-F]*" "$work/last.out" | awk '{print $3}') && [ -n "$id" ] \
   && "$BIN" quarantine show "$id" --config "$work/mxgate.toml" >"$work/last.out" 2>&1 \
   && grep -q "status: *held" "$work/last.out" && grep -q "RSPAMD_ACTION.*rspamd: reject" "$work/last.out"; then
  ok "GTUBE quarantined (rspamd: reject)"; else fail "GTUBE quarantined"; fi

# 4. ... and not delivered: a later clean message arrives, the GTUBE one not.
if "${s[@]}" --header "Subject: rspamd after" >"$work/last.out" 2>&1 && delivered 3 \
   && [ -n "$(with_subject "rspamd after")" ] && [ -z "$(with_subject "rspamd gtube")" ] \
   && "$BIN" quarantine list --config "$work/mxgate.toml" >"$work/last.out" 2>&1 \
   && grep -q "rspamd gtube" "$work/last.out"; then
  ok "GTUBE message not delivered, listed in the quarantine"; else fail "GTUBE not delivered"; fi

# rspamd's time per message as mxgate sees it (connect, send, scan, reply).
if http_get "http://127.0.0.1:$ADMIN/api/v1/pipeline/stages" "$TOKEN" >"$work/stages.json" 2>"$work/last.out"; then
  python3 -c 'import json, sys
for s in json.load(open(sys.argv[1])):
    if s["stage"] == "rspamd" and s["runs"]:
        print("     rspamd: %d runs, mean %.1f ms per message" % (s["runs"], s["total_ns"] / s["runs"] / 1e6))' \
    "$work/stages.json"
fi

# 5. rspamd down, on_error = "tempfail": 451 in the session, nothing queued
#    or delivered.
before=$(count)
kill "$rspamd_pid"; wait "$rspamd_pid" 2>/dev/null || true
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$RSPAMD) 2>/dev/null || break; sleep 0.1; done
if ! "${s[@]}" --header "Subject: rspamd down" >"$work/last.out" 2>&1 \
   && grep -q "<\*\* *451 4.7.1" "$work/last.out" \
   && "$BIN" queue list --config "$work/mxgate.toml" >>"$work/last.out" 2>&1 \
   && grep -q "queue is empty" "$work/last.out" \
   && [ "$(count)" -eq "$before" ] && [ -z "$(with_subject "rspamd down")" ] \
   && grep -q "RSPAMD_ERROR\|stage failed" "$work/mxgate.log"; then
  ok "rspamd down: 451 4.7.1, nothing delivered"; else fail "rspamd down: 451"; fi

echo "rspamd: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

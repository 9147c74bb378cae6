#!/usr/bin/env bash
# Tests with real outside clients: swaks (STARTTLS, pipelining, BDAT-less
# plain SMTP, relay refusal, scanning verdicts) against the real binary,
# relaying to a recording sink, with dnsmasq as the DNS server publishing
# SPF and DMARC records. Installs what it needs. Traffic stays on 127.0.0.1.
# Usage: tests/external/run.sh [path/to/mxgate]
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-target/debug/mxgate}
[ -x "$BIN" ] || cargo build --quiet
if ! command -v swaks >/dev/null || ! perl -MNet::SSLeay -e1 2>/dev/null || ! command -v dnsmasq >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq swaks libnet-ssleay-perl libio-socket-ssl-perl dnsmasq-base >/dev/null
fi
# The console check drives Debian's Chromium through chromedriver with
# Debian's Selenium (for /usr/bin/python3).
if ! command -v chromedriver >/dev/null || ! /usr/bin/python3 -c 'import selenium' 2>/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver python3-selenium >/dev/null
fi

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

mkdir -p "$work/sink"
python3 tests/docker/sink.py --listen 127.0.0.1 --port 0 --dir "$work/sink" --port-file "$work/sink.port" 2>"$work/sink.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/sink.port" ] && break; sleep 0.1; done
SINK=$(cat "$work/sink.port")
# DNS: dnsmasq answers for .test from these records only (NXDOMAIN for the
# rest) and asks no one else.
DNS=$(free_port)
dnsmasq --keep-in-foreground --port="$DNS" --listen-address=127.0.0.1 --bind-interfaces \
  --no-resolv --no-hosts --local=/test/ --pid-file="$work/dnsmasq.pid" \
  --txt-record=sender.test,"v=spf1 ip4:127.0.0.1 -all" \
  --txt-record=bank.test,"v=spf1 ip4:192.0.2.1 -all" \
  --txt-record=_dmarc.bank.test,"v=DMARC1; p=reject" 2>"$work/dnsmasq.log" &
pids+=($!)
SMTP=$(free_port); ADMIN=$(free_port)
cat > "$work/mxgate.toml" <<CFG
[smtp]
listen = "127.0.0.1:$SMTP"
hostname = "mx.external.test"
[relay]
domains = ["example.test"]
downstream = "127.0.0.1:$SINK"
[storage]
path = "$work/data"
[admin]
listen = "127.0.0.1:$ADMIN"
[dns]
nameservers = ["127.0.0.1:$DNS"]
CFG
"$BIN" serve --config "$work/mxgate.toml" 2>"$work/mxgate.log" &
pids+=($!)
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$SMTP) 2>/dev/null && break; sleep 0.1; done

passed=0; failed=0
ok()   { echo "ok   - $1"; passed=$((passed+1)); }
fail() { echo "FAIL - $1"; failed=$((failed+1)); grep -v "^ *File\|^ *\^" "$work/last.out" | sed 's/^/     /' | head -8; sed 's/^/     /' "$work/last.out" | tail -12; }
delivered() { # wait until the sink holds N messages
  for _ in $(seq 100); do [ "$(ls "$work/sink"/*.eml 2>/dev/null | wc -l)" -ge "$1" ] && return 0; sleep 0.1; done; return 1; }

s=(swaks --server 127.0.0.1 --port "$SMTP" --from a@sender.test --helo swaks.test)

# 1. STARTTLS, then a whole transaction over TLS.
if "${s[@]}" --to b@example.test --tls --header "Subject: swaks tls" >"$work/last.out" 2>&1 \
   && grep -q "250 2.0.0 Ok: queued as" "$work/last.out" && delivered 1 \
   && grep -q "with ESMTPS id" "$work"/sink/000001.eml; then ok "swaks STARTTLS delivers over TLS"; else fail "swaks STARTTLS"; fi

# 2. TLS 1.2 explicitly.
if "${s[@]}" --to b@example.test --tls --tls-protocol tlsv1_2 >"$work/last.out" 2>&1 \
   && grep -q "TLS started with cipher TLSv1.2" "$work/last.out"; then ok "TLS 1.2 handshake"; else fail "TLS 1.2 handshake"; fi

# 3. TLS 1.0 and 1.1 are refused (rustls implements TLS 1.2+ only).
if ! "${s[@]}" --to b@example.test --tls --tls-protocol 'tlsv1,tlsv1_1' >"$work/last.out" 2>&1 \
   && ! grep -q "TLS started" "$work/last.out"; then ok "TLS 1.0/1.1 refused"; else fail "TLS 1.0/1.1 refused"; fi

# 4. PIPELINING.
if "${s[@]}" --to b@example.test --pipeline >"$work/last.out" 2>&1 \
   && grep -q "250 2.0.0 Ok: queued as" "$work/last.out"; then ok "swaks --pipeline"; else fail "swaks --pipeline"; fi

# 5. No open relay.
if ! "${s[@]}" --to victim@elsewhere.test >"$work/last.out" 2>&1 \
   && grep -q "550 5.7.1" "$work/last.out"; then ok "relay refused with 550 5.7.1"; else fail "relay refusal"; fi

# 6. The queue CLI sees an empty queue once everything is delivered.
delivered 3 || true
if "$BIN" queue list --config "$work/mxgate.toml" >"$work/last.out" 2>&1 && grep -q "queue is empty" "$work/last.out"; then
  ok "queue list after delivery"; else fail "queue list after delivery"; fi

# 7. Scanning: SPF passes for sender.test and the delivered copy says so.
if "${s[@]}" --to b@example.test --header "Subject: swaks spf" >"$work/last.out" 2>&1 && delivered 4 \
   && grep -l "Subject: swaks spf" "$work"/sink/*.eml | xargs grep -q "spf=pass smtp.mailfrom=a@sender.test" \
   && grep -l "Subject: swaks spf" "$work"/sink/*.eml | xargs grep -q "X-Mxgate-Verdict: deliver"; then
  ok "SPF pass recorded in Authentication-Results"; else fail "SPF pass in Authentication-Results"; fi

# 8. DMARC p=reject with SPF failing and no signature: 550 in the session.
if ! swaks --server 127.0.0.1 --port "$SMTP" --from ceo@bank.test --header "From: <ceo@bank.test>" \
     --to b@example.test >"$work/last.out" 2>&1 \
   && grep -q "550 5.7.1 Message rejected: DMARC_POLICY_REJECT" "$work/last.out"; then
  ok "DMARC p=reject rejected in the session"; else fail "DMARC p=reject"; fi

# 9. A Windows program named .pdf is quarantined, and quarantine show says why.
python3 -c "import struct; b=bytearray(512); b[:2]=b'MZ'; b[0x3c:0x40]=struct.pack('<I',0x80); b[0x80:0x84]=b'PE\0\0'; open('$work/invoice.pdf','wb').write(b)"
if "${s[@]}" --to b@example.test --attach-type application/pdf --attach @"$work/invoice.pdf" >"$work/last.out" 2>&1 \
   && id=$(grep -o "queued as [0-9A-F]*" "$work/last.out" | awk '{print $3}') \
   && "$BIN" quarantine show "$id" --config "$work/mxgate.toml" >"$work/last.out" 2>&1 \
   && grep -q "status: *held" "$work/last.out" && grep -q "ATTACHMENT_DISGUISED_EXECUTABLE" "$work/last.out"; then
  ok "disguised executable quarantined"; else fail "disguised executable quarantined"; fi

# 10. A filling disk: past storage.min_free new mail gets 452 4.3.1 (never a
#    250 for a message that is not stored); every acknowledged message is
#    delivered once the next hop is back, and the space comes back.
mkdir -p "$work/df"
mount -t tmpfs -o size=8m tmpfs "$work/df"
cleanup_df() { umount "$work/df" 2>/dev/null || true; }
SMTP2=$(free_port); ADMIN2=$(free_port); DOWN2=$(free_port)
cat > "$work/df.toml" <<CFG
[smtp]
listen = "127.0.0.1:$SMTP2"
hostname = "mx.diskfull.test"
[relay]
domains = ["example.test"]
downstream = "127.0.0.1:$DOWN2"
[queue]
retry_initial = "1s"
retry_max = "1s"
[storage]
path = "$work/df/data"
min_free = 3145728
[admin]
listen = "127.0.0.1:$ADMIN2"
[dns]
nameservers = ["127.0.0.1:$DNS"]
CFG
"$BIN" serve --config "$work/df.toml" 2>"$work/df.log" &
dfpid=$!
pids+=($dfpid)
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$SMTP2) 2>/dev/null && break; sleep 0.1; done
if python3 - "$SMTP2" "$DOWN2" "$work" >"$work/last.out" 2>&1 <<'PY'
import smtplib, subprocess, sys, time, os, json
port, down, work = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
body = "Subject: fill\r\n\r\n" + ("y" * 70 + "\r\n") * 1400
acked, refused = 0, 0
for i in range(120):
    s = smtplib.SMTP("127.0.0.1", port)
    try:
        s.sendmail("a@sender.test", ["b@example.test"], body)
        acked += 1
    except (smtplib.SMTPDataError, smtplib.SMTPSenderRefused) as e:
        assert e.smtp_code == 452 and b"4.3.1" in e.smtp_error, e
        refused += 1
    s.quit()
print("acknowledged", acked, "refused", refused)
assert refused > 0 and acked > 0, "the disk never filled"
# The next hop comes back: everything acknowledged arrives.
os.makedirs(work + "/sink2", exist_ok=True)
sink = subprocess.Popen([sys.executable, "tests/docker/sink.py", "--listen", "127.0.0.1", "--port", str(down), "--dir", work + "/sink2"])
try:
    deadline = time.time() + 60
    while time.time() < deadline and len([f for f in os.listdir(work + "/sink2") if f.endswith(".eml")]) < acked:
        time.sleep(0.2)
    got = len([f for f in os.listdir(work + "/sink2") if f.endswith(".eml")])
    print("delivered", got)
    assert got == acked, f"{got} of {acked} acknowledged messages delivered"
    # Space is back: a new message is accepted.
    time.sleep(1)
    s = smtplib.SMTP("127.0.0.1", port)
    s.sendmail("a@sender.test", ["b@example.test"], body)
    s.quit()
finally:
    sink.terminate()
PY
then ok "disk filling: 452 4.3.1, acknowledged mail delivered, space reclaimed"; else fail "disk filling"; fi
kill "$dfpid" 2>/dev/null || true; wait "$dfpid" 2>/dev/null || true
cleanup_df

# 11. The quarantine console in headless Chromium: login, search, a preview
#    that runs no script and loads nothing remote, release (one copy
#    downstream), bulk delete, a 390 px phone. Screenshots are kept in
#    $CONSOLE_SHOTS (default /tmp/mxgate-console-shots).
if /usr/bin/python3 tests/external/console_test.py --bin "$BIN" >"$work/last.out" 2>&1; then
  ok "quarantine console in headless Chromium"; sed 's/^/     /' "$work/last.out"
else fail "quarantine console in headless Chromium"; fi

# 12. docs/openapi.yaml is valid and the live admin API keeps to it
#    (schemathesis: no 5xx, documented codes, schemas, headers).
if tests/external/openapi_check.sh "$BIN" >"$work/last.out" 2>&1 && grep -q "^openapi: ok" "$work/last.out"; then
  ok "OpenAPI document matches the admin API"; else fail "OpenAPI check"; tail -40 "$work/last.out"; fi

echo "external: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

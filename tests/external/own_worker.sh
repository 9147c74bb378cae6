#!/usr/bin/env bash
# A worker written from docs/worker-protocol.md alone, in another language:
# examples/worker/worker.py (Python, standard library) behind certificates
# made with openssl, used by the real gateway as the custom stage
# `keywords`, with a recording sink downstream and swaks as the sender.
# Checks the protocol's answers directly, then through the gateway: a
# keyword is flagged or quarantined, clean mail passes, a wrong secret and
# a dead worker give 451, and the key derived from the secret works with
# mutual TLS. Installs what it needs. Traffic stays on 127.0.0.1.
# Usage: tests/external/own_worker.sh [path/to/mxgate]
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-target/debug/mxgate}
[ -x "$BIN" ] || cargo build --quiet
if ! command -v python3 >/dev/null || ! command -v openssl >/dev/null || ! command -v swaks >/dev/null \
   || ! command -v xxd >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 openssl swaks xxd >/dev/null
fi

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
listening() { # port: true once something accepts there
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  return 1
}
SECRET=own-worker-secret-0123456789
WORKER=${WORKER:-examples/worker/worker.py}

passed=0; failed=0
ok()   { echo "ok   - $1"; passed=$((passed+1)); }
fail() { echo "FAIL - $1"; failed=$((failed+1)); sed 's/^/     /' "$work/last.out" | tail -15; }

# --- Certificates, as examples/worker/README.md makes them ----------------
cd "$work"
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
  -days 30 -subj "/CN=own worker test CA" -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
leaf() { # name extendedKeyUsage [subjectAltName]
  printf 'basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\nextendedKeyUsage = %s\n' \
    "$2" > "$1.ext"
  [ -z "${3:-}" ] || echo "subjectAltName = $3" >> "$1.ext"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" -out "$1.csr" \
    -subj "/CN=$1" 2>/dev/null
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 -extfile "$1.ext" \
    -out "$1.pem" 2>/dev/null
}
leaf worker serverAuth IP:127.0.0.1
leaf gateway clientAuth
# The key derived from the secret, as docs/worker-protocol.md shows it.
seed=$(printf '%s' "mxgate worker key v1" | openssl dgst -sha256 -mac HMAC -macopt "key:$SECRET" -binary | xxd -p -c 32)
printf '302e020100300506032b657004220420%s' "$seed" | xxd -r -p | openssl pkey -inform DER -out derived-key.pem
openssl req -x509 -new -key derived-key.pem -subj "/CN=mxgate-worker" -days 30 -out derived-cert.pem 2>/dev/null
cd - >/dev/null

# --- The sink, the workers, the gateways -----------------------------------
mkdir -p "$work/sink"
python3 tests/docker/sink.py --listen 127.0.0.1 --port 0 --dir "$work/sink" --port-file "$work/sink.port" \
  2>"$work/sink.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/sink.port" ] && break; sleep 0.1; done
SINK=$(cat "$work/sink.port")
NO_DNS=$(free_port) # nothing listens there: no stage asks DNS, and nothing leaves loopback

start_worker() { # log-name port args...: sets WPID
  local name=$1 port=$2; shift 2
  python3 "$WORKER" --listen "127.0.0.1:$port" --secret "$SECRET" "$@" 2>>"$work/$name.log" &
  WPID=$!; pids+=("$WPID")
  listening "$port"
}
start_gateway() { # name [[pipeline.stage]] body: sets GW_SMTP, GW_CONF
  local name=$1 smtp admin; smtp=$(free_port); admin=$(free_port)
  GW_CONF="$work/$name.toml"
  cat > "$GW_CONF" <<CFG
[smtp]
listen = "127.0.0.1:$smtp"
hostname = "mx.$name.test"
[relay]
domains = ["example.test"]
downstream = "127.0.0.1:$SINK"
[storage]
path = "$work/$name-data"
[admin]
listen = "127.0.0.1:$admin"
[dns]
nameservers = ["127.0.0.1:$NO_DNS"]
[scan]
stages = []
[[pipeline.stage]]
name = "keywords"
timeout = "5s"
on_error = "tempfail"
$2
CFG
  "$BIN" serve --config "$GW_CONF" 2>"$work/$name.log" &
  pids+=($!)
  GW_SMTP=$smtp
  listening "$smtp"
}
send() { # smtp-port subject [swaks args...]: the session in last.out
  local port=$1 subject=$2; shift 2
  timeout 60 swaks --server 127.0.0.1 --port "$port" --from a@sender.test --to b@example.test \
    --helo client.test --header "Subject: $subject" "$@" >"$work/last.out" 2>&1
}
arrived() { # subject: the sink's file holding it
  for _ in $(seq 100); do
    f=$(grep -lE "^Subject: $1"$'\r?$' "$work"/sink/*.eml 2>/dev/null | head -1 || true)
    [ -n "$f" ] && { echo "$f"; return 0; }
    sleep 0.1
  done
  return 1
}
flagged() { grep -q "^X-Mxgate-Symbols: .*KEYWORD_FOUND(3.0)" "$1"; }
scans() { grep -c '"POST /v1/scan/keywords HTTP/1.1" 200' "$work/$1.log" || true; }

P1=$(free_port); P2=$(free_port); P3=$(free_port)
start_worker w1 "$P1" --cert "$work/worker.pem" --key "$work/worker.key" --word lottery --word "free money"
W1=$WPID
start_worker w2 "$P2" --cert "$work/worker.pem" --key "$work/worker.key" --word lottery \
  --max-in-flight 1 --max-size 100000
start_worker w3 "$P3" --cert "$work/derived-cert.pem" --key "$work/derived-key.pem" --word lottery \
  --client-ca "$work/ca.pem"

# --- 1. The protocol's answers, straight from a client ---------------------
cat > "$work/client.py" <<'PY'
import http.client, json, socket, ssl, sys, time
port, ca, secret = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
auth = {"Authorization": "Bearer " + secret}
facts = json.dumps({"queue_id": "Q1", "client_ip": "192.0.2.1", "helo": "client.test", "tls": False,
                    "sender": None, "recipients": ["b@example.test"], "a_later_field": {"x": 1}})
failures = 0

def conn():
    return http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=20)

def call(method, path, body=None, headers=auth, c=None):
    c = c or conn()
    c.request(method, path, body=body, headers=headers)
    r = c.getresponse()
    return r.status, json.loads(r.read() or b"null")

def check(name, cond, detail):
    global failures
    print(("ok   - " if cond else "FAIL - ") + name + ("" if cond else "\n     %r" % (detail,)))
    failures += 0 if cond else 1

s, d = call("GET", "/v1/health")
check("GET /v1/health: 200, protocol 1, stage keywords", (s, d["protocol"], d["stages"]) == (200, 1, ["keywords"]), d)
got = [call("GET", p, headers={})[0] for p in ("/v1/health", "/v1/load", "/v2/x")]
got.append(call("POST", "/v1/scan/keywords", b"{}\n", {"Authorization": "Bearer " + secret + "x"})[0])
check("no or wrong token: 401, before any 404", got == [401] * 4, got)
msg = facts + "\nSubject: =?utf-8?q?You_won_the_Lottery?=\r\n\r\nhello\r\n"
s, d = call("POST", "/v1/scan/keywords", msg.encode())
sym = d["symbols"][0] if s == 200 and d["symbols"] else {}
check("a scan: 200, KEYWORD_FOUND 3.0 naming the word, unknown facts field ignored",
      (s, sym.get("name"), sym.get("score"), "lottery" in sym.get("reason", ""))
      == (200, "KEYWORD_FOUND", 3.0, True), d)
s, d = call("POST", "/v1/scan/keywords", (facts + "\nSubject: hello\r\n\r\nnothing here\r\n").encode())
check("a clean message: 200, no symbols", (s, d.get("symbols")) == (200, []), d)
got = [call("POST", p, msg.encode())[0] for p in ("/v1/scan/spam", "/v2/scan/keywords", "/v1/scan/")]
got.append(call("GET", "/v1/scan/keywords")[0])
check("unknown stage, version or method: 404", got == [404] * 4, got)
got = [call("POST", "/v1/scan/keywords", b)[0] for b in (b"no line feed", b"[1]\nSubject: x\r\n", b"{x\n")]
check("malformed bodies: 400", got == [400] * 3, got)
c = conn()
s, d = call("POST", "/v1/scan/keywords", b"x" * 200000, c=c)
s2, _ = call("GET", "/v1/health", c=c)
check("past --max-size: 413, and the connection still serves", (s, s2) == (413, 200), (s, d, s2))
# 503: one scan held open (its body half sent) fills --max-in-flight 1.
held = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="127.0.0.1")
held.sendall(b"POST /v1/scan/keywords HTTP/1.1\r\nHost: w\r\nAuthorization: Bearer " + secret.encode()
             + b"\r\nContent-Length: 1000\r\n\r\n{")
for _ in range(200):
    if call("GET", "/v1/load")[1]["in_flight"] == 1:
        break
    time.sleep(0.05)
s, d = call("POST", "/v1/scan/keywords", msg.encode())
_, load = call("GET", "/v1/load")
check("at --max-in-flight: 503 busy, counted in /v1/load", (s, load["busy"], load["in_flight"]) == (503, 1, 1),
      (s, d, load))
held.close()
sys.exit(failures)
PY
python3 "$work/client.py" "$P2" "$work/ca.pem" "$SECRET" >"$work/client.out" 2>&1 || true
cat "$work/client.out"
n_ok=$(grep -c '^ok' "$work/client.out" || true); n_fail=$(grep -c '^FAIL' "$work/client.out" || true)
passed=$((passed + n_ok)); failed=$((failed + n_fail))
if [ $((n_ok + n_fail)) -ne 8 ]; then
  cp "$work/client.out" "$work/last.out"; fail "the protocol client ended early"
fi

# --- 2. Through the gateway, verified against the CA -----------------------
start_gateway g1 "remote = [\"127.0.0.1:$P1\"]
ca = \"$work/ca.pem\"
secret = \"$SECRET\""
G1=$GW_SMTP; G1_CONF=$GW_CONF

if send "$G1" "You won the lottery" && grep -q "250 2.0.0 Ok: queued as" "$work/last.out" \
   && f=$(arrived "You won the lottery") && flagged "$f"; then
  ok "keyword in the Subject: delivered with KEYWORD_FOUND(3.0) in X-Mxgate-Symbols"
else fail "keyword in the Subject"; fi

if send "$G1" "an offer" --add-header "Content-Type: text/plain; charset=utf-8" \
     --add-header "Content-Transfer-Encoding: base64" --body "$(printf 'Claim your free\n money.\n' | base64)" \
   && grep -q "250 2.0.0 Ok: queued as" "$work/last.out" && f=$(arrived "an offer") && flagged "$f"; then
  ok "keyword in a base64 body: flagged"
else fail "keyword in a base64 body"; fi

before=$(scans w1)
if send "$G1" "lunch on friday" && grep -q "250 2.0.0 Ok: queued as" "$work/last.out" \
   && f=$(arrived "lunch on friday") && grep -q "^X-Mxgate-Symbols:" "$f" && ! grep -q KEYWORD_FOUND "$f" \
   && [ "$(scans w1)" -gt "$before" ]; then
  ok "clean mail: scanned by the worker, delivered without KEYWORD_FOUND"
else fail "clean mail"; fi

# --- 3. The worker dies: 451; it comes back quarantining -------------------
kill "$W1"; wait "$W1" 2>/dev/null || true
if ! send "$G1" "after the lottery" && grep -q "451 4.7.1 Message not scanned, try again later: KEYWORDS_ERROR" \
     "$work/last.out"; then
  ok "worker killed: 451 4.7.1 KEYWORDS_ERROR (on_error tempfail)"
else fail "worker killed"; fi

back=$(grep -c "worker back in service" "$work/g1.log" || true)
start_worker w1q "$P1" --cert "$work/worker.pem" --key "$work/worker.key" --word lottery --action quarantine
for _ in $(seq 150); do
  [ "$(grep -c "worker back in service" "$work/g1.log" || true)" -gt "$back" ] && break
  sleep 0.2
done
if send "$G1" "lottery again" && id=$(grep -o "queued as [0-9A-F]*" "$work/last.out" | awk '{print $3}') \
   && timeout 30 "$BIN" quarantine show "$id" --config "$G1_CONF" >"$work/last.out" 2>&1 \
   && grep -q "status: *held" "$work/last.out" && grep -q "KEYWORD_FOUND" "$work/last.out"; then
  ok "worker back with --action quarantine: probed back in service, the message held"
else fail "quarantine action"; fi

# --- 4. A wrong secret: the worker answers 401, the sender gets 451 ---------
start_gateway g2 "remote = [\"127.0.0.1:$P1\"]
ca = \"$work/ca.pem\"
secret = \"not-the-worker-secret-0123\""
if ! send "$GW_SMTP" "wrong secret" && grep -q "451 4.7.1 Message not scanned, try again later: KEYWORDS_ERROR" \
     "$work/last.out" && grep -q '" 401 -' "$work/w1q.log"; then
  ok "wrong secret: 451 from the gateway, 401 in the worker's log"
else fail "wrong secret"; cat "$work/w1q.log" >>"$work/last.out"; fi

# --- 5. The key derived from the secret, and mutual TLS --------------------
start_gateway g3 "remote = [\"127.0.0.1:$P3\"]
secret = \"$SECRET\"
cert = \"$work/gateway.pem\"
key = \"$work/gateway.key\""
if send "$GW_SMTP" "derived lottery" && grep -q "250 2.0.0 Ok: queued as" "$work/last.out" \
   && f=$(arrived "derived lottery") && flagged "$f"; then
  ok "openssl-made derived key (no ca) with the gateway's client certificate: flagged"
else fail "derived key and mutual TLS"; fi
if python3 - "$P3" "$SECRET" >"$work/last.out" 2>&1 <<'PY'
import http.client, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
c = http.client.HTTPSConnection("127.0.0.1", int(sys.argv[1]), context=ctx, timeout=20)
try:
    c.request("GET", "/v1/health", headers={"Authorization": "Bearer " + sys.argv[2]})
    print("answered without a client certificate:", c.getresponse().status)
    sys.exit(1)
except (ssl.SSLError, ConnectionError) as e:
    print("refused:", e)
PY
then ok "--client-ca: a caller without a client certificate is refused, token or not"
else fail "--client-ca refusal"; fi

echo "own worker: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

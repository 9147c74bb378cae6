# Shell helpers shared by the container tests (cluster.sh, workers.sh),
# sourced before they set TIMEOUT, END, TMP, UP, LOGS, PROJECT and, while
# mail is sent, SENDER_PID; `fail` and `compose` are each script's own.

# wait_until DESCRIPTION COMMAND...: poll every 0.5 s, at most TIMEOUT
# seconds and never past the run's budget.
wait_until() {
    local what=$1 deadline=$(($(date +%s) + TIMEOUT))
    shift
    [ "$deadline" -le "$END" ] || deadline=$END
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || fail "gave up waiting for $what"
        sleep 0.5
    done
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# free_subnet: a 10.x.y prefix whose /24 overlaps no Docker network and no
# route of the host.
free_subnet() {
    {
        docker network ls -q | xargs docker network inspect -f '{{range .IPAM.Config}}{{.Subnet}} {{end}}'
        ip -4 route 2>/dev/null | awk '$1 != "default" { print $1 }'
    } | python3 -c '
import ipaddress, random, sys
used = []
for word in sys.stdin.read().split():
    try:
        used.append(ipaddress.ip_network(word, strict=False))
    except ValueError:
        pass
for _ in range(200):
    net = ipaddress.ip_network("10.%d.%d.0/24" % (random.randint(100, 250), random.randint(0, 255)))
    if not any(net.overlaps(u) for u in used if u.version == 4):
        print(str(net.network_address).rsplit(".", 1)[0])
        sys.exit(0)
sys.exit(1)'
}

now() { python3 -c 'import time; print("%.6f" % time.time())'; }

# progress KEY: a counter of the running sender.
progress() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]] or 0)' "$TMP/send/progress.json" "$1"; }

acked_at_least() { [ "$(progress acked)" -ge "$1" ]; }

tempfail_at_least() { [ "$(progress tempfail)" -ge "$1" ]; }

sender_alive() { kill -0 "$SENDER_PID" 2>/dev/null || fail "the sender ended early: $(cat "$TMP/sender.log")"; }

sender_done() { ! kill -0 "$SENDER_PID"; }

greets() {
    python3 - "$1" <<'EOF'
import socket, sys
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5) as s:
    line = s.makefile("rb").readline().decode()
    s.sendall(b"QUIT\r\n")
sys.exit(0 if line.startswith("220 ") else 1)
EOF
}

# cleanup: on exit, stop the sender, keep the containers' logs when LOGS is
# set, take the project down and remove the scratch directory.
cleanup() {
    local rc=$?
    set +e
    [ -n "$SENDER_PID" ] && kill "$SENDER_PID" 2>/dev/null && wait "$SENDER_PID" 2>/dev/null
    if [ "$UP" = 1 ]; then
        [ -n "$LOGS" ] && mkdir -p "$LOGS" && compose logs --no-color -t >"$LOGS/$PROJECT.log" 2>&1
        compose down -v --remove-orphans >/dev/null 2>&1
    fi
    rm -rf "$TMP"
    exit "$rc"
}

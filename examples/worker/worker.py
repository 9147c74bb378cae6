#!/usr/bin/env python3
"""A scanning worker for mxgate, speaking the worker protocol version 1
(docs/worker-protocol.md), in Python 3 with the standard library only.

It serves one stage, `keywords`: a message whose Subject or text contains
one of the configured words gets the symbol KEYWORD_FOUND (score 3.0 by
default), with the words found in the reason, and optionally a hard action.

    worker.py --listen 127.0.0.1:7600 --cert cert.pem --key key.pem \
        --secret change-me-worker-secret --word lottery --word "free money" \
        [--action quarantine] [--score 3.0] [--client-ca ca.pem] \
        [--max-in-flight 16] [--max-size 27262976]

The secret may also come from the environment (WORKER_SECRET), which keeps
it out of `ps`. Logs one line per request on stderr.
"""

import argparse
import email
import email.policy
import hmac
import json
import os
import re
import socket
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PROTOCOL = 1
STAGE = "keywords"
SCAN_PREFIX = "/v1/scan/"
ACTIONS = ("deliver", "tag", "quarantine", "tempfail", "reject")
# An oversized body up to this size is read and dropped before the 413.
DRAIN_LIMIT = 64 << 20


class Keywords:
    """The stage itself: plain data in (facts, raw message), findings out."""

    def __init__(self, words, score, action):
        self.words = [(w, re.compile(pattern(w), re.IGNORECASE)) for w in words]
        self.score = score
        self.action = action

    def check(self, facts, raw):
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        places = [("the subject", header_text(msg, "Subject")), ("the body", body_text(msg))]
        found = [f'"{w}" in {where}' for w, rx in self.words for where, text in places if rx.search(text)]
        if not found:
            return {"symbols": [], "auth_results": []}
        symbol = {"name": "KEYWORD_FOUND", "score": self.score, "reason": "found " + ", ".join(found)}
        if self.action:
            symbol["action"] = self.action
        return {"symbols": [symbol], "auth_results": []}


def pattern(word):
    """A whole word or phrase; any run of white space matches a space, so
    a phrase folded over two lines is still found."""
    parts = [re.escape(p) for p in word.split()]
    return r"(?<!\w)" + r"\s+".join(parts) + r"(?!\w)"


def header_text(msg, name):
    try:
        return str(msg.get(name, ""))
    except Exception:  # a header the parser chokes on: search it undecoded
        return next((str(v) for k, v in msg.raw_items() if k.lower() == name.lower()), "")


def body_text(msg):
    """The decoded text of every text/* part (quoted-printable, base64 and
    charsets undone), so a word cannot hide behind a transfer encoding."""
    texts = []
    for part in msg.walk():
        if part.get_content_maintype() != "text":
            continue
        try:
            texts.append(part.get_content())
        except Exception:
            payload = part.get_payload(decode=True) or b""
            texts.append(payload.decode("latin-1"))
    return "\n".join(texts)


class Counters:
    """What GET /v1/load reports, and the bound on scans in flight."""

    def __init__(self, max_in_flight):
        self.lock = threading.Lock()
        self.max_in_flight = max_in_flight
        self.in_flight = self.served = self.failed = self.busy = 0

    def enter(self):
        with self.lock:
            if self.in_flight >= self.max_in_flight:
                self.busy += 1
                return False
            self.in_flight += 1
            return True

    def leave(self, ok):
        with self.lock:
            self.in_flight -= 1
            if ok:
                self.served += 1
            else:
                self.failed += 1

    def load(self):
        with self.lock:
            return {
                "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight,
                "served": self.served,
                "failed": self.failed,
                "busy": self.busy,
            }


class Handler(BaseHTTPRequestHandler):
    # Keep-alive: the gateway reuses its connections (protocol §Transport).
    protocol_version = "HTTP/1.1"
    server_version = "keywords-worker/1"
    # An idle connection is closed after this long; the gateway reconnects.
    timeout = 60

    def setup(self):
        # The TLS handshake runs here, in the connection's own thread, so a
        # slow or hostile client cannot hold up the accept loop.
        self.request.settimeout(10)
        self.request = self.server.tls.wrap_socket(self.request, server_side=True)
        super().setup()

    def do_GET(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def dispatch(self):
        if not self.authorized():
            self.discard_body()
            return self.answer(401, {"error": "missing or wrong bearer token (the worker's secret)"})
        path = self.path.split("?", 1)[0]
        if self.command == "GET" and path == "/v1/health":
            return self.answer(200, {"protocol": PROTOCOL, "stages": [STAGE], "version": self.server_version})
        if self.command == "GET" and path == "/v1/load":
            return self.answer(200, self.server.counters.load())
        stage = path[len(SCAN_PREFIX) :] if path.startswith(SCAN_PREFIX) else None
        if self.command != "POST" or not stage or "/" in stage:
            self.discard_body()
            return self.answer(404, {"error": "no such endpoint: this worker speaks protocol v1"})
        if stage != STAGE:
            self.discard_body()
            return self.answer(404, {"error": f"stage `{stage}` is not served here; served: {STAGE}"})
        self.scan()

    def authorized(self):
        given = self.headers.get("Authorization", "").encode("latin-1", "replace")
        want = ("Bearer " + self.server.secret).encode()
        # Constant time: the token is the worker's only lock.
        return hmac.compare_digest(given, want)

    def scan(self):
        counters = self.server.counters
        # Backpressure: past the bound the gateway tries another worker.
        if not counters.enter():
            self.discard_body()
            return self.answer(503, {"error": f"busy: {counters.max_in_flight} scans running"})
        status, doc = 500, {"error": "the stage failed"}
        try:
            status, doc = self.scan_body()
        except Exception as e:
            status, doc = 500, {"error": f"the stage failed: {type(e).__name__}: {e}"}
        finally:
            counters.leave(status == 200)
            self.answer(status, doc)

    def scan_body(self):
        if "Transfer-Encoding" in self.headers:
            self.close_connection = True
            return 400, {"error": "send the body with Content-Length (chunked bodies are not read)"}
        length = self.content_length()
        if length is None:
            self.close_connection = True
            return 400, {"error": "Content-Length is not a number"}
        if length > self.server.max_size:
            # Read and dropped, so the gateway gets this answer rather than
            # a connection reset while it is still sending.
            self.discard_body(DRAIN_LIMIT)
            return 413, {"error": f"the request exceeds {self.server.max_size} octets"}
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True
            return 400, {"error": "the request body ended early"}
        nl = body.find(b"\n")
        if nl < 0:
            return 400, {"error": "the body has no facts line (JSON, then a line feed)"}
        try:
            facts = json.loads(body[:nl])
        except ValueError as e:
            return 400, {"error": f"the facts line is not valid: {e}"}
        if not isinstance(facts, dict):
            return 400, {"error": "the facts line is not a JSON object"}
        return 200, self.server.stage.check(facts, body[nl + 1 :])

    def content_length(self):
        try:
            n = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            return None
        return n if n >= 0 else None

    def discard_body(self, limit=None):
        """Reads an unwanted body so the connection stays usable; one past
        `limit` (default: the largest request) closes it instead."""
        n = self.content_length()
        if n is None or n > (limit or self.server.max_size) or "Transfer-Encoding" in self.headers:
            self.close_connection = True
            return
        while n > 0:
            chunk = self.rfile.read(min(n, 1 << 16))
            if not chunk:
                self.close_connection = True
                return
            n -= len(chunk)

    def answer(self, status, doc):
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # One line instead of a traceback: TLS refusals are routine.
        e = sys.exc_info()[1]
        sys.stderr.write(f"{client_address[0]} - connection ended: {type(e).__name__}: {e}\n")


def tls_context(args):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # Protocol v1: TLS 1.3 only, ALPN "http/1.1".
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(args.cert, args.key)
    ctx.set_alpn_protocols(["http/1.1"])
    if args.client_ca:
        # Mutual TLS: only gateways with a certificate from this CA.
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(args.client_ca)
    return ctx


def parse_args(argv):
    p = argparse.ArgumentParser(description="mxgate worker (protocol v1) serving the `keywords` stage")
    p.add_argument("--listen", default="127.0.0.1:7600", help="host:port, [v6]:port")
    p.add_argument("--cert", required=True, help="the worker's certificate chain (PEM)")
    p.add_argument("--key", required=True, help="its private key (PEM)")
    p.add_argument("--secret", default=os.environ.get("WORKER_SECRET"), help="bearer token (or $WORKER_SECRET)")
    p.add_argument("--word", action="append", required=True, help="a word or phrase to flag; repeatable")
    p.add_argument("--score", type=float, default=3.0)
    p.add_argument("--action", choices=ACTIONS, help="hard action carried by KEYWORD_FOUND")
    p.add_argument("--client-ca", help="require gateway certificates signed by this CA (mutual TLS)")
    p.add_argument("--max-in-flight", type=int, default=16, help="scans at once; past it 503 busy")
    p.add_argument("--max-size", type=int, default=26 << 20, help="largest request in octets; past it 413")
    args = p.parse_args(argv)
    if not args.secret or len(args.secret) < 16:
        p.error("--secret (or $WORKER_SECRET) of at least 16 characters is required")
    if not all(w.split() for w in args.word):
        p.error("--word must not be empty")
    if args.max_in_flight < 1:
        p.error("--max-in-flight must be at least 1")
    return args


def main(argv):
    args = parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    host = host.strip("[]")
    Server.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
    server = Server((host, int(port)), Handler)
    server.tls = tls_context(args)
    server.secret = args.secret
    server.max_size = args.max_size
    server.counters = Counters(args.max_in_flight)
    server.stage = Keywords(args.word, args.score, args.action)
    sys.stderr.write(f"keywords worker listening on {args.listen} (protocol v{PROTOCOL})\n")
    sys.stderr.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main(sys.argv[1:])

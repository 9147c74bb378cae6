#!/usr/bin/env python3
"""Keeps mail flowing into the gateways of the compose cluster, for
tests/docker/cluster.sh, and remembers exactly what was acknowledged.

    cluster_send.py --gateway 127.0.0.1:2525 --gateway 127.0.0.1:2526 \\
        --dir OUT --run-id abc [--rate 40] [--workers 6] [--drain 120]

Every message carries a unique token (`cluster-token: <run-id>-<n>` in its
body). New messages are made at --rate per second, spread over the gateways,
until the file OUT/stop appears; then only messages still owed are retried,
for at most --drain seconds. A message is retried (same token, the other
gateway first) after any 4xx reply or broken connection, as a real sender
would; a 5xx is final and counts as rejected.

Written to OUT:
  acked.tsv      one line per 250: token, gateway, time DATA began, time of
                 the reply, the reply (times are Unix seconds)
  progress.json  counters, rewritten every quarter second
  tempfail.log   every 4xx and connection error, with its time
  rejected.log   every 5xx
Exits 0 when every message was acknowledged and none rejected, else 1.
Standard library only.
"""

import argparse
import heapq
import json
import os
import smtplib
import socket
import sys
import threading
import time

SENDER = "load@sender.cluster.test"
RCPT = "inbox@example.test"


class Ledger:
    """What was generated, acknowledged and is still owed, shared by the
    worker threads under one lock."""

    def __init__(self, out):
        self.out = out
        self.lock = threading.Lock()
        self.wake = threading.Condition(self.lock)
        self.due = []  # heap of (not_before, token, attempt)
        self.counts = {"generated": 0, "acked": 0, "tempfail": 0, "errors": 0, "rejected": 0}
        self.pending = 0
        self.last_tempfail = None
        self.acked = open(os.path.join(out, "acked.tsv"), "a", buffering=1)
        self.tempfails = open(os.path.join(out, "tempfail.log"), "a", buffering=1)
        self.rejects = open(os.path.join(out, "rejected.log"), "a", buffering=1)

    def add(self, token):
        with self.lock:
            self.counts["generated"] += 1
            self.pending += 1
            heapq.heappush(self.due, (0.0, token, 0))
            self.wake.notify()

    def take(self, stop):
        """The next message whose time has come, or None once `stop` is set
        and nothing is owed."""
        with self.lock:
            while True:
                now = time.time()
                if self.due and self.due[0][0] <= now:
                    return heapq.heappop(self.due)
                if stop.is_set() and self.pending == 0:
                    return None
                wait = self.due[0][0] - now if self.due else 0.2
                self.wake.wait(min(wait, 0.2))

    def ack(self, token, gw, t_data, t_reply, reply):
        with self.lock:
            self.counts["acked"] += 1
            self.pending -= 1
            self.acked.write("%s\t%s\t%.6f\t%.6f\t%s\n" % (token, gw, t_data, t_reply, reply))

    def retry(self, token, attempt, gw, kind, why, after):
        with self.lock:
            self.counts[kind] += 1
            now = time.time()
            if kind == "tempfail":
                self.last_tempfail = now
            self.tempfails.write("%.6f\t%s\t%s\t%s\t%s\n" % (now, token, gw, kind, why))
            heapq.heappush(self.due, (now + after, token, attempt + 1))
            self.wake.notify()

    def reject(self, token, gw, why):
        with self.lock:
            self.counts["rejected"] += 1
            self.pending -= 1
            self.rejects.write("%.6f\t%s\t%s\t%s\n" % (time.time(), token, gw, why))

    def snapshot(self):
        with self.lock:
            return dict(self.counts, pending=self.pending, last_tempfail=self.last_tempfail, t=time.time())


def message(token):
    lines = [
        "From: Load <%s>" % SENDER,
        "To: Inbox <%s>" % RCPT,
        "Subject: cluster test %s" % token,
        "Date: %s" % time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()),
        "Message-ID: <%s@sender.cluster.test>" % token,
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=us-ascii",
        "",
        "Hello,",
        "",
        "this message checks that mail acknowledged by the gateway cluster",
        "reaches the downstream while storage nodes fail.",
        "",
        "cluster-token: %s" % token,
        "",
    ]
    return ("\r\n".join(lines) + "\r\n").encode()


class Refused(Exception):
    """An SMTP reply other than the one wanted."""

    def __init__(self, stage, code, text):
        super().__init__("%s %d %s" % (stage, code, text))
        self.code = code


def send_one(gw, token, timeout):
    """One SMTP transaction; returns (time DATA began, final reply text)."""
    host, port = gw.rsplit(":", 1)
    s = smtplib.SMTP(host, int(port), local_hostname="sender.cluster.test", timeout=timeout)
    try:
        for stage, cmd in (("EHLO", s.ehlo), ("MAIL", lambda: s.mail(SENDER)), ("RCPT", lambda: s.rcpt(RCPT))):
            code, text = cmd()
            if code != 250:
                raise Refused(stage, code, text.decode("utf-8", "replace"))
        t_data = time.time()
        try:
            code, text = s.data(message(token))
        except smtplib.SMTPDataError as e:
            raise Refused("DATA", e.smtp_code, e.smtp_error.decode("utf-8", "replace"))
        text = text.decode("utf-8", "replace")
        if code != 250:
            raise Refused("end of data", code, text)
        return t_data, "%d %s" % (code, text)
    finally:
        # The reply above is what counts; a QUIT that fails changes nothing.
        try:
            s.quit()
        except (OSError, smtplib.SMTPException):
            s.close()


def worker(ledger, gateways, stop, a):
    while True:
        item = ledger.take(stop)
        if item is None:
            return
        _, token, attempt = item
        # Alternate gateways on each retry, starting from the token's own.
        gw = gateways[(int(token.rsplit("-", 1)[1]) + attempt) % len(gateways)]
        try:
            t_data, reply = send_one(gw, token, a.timeout)
        except Refused as e:
            if 400 <= e.code < 500:
                ledger.retry(token, attempt, gw, "tempfail", str(e), a.retry_after)
            else:
                ledger.reject(token, gw, str(e))
            continue
        except smtplib.SMTPConnectError as e:
            kind = "tempfail" if 400 <= e.smtp_code < 500 else "errors"
            ledger.retry(token, attempt, gw, kind, "greeting %s" % e, a.retry_after)
            continue
        except (OSError, smtplib.SMTPException) as e:
            # Connection refused, reset or timed out: the outcome may be
            # unknown, so the same token goes again (a duplicate is counted).
            ledger.retry(token, attempt, gw, "errors", repr(e), a.retry_after)
            continue
        ledger.ack(token, gw, t_data, time.time(), reply)


def generate(ledger, a, stop):
    n, t0 = 0, time.time()
    while not os.path.exists(os.path.join(a.dir, "stop")):
        target = int((time.time() - t0) * a.rate) + 1
        while n < target:
            n += 1
            ledger.add("%s-%07d" % (a.run_id, n))
        time.sleep(0.05)
    stop.set()


def report(ledger, a, done):
    path = os.path.join(a.dir, "progress.json")
    while True:
        with open(path + ".tmp", "w") as f:
            json.dump(ledger.snapshot(), f)
        os.replace(path + ".tmp", path)
        if done.wait(0.25):
            return


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--gateway", action="append", required=True, help="host:port, repeatable")
    p.add_argument("--dir", required=True)
    p.add_argument("--run-id", required=True)
    p.add_argument("--rate", type=float, default=40.0, help="new messages per second")
    p.add_argument("--workers", type=int, default=6)
    p.add_argument("--retry-after", type=float, default=1.0)
    p.add_argument("--timeout", type=float, default=30.0, help="per SMTP command")
    p.add_argument("--drain", type=float, default=120.0, help="seconds to retry after stop")
    a = p.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    socket.setdefaulttimeout(a.timeout)

    ledger, stop, done = Ledger(a.dir), threading.Event(), threading.Event()
    reporter = threading.Thread(target=report, args=(ledger, a, done), daemon=True)
    reporter.start()
    workers = [threading.Thread(target=worker, args=(ledger, a.gateway, stop, a), daemon=True) for _ in range(a.workers)]
    for w in workers:
        w.start()
    generate(ledger, a, stop)
    deadline = time.time() + a.drain
    for w in workers:
        w.join(max(0.0, deadline - time.time()))
    done.set()
    reporter.join()
    s = ledger.snapshot()
    print(
        "cluster_send: %(generated)d generated, %(acked)d acknowledged, %(tempfail)d 4xx, "
        "%(errors)d connection errors, %(rejected)d rejected, %(pending)d still owed" % s,
        file=sys.stderr,
    )
    sys.exit(0 if s["pending"] == 0 and s["rejected"] == 0 else 1)


if __name__ == "__main__":
    main()

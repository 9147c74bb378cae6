#!/usr/bin/env python3
"""Mail for tests/docker/workers.sh: single messages, a stream, and the
final reckoning of where every acknowledged message ended up.

    workers_mail.py one --port P --kind clean|eicar|blocked --token T
        One message; prints the final reply ("250 2.0.0 ..."). Exit 0 when
        a reply came (whatever its code), 1 when the session broke.
    workers_mail.py stream --port P --dir OUT --run-id R [--rate 20]
        New messages at --rate per second, kinds in turn clean, blocked,
        clean, eicar, until OUT/stop exists; then only owed messages are
        retried, at most --drain seconds. A 4xx or broken session is
        retried (same token) after a second, as senders do; a 5xx is final.
        Writes OUT/acked.tsv (token, kind, DATA began, reply time, reply),
        OUT/progress.json (counters) and OUT/tempfail.log.
    workers_mail.py held --admin A --admin-token T --token T
        Prints the symbols of the quarantined message with that token in its
        Subject; exit 1 when there is none.
    workers_mail.py verify --dir OUT --delivered FILE --admin A --admin-token T
        [--forbid START,END ...]
        Every acknowledged clean message is in FILE (tokens found at the
        sink); no blocked or eicar one is; each of those is in the
        quarantine with an ATTACHMENT_* or CLAMAV_VIRUS symbol; no 250 came
        for a message whose DATA began and ended inside a --forbid window.

Every message carries `workers-token: <token>` in its body and the token in
its Subject. Standard library only.
"""

import argparse
import base64
import heapq
import io
import json
import os
import smtplib
import sys
import threading
import time
import urllib.request
import zipfile
import email.policy
from email.message import EmailMessage
from email.utils import formatdate

SENDER = "load@sender.workers.test"
RCPT = "inbox@example.test"
KINDS = ("clean", "blocked", "clean", "eicar")
# The EICAR test file, encoded so this source holds nothing a scanner flags.
EICAR_B64 = "WDVPIVAlQEFQWzRcUFpYNTQoUF4pN0NDKTd9JEVJQ0FSLVNUQU5EQVJELUFOVElWSVJVUy1URVNULUZJTEUhJEgrSCo="


def message(kind, token):
    m = EmailMessage()
    m["From"] = "Load <%s>" % SENDER
    m["To"] = "Inbox <%s>" % RCPT
    m["Subject"] = "workers test %s %s" % (kind, token)
    m["Date"] = formatdate()
    m["Message-ID"] = "<%s@sender.workers.test>" % token
    m.set_content("Hello,\n\nthis message goes through scanning workers.\n\nworkers-token: %s\n" % token)
    if kind == "eicar":
        # Base64, so only a scanner that decodes MIME parts can find it.
        data = base64.b64decode(EICAR_B64)
        m.add_attachment(data, maintype="application", subtype="octet-stream", filename="notes.txt")
    elif kind == "blocked":
        exe = bytearray(512)
        exe[:2] = b"MZ"
        exe[0x3C:0x40] = (0x80).to_bytes(4, "little")
        exe[0x80:0x84] = b"PE\0\0"
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("setup.exe", bytes(exe))
        m.add_attachment(buf.getvalue(), maintype="application", subtype="zip", filename="invoice.zip")
    return m.as_bytes(policy=email.policy.SMTP)


class Refused(Exception):
    def __init__(self, code, text):
        super().__init__("%d %s" % (code, text))
        self.code = code


def send(port, kind, token, timeout=30):
    """One transaction; (time DATA began, "code text") for a 250."""
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.workers.test", timeout=timeout) as s:
        for cmd in (s.ehlo, lambda: s.mail(SENDER), lambda: s.rcpt(RCPT)):
            code, text = cmd()
            if code != 250:
                raise Refused(code, text.decode("utf-8", "replace"))
        t_data = time.time()
        try:
            code, text = s.data(message(kind, token))
        except smtplib.SMTPDataError as e:
            raise Refused(e.smtp_code, e.smtp_error.decode("utf-8", "replace"))
        # smtplib returns the reply to the message itself, whatever its code.
        if code != 250:
            raise Refused(code, text.decode("utf-8", "replace"))
        return t_data, "%d %s" % (code, text.decode("utf-8", "replace"))


def cmd_one(a):
    try:
        _, reply = send(a.port, a.kind, a.token)
    except Refused as e:
        reply = str(e)
    except (OSError, smtplib.SMTPException) as e:
        print("workers_mail: session broke: %r" % e, file=sys.stderr)
        return 1
    print(reply)
    return 0


class Ledger:
    def __init__(self, out):
        self.lock = threading.Condition()
        self.due = []  # heap of (not_before, n, token, kind)
        self.counts = {"generated": 0, "acked": 0, "tempfail": 0, "errors": 0, "rejected": 0}
        self.pending = 0
        self.acked = open(os.path.join(out, "acked.tsv"), "a", buffering=1)
        self.log = open(os.path.join(out, "tempfail.log"), "a", buffering=1)

    def add(self, n, token, kind):
        with self.lock:
            self.counts["generated"] += 1
            self.pending += 1
            heapq.heappush(self.due, (0.0, n, token, kind))
            self.lock.notify()

    def take(self, stop):
        with self.lock:
            while True:
                now = time.time()
                if self.due and self.due[0][0] <= now:
                    return heapq.heappop(self.due)
                if stop.is_set() and self.pending == 0:
                    return None
                self.lock.wait(min(self.due[0][0] - now, 0.2) if self.due else 0.2)

    def done(self, what, item, line):
        with self.lock:
            self.counts[what] += 1
            if what == "acked":
                self.pending -= 1
                self.acked.write(line + "\n")
            elif what == "rejected":
                self.pending -= 1
                self.log.write(line + "\n")
            else:
                self.log.write(line + "\n")
                heapq.heappush(self.due, (time.time() + 1.0,) + item[1:])
                self.lock.notify()

    def snapshot(self):
        with self.lock:
            return dict(self.counts, pending=self.pending, t=time.time())


def sender(ledger, stop, port):
    while True:
        item = ledger.take(stop)
        if item is None:
            return
        _, _, token, kind = item
        try:
            t_data, reply = send(port, kind, token)
            ledger.done("acked", item, "%s\t%s\t%.6f\t%.6f\t%s" % (token, kind, t_data, time.time(), reply))
        except Refused as e:
            what = "tempfail" if 400 <= e.code < 500 else "rejected"
            ledger.done(what, item, "%.6f\t%s\t%s\t%s" % (time.time(), token, what, e))
        except (OSError, smtplib.SMTPException) as e:
            ledger.done("errors", item, "%.6f\t%s\terror\t%r" % (time.time(), token, e))


def cmd_stream(a):
    os.makedirs(a.dir, exist_ok=True)
    ledger, stop, finished = Ledger(a.dir), threading.Event(), threading.Event()

    def report():
        path = os.path.join(a.dir, "progress.json")
        while True:
            with open(path + ".tmp", "w") as f:
                json.dump(ledger.snapshot(), f)
            os.replace(path + ".tmp", path)
            if finished.wait(0.25):
                return

    reporter = threading.Thread(target=report, daemon=True)
    reporter.start()
    threads = [threading.Thread(target=sender, args=(ledger, stop, a.port), daemon=True) for _ in range(a.threads)]
    for t in threads:
        t.start()
    n, t0 = 0, time.time()
    while not os.path.exists(os.path.join(a.dir, "stop")):
        while n < int((time.time() - t0) * a.rate) + 1:
            ledger.add(n, "%s-%06d" % (a.run_id, n), KINDS[n % len(KINDS)])
            n += 1
        time.sleep(0.05)
    stop.set()
    deadline = time.time() + a.drain
    for t in threads:
        t.join(max(0.0, deadline - time.time()))
    finished.set()
    reporter.join()
    s = ledger.snapshot()
    print(
        "stream: %(generated)d sent, %(acked)d acknowledged, %(tempfail)d 4xx answers, "
        "%(errors)d broken sessions, %(rejected)d rejected, %(pending)d still owed" % s,
        file=sys.stderr,
    )
    return 0 if s["pending"] == 0 and s["rejected"] == 0 else 1


def quarantined(port, token):
    """Every quarantine record, oldest first: {subject: [symbol names]}."""
    out, cursor = {}, None
    while True:
        url = "http://127.0.0.1:%d/api/v1/quarantine?status=all&limit=500&order=oldest" % port
        if cursor:
            url += "&cursor=" + cursor
        req = urllib.request.Request(url, headers={"Authorization": "Bearer " + token})
        with urllib.request.urlopen(req, timeout=30) as r:
            items = json.loads(r.read())
            cursor = r.headers.get("x-next-cursor")
        for rec in items:
            out[rec["subject"]] = [s["name"] for s in rec["symbols"]]
        if not cursor or not items:
            return out


def cmd_held(a):
    found = [(subj, syms) for subj, syms in quarantined(a.admin, a.admin_token).items() if a.token in subj.split()]
    if not found:
        print("workers_mail: nothing quarantined with %s in its Subject" % a.token, file=sys.stderr)
        return 1
    print(" ".join(found[0][1]))
    return 0


def cmd_verify(a):
    acked = [line.rstrip("\n").split("\t") for line in open(os.path.join(a.dir, "acked.tsv"))]
    delivered = set(open(a.delivered).read().split())
    held = quarantined(a.admin, a.admin_token)
    windows = [tuple(map(float, w.split(","))) for w in a.forbid]
    problems, counts = [], {}
    for token, kind, t_data, t_reply, reply in acked:
        counts[kind] = counts.get(kind, 0) + 1
        for lo, hi in windows:
            # DATA began after the scanner died and the 250 came before it
            # was back: nothing could have scanned the message.
            if lo < float(t_data) and float(t_reply) < hi:
                problems.append("%s (%s): 250 while nothing could scan it: %s" % (token, kind, reply))
        symbols = held.get("workers test %s %s" % (kind, token))
        if kind == "clean":
            if token not in delivered:
                problems.append("%s (clean): acknowledged but not at the sink" % token)
        elif token in delivered:
            problems.append("%s (%s): reached the sink unscanned" % (token, kind))
        elif symbols is None:
            problems.append("%s (%s): acknowledged but neither delivered nor quarantined" % (token, kind))
        elif kind == "eicar" and "CLAMAV_VIRUS" not in symbols:
            problems.append("%s (eicar): quarantined without CLAMAV_VIRUS: %s" % (token, symbols))
        elif kind == "blocked" and not any(s.startswith("ATTACHMENT_") for s in symbols):
            problems.append("%s (blocked): quarantined without an ATTACHMENT_ symbol: %s" % (token, symbols))
    print("acknowledged: %s; quarantine records: %d" % (", ".join("%d %s" % (v, k) for k, v in sorted(counts.items())), len(held)))
    for p in problems[:20]:
        print("  " + p, file=sys.stderr)
    if problems:
        print("verify: %d problems" % len(problems), file=sys.stderr)
        return 1
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    one = sub.add_parser("one")
    one.add_argument("--port", type=int, required=True)
    one.add_argument("--kind", choices=sorted(set(KINDS)), required=True)
    one.add_argument("--token", required=True)
    st = sub.add_parser("stream")
    st.add_argument("--port", type=int, required=True)
    st.add_argument("--dir", required=True)
    st.add_argument("--run-id", required=True)
    st.add_argument("--rate", type=float, default=20.0)
    st.add_argument("--threads", type=int, default=6)
    st.add_argument("--drain", type=float, default=60.0)
    h = sub.add_parser("held")
    h.add_argument("--admin", type=int, required=True)
    h.add_argument("--admin-token", required=True)
    h.add_argument("--token", required=True)
    v = sub.add_parser("verify")
    v.add_argument("--dir", required=True)
    v.add_argument("--delivered", required=True)
    v.add_argument("--admin", type=int, required=True)
    v.add_argument("--admin-token", required=True)
    v.add_argument("--forbid", action="append", default=[], help="START,END in Unix seconds")
    a = p.parse_args()
    sys.exit({"one": cmd_one, "stream": cmd_stream, "held": cmd_held, "verify": cmd_verify}[a.cmd](a))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Helpers of bench/workers.sh (method: bench/README.md, "Remote workers and
outside scanners").

  workers.py message DIR       writes msg.eml (the 10 KB test message),
                               eicar.eml and gtube.eml into DIR
  workers.py verify DUMPDIR N  checks N messages smtp-sink dumped: each must
                               carry X-Mxgate-Verdict deliver; prints JSON
  workers.py latency --target HOST:PORT --file EML --count N [--rcpt ADDR]
                               sends N messages one at a time, timing each
                               SMTP transaction; prints JSON (mean, p50, p95
                               and every time, in ms)
  workers.py get PORT PATH     GET http://127.0.0.1:PORT/PATH (admin API)

Only loopback addresses are accepted.
"""

import base64
import email.utils
import io
import ipaddress
import json
import os
import random
import socket
import statistics
import sys
import time
import urllib.request
import zipfile

SIZE = 10240
EICAR = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def head(subject, mid, ctype):
    # The time of the run: the scanners score dates in the past.
    return (
        'From: "Shop News" <news@shop.test>\n'
        "To: <user@example.test>\n"
        f"Subject: {subject}\n"
        f"Date: {email.utils.formatdate(localtime=True)}\n"
        f"Message-ID: <{mid}@shop.test>\n"
        "MIME-Version: 1.0\n"
        f"Content-Type: {ctype}\n\n"
    )


def b64(data):
    s = base64.b64encode(data).decode()
    return "\n".join(s[i : i + 76] for i in range(0, len(s), 76))


def attachment_zip():
    """documents.zip: a text note and a CSV (deflated), ~1 KB."""
    rnd = random.Random(7)
    buf = io.BytesIO()
    rows = "".join(f"{i},item-{rnd.randrange(10**6)},{rnd.randrange(100, 9999) / 100}\n" for i in range(40))
    with zipfile.ZipFile(buf, "w") as z:
        for name, text in (("notes.txt", "Order notes\n" * 20), ("invoice.csv", "n,item,price\n" + rows)):
            # Fixed dates: the same octets every run.
            info = zipfile.ZipInfo(name, (2026, 12, 6, 12, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, text)
    return buf.getvalue()


def html_part(blocks):
    rows = []
    for i in range(blocks):
        rows.append(
            f'<tr><td><img src="https://cdn.shop.test/img/p{i}.jpg" width="120" alt="Product {i}"></td>'
            f'<td><a href="https://www.shop.test/p/{i}?utm_source=news&amp;utm_medium=mail">Product {i}</a>'
            f"<p>Hand-made item number {i}, in stock, ships within two days.</p>"
            f'<a href="https://click.mailer.test/c/{1000 + i}">See the offer</a></td></tr>'
        )
    return (
        "<html><head><style>td{font-family:sans-serif;padding:4px}</style></head><body>\n"
        '<p>Your order documents are attached. Track it at <a href="https://www.shop.test/orders/42">'
        "https://www.shop.test/orders/42</a>.</p>\n<table>\n" + "\n".join(rows) + "\n</table>\n"
        '<p><a href="https://www.shop.test/unsubscribe?u=42">Unsubscribe</a></p></body></html>\n'
    )


def test_message():
    """multipart/mixed: text + HTML (links, images) alternative, and a zip;
    padded with text to SIZE octets (LF; smtp-source sends CRLF, so the
    wire size is SIZE plus one octet per line)."""
    zipped = b64(attachment_zip())

    def build(text_lines, blocks):
        text = "".join(f"Item {i}: hand-made, in stock. https://www.shop.test/p/{i}\n" for i in range(text_lines))
        return (
            head("Your order documents and this week's offers", "workers-bench-1", 'multipart/mixed; boundary="b-mix"')
            + '--b-mix\nContent-Type: multipart/alternative; boundary="b-alt"\n\n'
            + "--b-alt\nContent-Type: text/plain; charset=utf-8\n\n"
            + text
            + "\n--b-alt\nContent-Type: text/html; charset=utf-8\n\n"
            + html_part(blocks)
            + "--b-alt--\n\n--b-mix\n"
            + 'Content-Type: application/zip; name="documents.zip"\n'
            + 'Content-Disposition: attachment; filename="documents.zip"\n'
            + "Content-Transfer-Encoding: base64\n\n"
            + zipped
            + "\n--b-mix--\n"
        )

    blocks = 1
    while len(build(blocks, blocks + 1)) < SIZE - 400:
        blocks += 1
    msg = build(blocks, blocks)
    pad = SIZE - len(msg)
    filler = ("Thank you for shopping with us. " * 20).strip()
    extra = ""
    while pad > 1:
        line = filler[: min(len(filler), pad - 1)] + "\n"
        extra += line
        pad -= len(line)
    msg = msg.replace("\n--b-alt\nContent-Type: text/html", "\n" + extra + "--b-alt\nContent-Type: text/html", 1)
    return msg + ("\n" if len(msg) < SIZE else "")


def message(out_dir):
    msgs = {
        "msg.eml": test_message(),
        "eicar.eml": head("Documents", "workers-eicar", 'multipart/mixed; boundary="b"')
        + "--b\nContent-Type: text/plain\n\nThe file.\n\n--b\n"
        + 'Content-Type: application/octet-stream; name="eicar.com"\n'
        + 'Content-Disposition: attachment; filename="eicar.com"\nContent-Transfer-Encoding: base64\n\n'
        + b64(EICAR.encode())
        + "\n--b--\n",
        "gtube.eml": head("Test", "workers-gtube", "text/plain") + f"This is a spam test.\n\n{GTUBE}\n",
    }
    for name, text in msgs.items():
        with open(os.path.join(out_dir, name), "w") as f:
            f.write(text)
    print(json.dumps({k: len(v) for k, v in msgs.items()}))


def verify(dump_dir, n):
    """What the downstream got: verdicts and symbols of every dumped message."""
    verdicts, symbols, files = {}, {}, sorted(os.listdir(dump_dir))
    for name in files:
        raw = open(os.path.join(dump_dir, name), "rb").read().decode("utf-8", "replace")
        top = raw.replace("\r\n", "\n").split("\n\n", 1)[0].replace("\n ", " ").replace("\n\t", " ")
        fields = {}
        for line in top.split("\n"):
            k, _, v = line.partition(":")
            fields.setdefault(k.strip().lower(), v.strip())
        v = fields.get("x-mxgate-verdict", "(none)")
        verdicts[v] = verdicts.get(v, 0) + 1
        for s in fields.get("x-mxgate-symbols", "none").split(", "):
            if s and s != "none":
                symbols[s] = symbols.get(s, 0) + 1
    ok = len(files) == n and set(verdicts) <= {"deliver", "tag"}
    print(json.dumps({"ok": ok, "expected": n, "arrived": len(files), "verdicts": verdicts, "symbols": symbols}))
    return 0 if ok else 1


class Smtp:
    def __init__(self, addr, timeout):
        self.s = socket.create_connection(addr, timeout=timeout)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.f = self.s.makefile("rb")

    def reply(self):
        while True:
            line = self.f.readline()
            if len(line) < 4:
                raise OSError("connection closed")
            if line[3:4] != b"-":
                return int(line[:3]), line.decode("utf-8", "replace").strip()

    def cmd(self, data, want):
        self.s.sendall(data)
        code, text = self.reply()
        if code != want:
            raise OSError(text)
        return code


def transaction(addr, rcpt, body, timeout):
    """One SMTP session (connect .. 250 after the data); seconds and reply code."""
    t0 = time.perf_counter()
    c = Smtp(addr, timeout)
    try:
        if c.reply()[0] != 220:
            raise OSError("no 220 greeting")
        c.cmd(b"EHLO client.bench.test\r\n", 250)
        c.cmd(b"MAIL FROM:<bench@sender.test>\r\n", 250)
        c.cmd(b"RCPT TO:<" + rcpt.encode() + b">\r\n", 250)
        c.cmd(b"DATA\r\n", 354)
        c.s.sendall(body)
        code, text = c.reply()
        took = time.perf_counter() - t0
        c.s.sendall(b"QUIT\r\n")
        c.reply()
        return took, code, text
    finally:
        c.s.close()


def pct(xs, p):
    """Nearest-rank percentile of sorted xs."""
    return xs[max(0, -(-len(xs) * p // 100) - 1)] if xs else None


def latency(target, path, count, rcpt, timeout):
    host, port = target.rsplit(":", 1)
    if not ipaddress.ip_address(host).is_loopback:
        sys.exit(f"{host} is not a loopback address")
    lines = open(path, "rb").read().replace(b"\r\n", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    body = b"".join((b"." + l if l.startswith(b".") else l) + b"\r\n" for l in lines) + b".\r\n"
    times, codes, errors = [], {}, []
    for _ in range(count):
        try:
            took, code, text = transaction((host, int(port)), rcpt, body, timeout)
        except OSError as e:
            errors.append(str(e))
            continue
        codes[str(code)] = codes.get(str(code), 0) + 1
        if code == 250:
            times.append(took * 1000)
        elif len(errors) < 5:
            errors.append(text)
    times.sort()
    out = {"count": count, "ok": len(times), "codes": codes, "errors": errors[:5], "octets": len(body)}
    if times:
        out.update(mean_ms=statistics.fmean(times), p50_ms=pct(times, 50), p95_ms=pct(times, 95),
                   p99_ms=pct(times, 99), max_ms=times[-1], samples_ms=[round(t, 3) for t in times])
    print(json.dumps(out))
    return 0 if len(times) == count else 1


def get(port, path):
    url = f"http://127.0.0.1:{int(port)}/{path.lstrip('/')}"
    print(urllib.request.urlopen(url, timeout=10).read().decode())


def main(argv):
    if len(argv) >= 2 and argv[0] == "message":
        return message(argv[1])
    if len(argv) >= 3 and argv[0] == "verify":
        return verify(argv[1], int(argv[2]))
    if len(argv) >= 3 and argv[0] == "get":
        return get(argv[1], argv[2])
    if argv and argv[0] == "latency":
        opts = dict(zip(argv[1::2], argv[2::2]))
        return latency(opts["--target"], opts["--file"], int(opts["--count"]), opts.get("--rcpt", "user@example.test"),
                       float(opts.get("--timeout", 60)))
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]) or 0)

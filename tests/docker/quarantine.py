#!/usr/bin/env python3
"""The quarantine contract, checked against a running mxgate container.

    quarantine.py --port SMTP --admin ADMIN_PORT --admin-token T --sink-dir DIR

Sends a message with a zip holding a Windows program (quarantined by
default), finds it with GET /api/v1/quarantine, shows it, releases it with
POST /api/v1/quarantine/{id}/release, waits for exactly one copy in the
sink, and checks that a second release is refused (409), a wrong token is
refused (401) and an unknown id is 404. Prints what it saw; exits non-zero
on any deviation.
"""

import argparse
import glob
import io
import json
import smtplib
import sys
import time
import urllib.error
import urllib.request
import zipfile
from email.message import EmailMessage


def api(port, method, path, token):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def fail(msg):
    print("quarantine contract: " + msg, file=sys.stderr)
    sys.exit(1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--admin", type=int, required=True)
    p.add_argument("--admin-token", required=True)
    p.add_argument("--sink-dir", required=True)
    a = p.parse_args()
    subject = "quarantine proof %d" % time.time_ns()

    exe = bytearray(512)
    exe[:2] = b"MZ"
    exe[0x3C:0x40] = (0x80).to_bytes(4, "little")
    exe[0x80:0x84] = b"PE\0\0"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("setup.exe", bytes(exe))
    msg = EmailMessage()
    msg["From"] = "a@sender.proof.test"
    msg["To"] = "postmaster@example.test"
    msg["Subject"] = subject
    msg.set_content("Invoice attached.\n")
    msg.add_attachment(buf.getvalue(), maintype="application", subtype="zip", filename="invoice.zip")
    with smtplib.SMTP("127.0.0.1", a.port, timeout=30) as s:
        s.ehlo("client.proof.test")
        s.send_message(msg)

    status, items = api(a.admin, "GET", "/api/v1/quarantine", a.admin_token)
    if status != 200:
        fail("list: HTTP %d %s" % (status, items))
    found = [r for r in items if r.get("subject") == subject]
    if len(found) != 1 or found[0]["status"] != "held" or not found[0]["reasons"]:
        fail("the message is not listed as held with reasons: %s" % json.dumps(items)[:2000])
    rec = found[0]
    qid = rec["id"]
    print("held %s: %s" % (qid, "; ".join(rec["reasons"])))
    if api(a.admin, "GET", "/api/v1/quarantine", "wrong-token")[0] != 401:
        fail("a wrong token is not refused with 401")
    if api(a.admin, "GET", "/api/v1/quarantine/NOSUCHID", a.admin_token)[0] != 404:
        fail("an unknown id is not 404")
    status, shown = api(a.admin, "GET", "/api/v1/quarantine/" + qid, a.admin_token)
    if status != 200 or shown["preview"]["attachments"][0]["name"] != "invoice.zip":
        fail("show: HTTP %d %s" % (status, json.dumps(shown)[:2000]))
    if glob.glob(a.sink_dir + "/*.eml") and any(subject in open(f, errors="replace").read() for f in glob.glob(a.sink_dir + "/*.eml")):
        fail("the held message reached the sink before release")

    status, out = api(a.admin, "POST", "/api/v1/quarantine/%s/release" % qid, a.admin_token)
    if status != 200:
        fail("release: HTTP %d %s" % (status, out))
    status, out = api(a.admin, "POST", "/api/v1/quarantine/%s/release" % qid, a.admin_token)
    if status != 409:
        fail("a second release is not refused: HTTP %d %s" % (status, out))
    copies = []
    for _ in range(60):
        copies = [f for f in glob.glob(a.sink_dir + "/*.eml") if subject in open(f, errors="replace").read()]
        if copies:
            break
        time.sleep(0.5)
    time.sleep(1)
    copies = [f for f in glob.glob(a.sink_dir + "/*.eml") if subject in open(f, errors="replace").read()]
    if len(copies) != 1:
        fail("want exactly one released copy in the sink, found %d" % len(copies))
    text = open(copies[0], errors="replace").read()
    if "X-Mxgate-Released: by api" not in text:
        fail("the released copy lacks X-Mxgate-Released")
    print("released once; delivered copy carries X-Mxgate-Released")


if __name__ == "__main__":
    main()

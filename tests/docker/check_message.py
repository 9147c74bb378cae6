#!/usr/bin/env python3
"""Check what the sink recorded, for the docker proof.

    check_message.py --dir SINKDIR --token XYZ --hostname mx.proof.test \
        --to b@example.test --queue-id ID

Finds the one message whose Subject carries the token and checks: the
envelope recipient, that the topmost Received header was added by mxgate
under the configured hostname ("by <hostname> (mxgate) with ESMTPS ...", the
S meaning the client used STARTTLS) and names the queue id, that the
scanning pipeline left its verdict (Authentication-Results under the
hostname, X-Mxgate-Verdict), and that the body arrived intact. Exits non-zero with the reason on any failure.
"""

import argparse
import email
import email.policy
import glob
import json
import re
import sys


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--hostname", required=True)
    p.add_argument("--to", required=True)
    p.add_argument("--queue-id", required=True)
    a = p.parse_args()

    found = []
    for path in sorted(glob.glob(a.dir + "/*.eml")):
        with open(path, "rb") as f:
            raw = f.read()
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
        if a.token in (msg.get("Subject") or ""):
            found.append((path, raw, msg))
    if len(found) != 1:
        fail("expected 1 message with token %s in %s, found %d" % (a.token, a.dir, len(found)))
    path, raw, msg = found[0]

    with open(path[: -len(".eml")] + ".json") as f:
        envelope = json.load(f)
    if envelope["rcpt_to"] != [a.to]:
        fail("envelope recipients %r, want [%r]" % (envelope["rcpt_to"], a.to))

    received = msg.get_all("Received") or []
    if not received:
        fail("no Received header; headers: %r" % msg.keys())
    top = " ".join(received[0].split())
    want = r"\bby %s \(mxgate\) with ESMTPS id %s\b" % (re.escape(a.hostname), re.escape(a.queue_id))
    if not re.search(want, top):
        fail("topmost Received header does not match %r: %r" % (want, top))

    results = [" ".join(v.split()) for v in msg.get_all("Authentication-Results") or []]
    if not any(r.startswith(a.hostname + ";") for r in results):
        fail("no Authentication-Results from %s: %r" % (a.hostname, results))
    verdict = msg.get("X-Mxgate-Verdict")
    if verdict not in ("deliver", "tag"):
        fail("X-Mxgate-Verdict is %r" % verdict)
    print("X-Mxgate-Verdict: %s; X-Mxgate-Symbols: %s" % (verdict, msg.get("X-Mxgate-Symbols")), file=sys.stderr)

    body = msg.get_payload(decode=True) or b""
    if b".leading dot survives" not in body or ("token: " + a.token).encode() not in body:
        fail("body not intact: %r" % body[:500])

    print("Received: " + top, file=sys.stderr)
    print("message ok: %s (%d octets)" % (path, len(raw)), file=sys.stderr)


def fail(why):
    print("check_message.py: " + why, file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
    main()

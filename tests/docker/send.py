#!/usr/bin/env python3
"""Send one message through mxgate with STARTTLS, for the docker proof.

    send.py --port 2525 --from a@sender.test --to b@example.test --token XYZ

Requires the server to offer STARTTLS (the certificate is self-signed, so it
is not verified), sends after TLS is up, and prints the queue id taken from
the final reply ("250 2.0.0 Ok: queued as <ID>"). Exits non-zero on any
deviation.
"""

import argparse
import email.policy
import re
import smtplib
import ssl
import sys
from email.message import EmailMessage
from email.utils import make_msgid, formatdate


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--from", dest="sender", required=True)
    p.add_argument("--to", required=True)
    p.add_argument("--token", required=True, help="unique text put in Subject and body")
    p.add_argument("--helo", default="client.proof.test")
    a = p.parse_args()

    msg = EmailMessage()
    msg["From"] = a.sender
    msg["To"] = a.to
    msg["Subject"] = "docker proof " + a.token
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="proof.test")
    msg.set_content("Sent through the mxgate container.\n.leading dot survives\ntoken: %s\n" % a.token)

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # mxgate's certificate is self-signed

    with smtplib.SMTP(a.host, a.port, local_hostname=a.helo, timeout=30) as s:
        code, banner = s.ehlo()
        if code != 250:
            fail("EHLO answered %d %r" % (code, banner))
        if not s.has_extn("starttls"):
            fail("STARTTLS not offered; EHLO said %r" % banner)
        code, text = s.starttls(context=ctx)
        if code != 220:
            fail("STARTTLS answered %d %r" % (code, text))
        tls = s.sock.version()
        s.ehlo()
        if s.has_extn("starttls"):
            fail("STARTTLS still offered after TLS is up")
        code, text = s.mail(a.sender)
        if code != 250:
            fail("MAIL answered %d %r" % (code, text))
        code, text = s.rcpt(a.to)
        if code != 250:
            fail("RCPT answered %d %r" % (code, text))
        # CRLF line ends: smtplib sends bytes as they are, and bare LF is refused.
        code, text = s.data(msg.as_bytes(policy=email.policy.SMTP))
        text = text.decode("utf-8", "replace")
        if code != 250:
            fail("DATA answered %d %r" % (code, text))
        m = re.search(r"queued as (\S+)", text)
        if not m:
            fail("final reply does not name a queue id: %d %s" % (code, text))
        print("sent over %s, reply: %d %s" % (tls, code, text), file=sys.stderr)
        print(m.group(1))


def fail(why):
    print("send.py: " + why, file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
    main()

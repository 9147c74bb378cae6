#!/usr/bin/env python3
"""A recording SMTP sink for the docker proof.

Accepts any envelope over plain SMTP (no STARTTLS offered), and writes each
message to DIR/<n>.eml (written to a temporary name, then renamed, so a reader
never sees half a message), with the envelope in DIR/<n>.json.

    sink.py --listen 127.0.0.1 --port 0 --dir /tmp/out --port-file /tmp/port

With --port 0 the kernel picks a free port; it is written to --port-file once
the socket listens. Stops on SIGTERM/SIGINT. Standard library only (the
smtpd module is gone from Python 3.12).
"""

import argparse
import asyncio
import json
import os
import signal
import sys

MAX_LINE = 1 << 20
MAX_MESSAGE = 64 << 20


class Sink:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    def store(self, peer, helo, mail_from, rcpts, data):
        self.count += 1
        base = os.path.join(self.directory, "%06d" % self.count)
        with open(base + ".json.tmp", "w") as f:
            json.dump({"peer": peer, "helo": helo, "mail_from": mail_from, "rcpt_to": rcpts}, f)
        os.rename(base + ".json.tmp", base + ".json")
        with open(base + ".eml.tmp", "wb") as f:
            f.write(data)
        os.rename(base + ".eml.tmp", base + ".eml")
        log("stored %s.eml (%d octets) from %s to %s" % (base, len(data), mail_from, ",".join(rcpts)))

    async def session(self, reader, writer):
        peer = "%s:%s" % writer.get_extra_info("peername")[:2]

        async def reply(text):
            writer.write(text.encode() + b"\r\n")
            await writer.drain()

        helo, mail_from, rcpts = None, None, []
        try:
            await reply("220 sink.test ESMTP recording sink")
            while True:
                line = await reader.readuntil(b"\n")
                cmd = line.decode("utf-8", "replace").rstrip("\r\n")
                verb = cmd.split(" ", 1)[0].upper()
                if verb == "EHLO":
                    helo = cmd[5:].strip()
                    await reply("250-sink.test\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-PIPELINING\r\n250 SIZE %d" % MAX_MESSAGE)
                elif verb == "HELO":
                    helo = cmd[5:].strip()
                    await reply("250 sink.test")
                elif verb == "MAIL":
                    mail_from, rcpts = address(cmd), []
                    await reply("250 2.1.0 Ok")
                elif verb == "RCPT":
                    if mail_from is None:
                        await reply("503 5.5.1 MAIL first")
                    else:
                        rcpts.append(address(cmd))
                        await reply("250 2.1.5 Ok")
                elif verb == "DATA":
                    if not rcpts:
                        await reply("503 5.5.1 RCPT first")
                        continue
                    await reply("354 End data with <CR><LF>.<CR><LF>")
                    data = bytearray()
                    while True:
                        chunk = await reader.readuntil(b"\n")
                        if chunk in (b".\r\n", b".\n"):
                            break
                        if chunk.startswith(b"."):
                            chunk = chunk[1:]  # RFC 5321 4.5.2 dot-unstuffing
                        data += chunk
                        if len(data) > MAX_MESSAGE:
                            raise ValueError("message too large")
                    self.store(peer, helo, mail_from, rcpts, bytes(data))
                    await reply("250 2.0.0 Ok: stored %06d" % self.count)
                    mail_from, rcpts = None, []
                elif verb == "RSET":
                    mail_from, rcpts = None, []
                    await reply("250 2.0.0 Ok")
                elif verb == "NOOP":
                    await reply("250 2.0.0 Ok")
                elif verb == "QUIT":
                    await reply("221 2.0.0 Bye")
                    break
                else:
                    await reply("502 5.5.2 Command not implemented")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError) as e:
            log("session %s ended: %r" % (peer, e))
        finally:
            writer.close()


def address(cmd):
    """The path between < and > of a MAIL/RCPT command."""
    start, end = cmd.find("<"), cmd.find(">")
    return cmd[start + 1 : end] if 0 <= start < end else cmd.split(":", 1)[-1].strip()


def log(msg):
    print("sink: " + msg, file=sys.stderr, flush=True)


async def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--listen", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--dir", required=True)
    p.add_argument("--port-file")
    a = p.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    sink = Sink(a.dir)
    server = await asyncio.start_server(sink.session, a.listen, a.port, limit=MAX_LINE)
    port = server.sockets[0].getsockname()[1]
    if a.port_file:
        with open(a.port_file + ".tmp", "w") as f:
            f.write("%d\n" % port)
        os.rename(a.port_file + ".tmp", a.port_file)
    log("listening on %s:%d, writing to %s" % (a.listen, port, a.dir))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    async with server:
        await stop.wait()
    log("stopped after %d message(s)" % sink.count)


if __name__ == "__main__":
    asyncio.run(main())

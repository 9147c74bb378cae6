#!/usr/bin/env python3
"""End-to-end latency probe for the relay benchmark.

One asyncio process plays both ends of a probe path through the gateway under
test:

  * a tiny recording SMTP sink on --listen (the gateway routes the domain
    probe.test there), which timestamps the moment each message's final
    "." arrives;
  * a sender that, every --interval seconds, opens a new SMTP session to the
    gateway and sends one message of --size payload octets to
    pN@probe.test with a unique X-Probe-Id and Message-ID.

Latency of probe N = arrival time at the recording sink - time the probe
session started (before connect), both read from the same monotonic clock.
The sender stops when --stop-file appears (the load run finished) or after
--max probes or --max-seconds; it then waits at most --drain seconds for
outstanding probes to arrive. Every network operation has a timeout, so the
process always ends by itself.

Only loopback addresses are accepted for --gateway and --listen.

Output: one JSON object on stdout (or --out FILE).
"""

import argparse
import asyncio
import ipaddress
import json
import os
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("--gateway", required=True, help="host:port of the gateway under test")
ap.add_argument("--listen", required=True, help="host:port for the recording sink")
ap.add_argument("--size", type=int, default=10240, help="payload octets per probe")
ap.add_argument("--interval", type=float, default=0.05, help="seconds between probe starts")
ap.add_argument("--max", type=int, default=2000, help="most probes to send")
ap.add_argument("--max-seconds", type=float, default=600, help="stop sending after this long")
ap.add_argument("--stop-file", default=None, help="stop sending once this file exists")
ap.add_argument("--ready-file", default=None, help="touched once the recording sink listens")
ap.add_argument("--drain", type=float, default=60, help="seconds to wait for outstanding probes")
ap.add_argument("--timeout", type=float, default=60, help="per-operation network timeout")
ap.add_argument("--out", default=None)
ap.add_argument("--samples", default=None, help="also write every probe's times (epoch s) as TSV here")
args = ap.parse_args()


def hostport(s):
    host, port = s.rsplit(":", 1)
    host = host.strip("[]")
    if not ipaddress.ip_address(host).is_loopback:
        sys.exit(f"probe.py: {host} is not a loopback address")
    return host, int(port)


GW = hostport(args.gateway)
LISTEN = hostport(args.listen)
RUN_ID = f"{os.getpid()}.{int(time.time())}"

started = {}  # probe id -> monotonic start
accepted = {}  # probe id -> monotonic time the gateway answered 250 to "."
arrived = {}  # probe id -> monotonic arrival at the recording sink
errors = []  # (probe id, text)
sink_other = 0  # messages at the sink without a known probe id
all_arrived = asyncio.Event()


# ----------------------------------------------------------------- sink side
async def sink_session(reader, writer):
    global sink_other
    t = args.timeout

    async def reply(line):
        writer.write(line.encode() + b"\r\n")
        await writer.drain()

    try:
        await reply("220 probe-sink ESMTP")
        while True:
            line = await asyncio.wait_for(reader.readline(), t)
            if not line:
                break
            verb = line[:4].upper()
            if verb in (b"EHLO", b"LHLO"):
                await reply("250-probe-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 104857600")
            elif verb == b"HELO":
                await reply("250 probe-sink")
            elif verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                await reply("250 2.0.0 ok")
            elif verb == b"DATA":
                await reply("354 go ahead")
                # One read for the whole message: cheap even when the CPU is
                # saturated by the load (a per-line loop is not).
                data = await asyncio.wait_for(reader.readuntil(b"\r\n.\r\n"), t)
                now = time.monotonic()
                pid = None
                head = b"\n" + data[: data.find(b"\r\n\r\n") + 2]
                i = head.lower().find(b"\nx-probe-id:")
                if i >= 0:
                    j = head.find(b"\r\n", i + 1)
                    pid = head[i + 12 : j].strip().decode(errors="replace")
                if pid is not None and pid in started and pid not in arrived:
                    arrived[pid] = now
                    if len(arrived) == len(started) and sending_done:
                        all_arrived.set()
                else:
                    sink_other += 1
                await reply("250 2.0.0 queued")
            elif verb == b"QUIT":
                await reply("221 2.0.0 bye")
                break
            else:
                await reply("502 5.5.2 not implemented")
    except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, OSError):
        pass
    except asyncio.CancelledError:  # shutting down; end quietly
        pass
    finally:
        writer.close()


# --------------------------------------------------------------- sender side
class SmtpError(Exception):
    pass


async def read_reply(reader):
    lines = []
    while True:
        line = await asyncio.wait_for(reader.readline(), args.timeout)
        if not line:
            raise SmtpError("connection closed: " + " | ".join(lines))
        s = line.decode(errors="replace").rstrip("\r\n")
        lines.append(s)
        if len(s) < 4 or s[3] != "-":
            return int(s[:3]) if s[:3].isdigit() else 0, " | ".join(lines)


async def expect(reader, writer, cmd, want):
    if cmd is not None:
        writer.write(cmd)
        await writer.drain()
    code, text = await read_reply(reader)
    if code // 100 != want:
        raise SmtpError(f"{cmd.decode().strip() if cmd else 'greeting'} -> {text}")


def body_for(pid):
    hdr = (
        f"From: <probe@sender.test>\r\n"
        f"To: <p{pid}@probe.test>\r\n"
        f"Subject: probe {pid}\r\n"
        f"Message-ID: <{pid}.{RUN_ID}@probe.bench.test>\r\n"
        f"X-Probe-Id: {pid}\r\n"
        f"\r\n"
    ).encode()
    line = b"x" * 76 + b"\r\n"  # 78 octets per line, well under 998
    n = max(1, args.size // len(line))
    return hdr + line * n + b".\r\n"


async def one_probe(pid):
    started[pid] = time.monotonic()
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(*GW), args.timeout)
        await expect(reader, writer, None, 2)
        await expect(reader, writer, b"EHLO probe.bench.test\r\n", 2)
        await expect(reader, writer, b"MAIL FROM:<probe@sender.test>\r\n", 2)
        await expect(reader, writer, f"RCPT TO:<p{pid}@probe.test>\r\n".encode(), 2)
        await expect(reader, writer, b"DATA\r\n", 3)
        await expect(reader, writer, body_for(pid), 2)
        accepted[pid] = time.monotonic()
        try:
            writer.write(b"QUIT\r\n")
            await writer.drain()
            await asyncio.wait_for(read_reply(reader), 5)
        except Exception:  # noqa: BLE001 - the message was accepted; QUIT is a courtesy
            pass
    except Exception as e:  # noqa: BLE001 - every failure is reported, none hidden
        errors.append((pid, f"{type(e).__name__}: {e}"))
        started.pop(pid, None)
    finally:
        if writer is not None:
            writer.close()


sending_done = False


def pct(values, p):
    if not values:
        return None
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return v[k]


async def main():
    global sending_done
    server = await asyncio.start_server(sink_session, *LISTEN, backlog=512, limit=64 * 1024 * 1024)
    if args.ready_file:
        open(args.ready_file, "w").close()
    t_begin = time.monotonic()
    tasks = []
    n = 0
    next_at = t_begin
    while n < args.max and time.monotonic() - t_begin < args.max_seconds:
        if args.stop_file and os.path.exists(args.stop_file):
            break
        n += 1
        tasks.append(asyncio.create_task(one_probe(str(n))))
        next_at += args.interval
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    t_stop_sending = time.monotonic()
    # Let the sessions finish, then wait for the stragglers at the sink.
    if tasks:
        await asyncio.wait(tasks, timeout=args.drain)
    sending_done = True
    if len(arrived) < len(started):
        try:
            left = max(0.1, args.drain - (time.monotonic() - t_stop_sending))
            await asyncio.wait_for(all_arrived.wait(), left)
        except asyncio.TimeoutError:
            pass
    for t in tasks:
        t.cancel()
    server.close()

    e2e = [(arrived[p] - started[p]) * 1000 for p in arrived if p in started]
    acc = [(accepted[p] - started[p]) * 1000 for p in accepted if p in started]
    missing = sorted((p for p in accepted if p not in arrived), key=int)
    res = {
        "gateway": args.gateway,
        "size": args.size,
        "interval_s": args.interval,
        "sent": n,
        "accepted": len(accepted),
        "arrived": len(arrived),
        "errors": len(errors),
        "error_samples": errors[:5],
        "missing_samples": missing[:10],
        "sink_unmatched": sink_other,
        "e2e_p50_ms": pct(e2e, 50),
        "e2e_p99_ms": pct(e2e, 99),
        "e2e_max_ms": max(e2e) if e2e else None,
        "accept_p50_ms": pct(acc, 50),
        "accept_p99_ms": pct(acc, 99),
        "sending_s": t_stop_sending - t_begin,
    }
    if args.samples:
        # monotonic -> wall clock, for lining probes up with other logs
        off = time.time() - time.monotonic()
        with open(args.samples, "w") as f:
            f.write("probe\tstart\taccepted_ms\tarrived_ms\n")
            for p in sorted(set(started) | set(accepted), key=int):
                st = started.get(p)
                if st is None:
                    continue
                a = accepted.get(p)
                r = arrived.get(p)
                f.write(f"{p}\t{st + off:.3f}\t{'' if a is None else round((a - st) * 1000, 1)}\t"
                        f"{'' if r is None else round((r - st) * 1000, 1)}\n")
    out = json.dumps(res, indent=1)
    if args.out:
        with open(args.out, "w") as f:
            f.write(out + "\n")
    else:
        print(out)


asyncio.run(main())

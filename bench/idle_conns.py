#!/usr/bin/env python3
"""Memory cost of idle SMTP connections on a running server.

Opens --count SMTP connections to --target and leaves them idle, then reads
the server's resident set size (VmRSS in /proc/PID/status) and reports
(RSS with the connections - RSS before) / count.

  plain:    connect, read the 220 greeting, EHLO, read the reply, hold.
  starttls: as plain, then STARTTLS, read 220, TLS handshake (certificate not
            verified: the server's default is self-signed), EHLO again, hold.

Before the baseline is read, --warmup connections of the same kind are opened
and closed so that one-time allocations (TLS config, thread pools, ...) are
not charged to the connections. After all connections are up, RSS is sampled
for --settle seconds and the last sample is used. Then everything is closed.
Every step has a timeout and the whole run has a --deadline, so the process
ends by itself. Only loopback targets are accepted.

Output: one JSON object on stdout (or --out FILE).
"""

import argparse
import asyncio
import ipaddress
import json
import resource
import ssl
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("--target", required=True, help="host:port of the SMTP server")
ap.add_argument("--pid", type=int, required=True, help="server process id (for /proc/PID/status)")
ap.add_argument("--count", type=int, default=5000)
ap.add_argument("--mode", choices=["plain", "starttls"], default="plain")
ap.add_argument("--concurrency", type=int, default=100, help="connections being set up at once")
ap.add_argument("--warmup", type=int, default=20)
ap.add_argument("--settle", type=float, default=3.0)
ap.add_argument("--timeout", type=float, default=30.0, help="per-step timeout")
ap.add_argument("--deadline", type=float, default=300.0, help="whole-run time limit")
ap.add_argument("--out", default=None)
args = ap.parse_args()

host, port = args.target.rsplit(":", 1)
host = host.strip("[]")
if not ipaddress.ip_address(host).is_loopback:
    sys.exit(f"idle_conns.py: {host} is not a loopback address")
port = int(port)

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
need = args.count + args.warmup + 200
if soft < need:
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
    except (ValueError, OSError):
        pass

CTX = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
CTX.check_hostname = False
CTX.verify_mode = ssl.CERT_NONE


def status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "Threads", "RssAnon", "RssFile"):
                out[k] = int(v.split()[0]) if k != "Threads" else int(v)
    return out


def fd_count(pid):
    import os

    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


async def read_reply(reader):
    lines = []
    while True:
        line = await asyncio.wait_for(reader.readline(), args.timeout)
        if not line:
            raise ConnectionError("closed by server after: " + " | ".join(lines))
        s = line.decode(errors="replace").rstrip("\r\n")
        lines.append(s)
        if len(s) < 4 or s[3] != "-":
            return s[:3], " | ".join(lines)


async def cmd(reader, writer, line, want):
    if line:
        writer.write(line)
        await writer.drain()
    code, text = await read_reply(reader)
    if not code.startswith(want):
        raise RuntimeError(f"{line.decode().strip() if line else 'greeting'} -> {text}")
    return text


async def open_one(mode):
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), args.timeout)
    try:
        await cmd(reader, writer, None, "2")
        ehlo = await cmd(reader, writer, b"EHLO idle.bench.test\r\n", "2")
        if mode == "starttls":
            if "STARTTLS" not in ehlo.upper():
                raise RuntimeError(f"STARTTLS not offered: {ehlo}")
            await cmd(reader, writer, b"STARTTLS\r\n", "2")
            await asyncio.wait_for(writer.start_tls(CTX, server_hostname="mx.bench.test"), args.timeout)
            await cmd(reader, writer, b"EHLO idle.bench.test\r\n", "2")
        return reader, writer
    except BaseException:
        writer.close()
        raise


async def run():
    t0 = time.monotonic()
    res = {"target": args.target, "mode": args.mode, "count": args.count}
    # Warm-up: same kind of session, then closed.
    warm = []
    for _ in range(args.warmup):
        warm.append(await open_one(args.mode))
    for r, w in warm:
        w.write(b"QUIT\r\n")
        w.close()
    await asyncio.sleep(1.0)
    before = status(args.pid)
    res["rss_before_kb"] = before["VmRSS"]
    res["threads_before"] = before.get("Threads")

    conns = []
    errors = []
    sem = asyncio.Semaphore(args.concurrency)

    async def one():
        async with sem:
            try:
                conns.append(await open_one(args.mode))
            except Exception as e:  # noqa: BLE001 - counted and sampled in the report
                errors.append(f"{type(e).__name__}: {e}")

    tasks = [asyncio.create_task(one()) for _ in range(args.count)]
    left = args.deadline - (time.monotonic() - t0) - args.settle - 10
    done, pending = await asyncio.wait(tasks, timeout=max(1.0, left))
    for t in pending:
        t.cancel()
    res["setup_s"] = round(time.monotonic() - t0, 2)
    res["open"] = len(conns)
    res["errors"] = len(errors) + len(pending)
    res["error_samples"] = sorted(set(errors))[:5]

    samples = []
    end = time.monotonic() + args.settle
    while True:
        samples.append(status(args.pid)["VmRSS"])
        if time.monotonic() >= end:
            break
        await asyncio.sleep(0.5)
    after = status(args.pid)
    res["rss_after_kb"] = samples[-1]
    res["rss_max_sampled_kb"] = max(samples)
    res["threads_after"] = after.get("Threads")
    res["server_fds"] = fd_count(args.pid)

    # Are the connections still up? Check a sample with NOOP.
    alive = 0
    for r, w in conns[:: max(1, len(conns) // 50)]:
        try:
            await cmd(r, w, b"NOOP\r\n", "2")
            alive += 1
        except Exception:  # noqa: BLE001
            pass
    res["noop_checked"] = len(conns[:: max(1, len(conns) // 50)]) if conns else 0
    res["noop_ok"] = alive

    n = len(conns)
    res["kb_per_conn"] = round((res["rss_after_kb"] - res["rss_before_kb"]) / n, 2) if n else None
    for r, w in conns:
        try:
            w.write(b"QUIT\r\n")
        except Exception:  # noqa: BLE001
            pass
        w.close()
    await asyncio.sleep(0.5)
    res["total_s"] = round(time.monotonic() - t0, 2)
    return res


async def main():
    try:
        res = await asyncio.wait_for(run(), args.deadline)
    except asyncio.TimeoutError:
        res = {"target": args.target, "mode": args.mode, "error": f"deadline of {args.deadline}s passed"}
    out = json.dumps(res, indent=1)
    if args.out:
        with open(args.out, "w") as f:
            f.write(out + "\n")
    else:
        print(out)


asyncio.run(main())

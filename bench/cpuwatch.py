#!/usr/bin/env python3
"""How much CPU did processes outside the benchmark use during a run?

The benchmark shares a 2-core machine with whatever else runs there (a
compile, a test suite...). Figures taken while something else burns CPU are
not comparable, so every run records the foreign CPU share, and a run can wait
for the machine to be quiet first.

  cpuwatch.py snap FILE --ours PID        snapshot of every process's CPU time
  cpuwatch.py diff FILE --ours PID        foreign CPU since the snapshot (JSON)
  cpuwatch.py quiet --ours PID [--max-wait S] [--threshold PCT] [--window S]
                                          wait until foreign CPU < PCT over a
                                          window (JSON result, exit 0 either way)

"Ours" = descendants of --ours (bench/run.sh: smtp-source, smtp-sink, probes,
mxgate), the daemons of the benchmark's Postfix instance (which detach from
run.sh; the system instance is stopped by run.sh), and kernel threads (they
work for everyone: I/O, networking). Everything else is foreign. A process's
CPU includes that of its children it has reaped (cutime/cstime), so a
compiler that starts and ends within the run is counted through its parent
(except for init, whose reaped orphans include our own stopped daemons).
Reaped CPU may have been spent before the window, so a share above 100 % is
possible: read it as "something else was busy", not as an exact figure.
"""

import argparse
import json
import os
import sys
import time

POSTFIX_DAEMONS = {
    "master", "smtpd", "cleanup", "qmgr", "smtp", "trivial-rewrite", "postlogd",
    "scache", "anvil", "pickup", "proxymap", "bounce", "tlsmgr", "showq", "flush",
    "error", "discard", "verify", "local", "virtual", "lmtp", "postdrop",
    "postqueue", "postsuper", "postlog", "postfix-script", "postfix",
}
TICK = os.sysconf("SC_CLK_TCK")
PF_KTHREAD = 0x00200000


def read_procs():
    procs = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        comm = s[s.index("(") + 1 : s.rindex(")")]
        rest = s[s.rindex(")") + 2 :].split()
        # rest[0] = state (field 3); field n is rest[n - 3]
        ppid = int(rest[1])
        flags = int(rest[6])
        # utime stime cutime cstime; not the reaped children of init, which
        # adopts orphans (among them the daemons of a Postfix just stopped).
        cpu = sum(int(x) for x in rest[11:15 if d != "1" else 13])
        start = int(rest[19])
        procs[int(d)] = {"comm": comm, "ppid": ppid, "kthread": bool(flags & PF_KTHREAD), "cpu": cpu, "start": start}
    return procs


def ours_set(procs, root):
    children = {}
    for pid, p in procs.items():
        children.setdefault(p["ppid"], []).append(pid)
    mine, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in mine:
            continue
        mine.add(pid)
        todo.extend(children.get(pid, []))
    for pid, p in procs.items():
        if p["kthread"] or p["comm"] in POSTFIX_DAEMONS:
            mine.add(pid)
    return mine


def snapshot(root):
    procs = read_procs()
    mine = ours_set(procs, root)
    return {"t": time.monotonic(), "procs": {str(k): [v["start"], v["cpu"], k in mine] for k, v in procs.items()}}


def diff(snap, root):
    now = time.monotonic()
    procs = read_procs()
    mine = ours_set(procs, root)
    before = snap["procs"]
    foreign = {}
    total = 0
    for pid, p in procs.items():
        old = before.get(str(pid))
        ours = pid in mine or (old is not None and old[0] == p["start"] and old[2])
        base = old[1] if old is not None and old[0] == p["start"] else 0
        d = p["cpu"] - base
        if ours or d <= 0:
            continue
        total += d
        foreign[p["comm"]] = foreign.get(p["comm"], 0) + d
    wall = now - snap["t"]
    ncpu = os.cpu_count() or 1
    secs = total / TICK
    top = sorted(foreign.items(), key=lambda kv: -kv[1])[:5]
    return {
        "wall_s": round(wall, 2),
        "foreign_cpu_s": round(secs, 2),
        "foreign_pct": round(100 * secs / (wall * ncpu), 1) if wall > 0 else 0.0,
        "top": [[c, round(t / TICK, 2)] for c, t in top],
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["snap", "diff", "quiet"])
    ap.add_argument("file", nargs="?")
    ap.add_argument("--ours", type=int, required=True)
    ap.add_argument("--max-wait", type=float, default=120)
    ap.add_argument("--threshold", type=float, default=10.0)
    ap.add_argument("--window", type=float, default=3.0)
    a = ap.parse_args()
    if a.cmd == "snap":
        with open(a.file, "w") as f:
            json.dump(snapshot(a.ours), f)
    elif a.cmd == "diff":
        with open(a.file) as f:
            print(json.dumps(diff(json.load(f), a.ours)))
    else:
        t0 = time.monotonic()
        while True:
            s = snapshot(a.ours)
            time.sleep(a.window)
            r = diff(s, a.ours)
            r["waited_s"] = round(time.monotonic() - t0, 1)
            if r["foreign_pct"] < a.threshold or time.monotonic() - t0 >= a.max_wait:
                r["quiet"] = r["foreign_pct"] < a.threshold
                print(json.dumps(r))
                return


if __name__ == "__main__":
    sys.exit(main())

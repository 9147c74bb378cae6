#!/usr/bin/env python3
"""Summarise bench/run.sh results: a plain table on stdout and a markdown file."""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess

ap = argparse.ArgumentParser()
ap.add_argument("--runs", required=True)
ap.add_argument("--rss-plain")
ap.add_argument("--rss-starttls")
ap.add_argument("--out", required=True)
ap.add_argument("--quick", default="0")
ap.add_argument("--mxgate-rev", default="")
ap.add_argument("--repo", default=".")
ap.add_argument("--idle-conns", default="")
ap.add_argument("--sessions", default="20")
ap.add_argument("--source-opts", default="")
ap.add_argument("--probe-interval", default="")
ap.add_argument("--quiet-pct", default="10")
ap.add_argument("--enforce-targets", default="0", help="1: exit 3 when a target is missed")
args = ap.parse_args()

RSS_TARGET_KB = 20.0
RATIO_TARGET_10K = 2.0


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=20).stdout.strip()
    except Exception:  # noqa: BLE001
        return ""


def load_json(path):
    if not path or not os.path.exists(path):
        return None
    try:
        return json.load(open(path))
    except Exception as e:  # noqa: BLE001
        return {"error": f"unreadable: {e}"}


runs = [json.loads(l) for l in open(args.runs) if l.strip()]
sizes = sorted({r["size"] for r in runs})
systems = []
for r in runs:
    if r["system"] not in systems:
        systems.append(r["system"])


def fmt(v, nd=1):
    if v is None:
        return "-"
    return f"{v:.{nd}f}"


def label(size):
    return f"{size // 1024}KB" if size % 1024 == 0 else f"{size}B"


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


summary = {}  # (size, system) -> dict
for size in sizes:
    for sysname in systems:
        rs = [r for r in runs if r["size"] == size and r["system"] == sysname]
        if not rs:
            continue
        done = [r for r in rs if r.get("complete")]
        # Runs disturbed by other processes' CPU use count only if no clean run exists.
        clean = [r for r in done if not r.get("disturbed")]
        ok = clean or done
        s = {
            "used": len(ok),
            "disturbed": sum(1 for r in rs if r.get("disturbed")),
            "only_disturbed": bool(done) and not clean,
            "foreign": [(r.get("foreign_cpu") or {}).get("foreign_pct") for r in rs],
            "runs": len(rs),
            "complete": len(ok),
            "n": rs[0]["n"],
            "rates": [r.get("msgs_per_s") for r in rs],
            "msgs_per_s": med([r["msgs_per_s"] for r in ok]),
            "e2e_s": med([r["e2e_s"] for r in ok]),
            "ingress_per_s": med([r["n"] / r["ingress_s"] for r in ok if r.get("ingress_s") and r.get("source_rc") == 0]),
            "p50": med([r.get("probe", {}).get("e2e_p50_ms") for r in ok]),
            "p99": med([r.get("probe", {}).get("e2e_p99_ms") for r in ok]),
            "probes_sent": sum(r.get("probe", {}).get("sent", 0) or 0 for r in rs),
            "probes_arrived": sum(r.get("probe", {}).get("arrived", 0) or 0 for r in rs),
            "probe_errors": sum(r.get("probe", {}).get("errors", 0) or 0 for r in rs),
            "failures": [
                r.get("failed")
                or f"rep {r['rep']}: sink got {r.get('sink_got')}/{r['n']}, smtp-source rc {r.get('source_rc')}"
                for r in rs
                if not r.get("complete")
            ],
        }
        summary[(size, sysname)] = s

ratios = {}
for size in sizes:
    p, m = summary.get((size, "postfix")), summary.get((size, "mxgate"))
    if p and m and p["msgs_per_s"] and m["msgs_per_s"]:
        ratios[size] = m["msgs_per_s"] / p["msgs_per_s"]

ceiling = {}  # size -> {system: share of the direct smtp-source -> smtp-sink rate}
for size in sizes:
    d = summary.get((size, "direct"))
    if d and d["msgs_per_s"]:
        ceiling[size] = {
            sysname: summary[(size, sysname)]["msgs_per_s"] / d["msgs_per_s"]
            for sysname in ("postfix", "mxgate")
            if (size, sysname) in summary and summary[(size, sysname)]["msgs_per_s"]
        }

rss = {"plain": load_json(args.rss_plain), "starttls": load_json(args.rss_starttls)}

# ----------------------------------------------------------------- console
hdr = f"{'size':<6} {'system':<8} {'msgs':>6} {'secs':>7} {'msg/s':>8} {'in_msg/s':>9} {'p50_ms':>8} {'p99_ms':>8} {'probes':>11} runs"
lines = [hdr]
for (size, sysname), s in summary.items():
    lines.append(
        f"{label(size):<6} {sysname:<8} {s['n']:>6} {fmt(s['e2e_s'], 2):>7} {fmt(s['msgs_per_s']):>8} "
        f"{fmt(s['ingress_per_s']):>9} {fmt(s['p50']):>8} {fmt(s['p99']):>8} "
        f"{s['probes_arrived']:>5}/{s['probes_sent']:<5} {s['complete']}/{s['runs']}"
    )
for size in sizes:
    if size in ratios:
        tgt = f" (target >= {RATIO_TARGET_10K})" if size == 10240 else ""
        lines.append(f"ratio mxgate/postfix @{label(size)}: {ratios[size]:.2f}{tgt}")
    elif (size, "postfix") in summary and (size, "mxgate") in summary:
        lines.append(f"ratio mxgate/postfix @{label(size)}: n/a (a system has no complete run)")
for size, shares in ceiling.items():
    if shares:
        lines.append(
            f"share of the direct source->sink rate @{label(size)}: "
            + ", ".join(f"{k} {v * 100:.0f}%" for k, v in shares.items())
        )


def rss_str(r):
    if not r:
        return "not run"
    if r.get("error") or r.get("kb_per_conn") is None:
        return f"FAILED ({r.get('error') or r.get('error_samples')})"
    extra = f", {r['errors']} failed" if r.get("errors") else ""
    return f"{r['kb_per_conn']:.1f} KB ({r['open']} open{extra})"


if rss["plain"] or rss["starttls"]:
    lines.append(
        f"idle RSS per connection (mxgate, {args.idle_conns} conns): plain {rss_str(rss['plain'])}, "
        f"STARTTLS {rss_str(rss['starttls'])} (target < {RSS_TARGET_KB:.0f} KB)"
    )
for (size, sysname), s in summary.items():
    for f in s["failures"]:
        lines.append(f"FAILED {label(size)} {sysname}: {f}")
    if s["probe_errors"]:
        lines.append(f"note {label(size)} {sysname}: {s['probe_errors']} probe sessions failed")
    if s["disturbed"]:
        lines.append(
            f"WARNING {label(size)} {sysname}: {s['disturbed']}/{s['runs']} runs disturbed by other processes "
            f"(foreign CPU % per run: {s['foreign']})"
            + ("; ONLY disturbed runs: figures unreliable" if s["only_disturbed"] else "; median of the clean runs")
        )
print("\n".join(lines))

# ---------------------------------------------------------------- markdown
commit = args.mxgate_rev or "?"
dirty = ""
pf_ver = sh("postconf -d -h mail_version 2>/dev/null") or "?"
cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
mem = sh("awk '/MemTotal/ {printf \"%.0f GiB\", $2/1048576}' /proc/meminfo")
md = []
md.append("# mxgate relay benchmark: latest results\n")
md.append(
    f"Generated by `bench/run.sh` on {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}"
    f"{' in QUICK mode (small counts: not for quoting)' if args.quick == '1' else ''}.\n"
)
md.append(
    f"Machine: {os.cpu_count()} CPUs ({cpu or platform.machine()}), {mem}, kernel {platform.release()}. "
    f"Postfix {pf_ver}. mxgate {commit}{dirty}.\n"
)
md.append(
    f"Load: `smtp-source -s {args.sessions} -l SIZE -m N {args.source_opts}`, one message per "
    f"{'session' if '-d' not in args.source_opts.split() else 'message, sessions kept open (-d)'}; "
    f"latency probe every {args.probe_interval} s. Figures are the median of the complete runs "
    f"not disturbed by other processes (foreign CPU < {args.quiet_pct}% of the machine).\n"
)
md.append("| size | system | msgs | secs | msg/s | ingress msg/s | p50 ms | p99 ms | probes arrived/sent | complete runs | msg/s per run |")
md.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
for (size, sysname), s in summary.items():
    per = ", ".join(
        fmt(v) + ("*" if f is not None and f >= float(args.quiet_pct) else "") for v, f in zip(s["rates"], s["foreign"])
    )
    md.append(
        f"| {label(size)} | {sysname} | {s['n']} | {fmt(s['e2e_s'], 2)} | {fmt(s['msgs_per_s'])} | "
        f"{fmt(s['ingress_per_s'])} | {fmt(s['p50'])} | {fmt(s['p99'])} | "
        f"{s['probes_arrived']}/{s['probes_sent']} | {s['complete']}/{s['runs']} | {per} |"
    )
md.append("")
for size in sizes:
    if size in ratios:
        tgt = ""
        if size == 10240:
            tgt = f" — target ≥ {RATIO_TARGET_10K}: {'met' if ratios[size] >= RATIO_TARGET_10K else 'NOT met'}"
        md.append(f"- Throughput ratio mxgate/Postfix at {label(size)}: **{ratios[size]:.2f}**{tgt}")
for size, shares in ceiling.items():
    if shares:
        md.append(
            f"- Share of the harness ceiling (smtp-source straight to smtp-sink, row `direct`) at {label(size)}: "
            + ", ".join(f"{k} {v * 100:.0f}%" for k, v in shares.items())
        )
for mode in ("plain", "starttls"):
    r = rss[mode]
    if r is None:
        continue
    name = "plain" if mode == "plain" else "after STARTTLS"
    if r.get("kb_per_conn") is not None:
        ok = "met" if r["kb_per_conn"] < RSS_TARGET_KB else "NOT met"
        md.append(
            f"- Idle RSS per connection ({name}): **{r['kb_per_conn']:.1f} KB** "
            f"({r['open']} connections, {r.get('errors', 0)} failed; mxgate VmRSS {r['rss_before_kb']} → "
            f"{r['rss_after_kb']} KB) — target < {RSS_TARGET_KB:.0f} KB: {ok}"
        )
    else:
        md.append(f"- Idle RSS per connection ({name}): FAILED — {r.get('error') or r.get('error_samples')}")
for (size, sysname), s in summary.items():
    for f in s["failures"]:
        md.append(f"- FAILED {label(size)} {sysname}: {f}")
    if s["probe_errors"]:
        md.append(f"- {label(size)} {sysname}: {s['probe_errors']} probe sessions failed")
    if s["disturbed"]:
        md.append(
            f"- {label(size)} {sysname}: {s['disturbed']}/{s['runs']} runs disturbed by other processes' CPU use "
            + ("(ONLY disturbed runs: figures unreliable)" if s["only_disturbed"] else "(marked *, left out of the median)")
        )
md.append("")
md.append("Columns: see bench/README.md. secs = from the start of smtp-source until smtp-sink has counted all N "
          "messages; msg/s = N / secs; ingress msg/s = N / time smtp-source took (acceptance rate); "
          "p50/p99 = end-to-end latency of the probe messages sent during the load.")
with open(args.out, "w") as f:
    f.write("\n".join(md) + "\n")
print(f"(written to {args.out})")

# Exit status: 2 when a run failed, 3 when a target was missed (if enforced).
failed = any(s["failures"] for s in summary.values()) or any(
    r is not None and r.get("kb_per_conn") is None for r in rss.values()
)
missed = (10240 in ratios and ratios[10240] < RATIO_TARGET_10K) or any(
    r is not None and r.get("kb_per_conn") is not None and r["kb_per_conn"] >= RSS_TARGET_KB for r in rss.values()
)
if failed:
    raise SystemExit(2)
if missed and args.enforce_targets == "1":
    print("a target was missed")
    raise SystemExit(3)

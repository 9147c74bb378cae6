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
RATIO_TARGET_MIX = 1.0
MIX = 0  # the "size" of the mixed-corpus runs
# Per workload: (baseline system, mxgate system, harness ceiling system).
PAIRS = {MIX: ("postfix-mix", "mxgate-scan", "direct-mix")}
PLAIN_PAIR = ("postfix", "mxgate", "direct")


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
sizes = sorted({r["size"] for r in runs}, key=lambda s: (s == MIX, s))
systems = []
for r in runs:
    if r["system"] not in systems:
        systems.append(r["system"])


def fmt(v, nd=1):
    if v is None:
        return "-"
    return f"{v:.{nd}f}"


def label(size):
    if size == MIX:
        return "mix"
    return f"{size // 1024}KB" if size % 1024 == 0 else f"{size}B"


def pair(size):
    return PAIRS.get(size, PLAIN_PAIR)


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
            "ok_runs": ok,
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
    base, ours, _ = pair(size)
    p, m = summary.get((size, base)), summary.get((size, ours))
    if p and m and p["msgs_per_s"] and m["msgs_per_s"]:
        ratios[size] = m["msgs_per_s"] / p["msgs_per_s"]

ceiling = {}  # size -> {system: share of the direct generator -> smtp-sink rate}
for size in sizes:
    base, ours, direct = pair(size)
    d = summary.get((size, direct))
    if d and d["msgs_per_s"]:
        ceiling[size] = {
            sysname: summary[(size, sysname)]["msgs_per_s"] / d["msgs_per_s"]
            for sysname in (base, ours)
            if (size, sysname) in summary and summary[(size, sysname)]["msgs_per_s"]
        }


def ratio_line(size):
    base, ours, _ = pair(size)
    name = f"{ours}/{base}" if size == MIX else "mxgate/postfix"
    tgt = {10240: RATIO_TARGET_10K, MIX: RATIO_TARGET_MIX}.get(size)
    return name, tgt


def stage_costs(runs_ok):
    """Per stage, pooled over the runs: mean microseconds per message on an
    idle gateway (the check messages, sent one at a time) and under the load
    (the difference of the totals before and after it)."""
    idle, load = {}, {}
    for r in runs_ok:
        before = {x["stage"]: x for x in (r.get("stages_idle") or []) if isinstance(x, dict)}
        after = r.get("stages_load") or []
        for x in after if isinstance(after, list) else []:
            b = before.get(x["stage"], {"runs": 0, "total_ns": 0})
            i = idle.setdefault(x["stage"], [0, 0])
            i[0] += b["runs"]
            i[1] += b["total_ns"]
            l = load.setdefault(x["stage"], [0, 0])
            l[0] += x["runs"] - b["runs"]
            l[1] += x["total_ns"] - b["total_ns"]
    out = []
    for name in load:
        ir, ins = idle.get(name, [0, 0])
        lr, lns = load[name]
        out.append({
            "stage": name,
            "idle_runs": ir,
            "idle_us": ins / ir / 1000 if ir else None,
            "load_runs": lr,
            "load_us": lns / lr / 1000 if lr else None,
        })
    return out


mix_scan = summary.get((MIX, "mxgate-scan"))
stages = stage_costs(mix_scan["ok_runs"]) if mix_scan else []
mix_check = None  # the first complete mxgate-scan run's check
for r in (mix_scan or {}).get("ok_runs", []):
    if (r.get("check") or {}).get("kinds"):
        mix_check = r["check"]
        break
mix_load = None
for sysname in ("mxgate-scan", "postfix-mix", "direct-mix"):
    for r in (summary.get((MIX, sysname)) or {}).get("ok_runs", []):
        if (r.get("load") or {}).get("sent") and mix_load is None:
            mix_load = r["load"]

rss = {"plain": load_json(args.rss_plain), "starttls": load_json(args.rss_starttls)}

# ----------------------------------------------------------------- console
hdr = f"{'size':<6} {'system':<11} {'msgs':>6} {'secs':>7} {'msg/s':>8} {'in_msg/s':>9} {'p50_ms':>8} {'p99_ms':>8} {'probes':>11} runs"
lines = [hdr]
for (size, sysname), s in summary.items():
    lines.append(
        f"{label(size):<6} {sysname:<11} {s['n']:>6} {fmt(s['e2e_s'], 2):>7} {fmt(s['msgs_per_s']):>8} "
        f"{fmt(s['ingress_per_s']):>9} {fmt(s['p50']):>8} {fmt(s['p99']):>8} "
        f"{s['probes_arrived']:>5}/{s['probes_sent']:<5} {s['complete']}/{s['runs']}"
    )
for size in sizes:
    name, tgt = ratio_line(size)
    tgt_s = f" (target >= {tgt})" if tgt else ""
    if size in ratios:
        lines.append(f"ratio {name} @{label(size)}: {ratios[size]:.2f}{tgt_s}")
    elif (size, pair(size)[0]) in summary and (size, pair(size)[1]) in summary:
        lines.append(f"ratio {name} @{label(size)}: n/a (a system has no complete run)")
for size, shares in ceiling.items():
    if shares:
        lines.append(
            f"share of the direct generator->sink rate @{label(size)}: "
            + ", ".join(f"{k} {v * 100:.0f}%" for k, v in shares.items())
        )
if stages:
    lines.append("mxgate-scan per-stage time, mean us/message (idle: check messages one at a time; load: during the run):")
    for st in stages:
        lines.append(
            f"  {st['stage']:<11} idle {fmt(st['idle_us'])} us ({st['idle_runs']} msgs)   "
            f"load {fmt(st['load_us'])} us ({st['load_runs']} msgs)"
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
    f"size `mix`: `bench_load send` with the mixed corpus (bench/README.md), `mxgate-scan` running every "
    f"built-in scanning stage with DNS from a local stub, `postfix-mix` a plain relay; "
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
        name, tgt = ratio_line(size)
        tgt_s = f" — target ≥ {tgt}: {'met' if ratios[size] >= tgt else 'NOT met'}" if tgt else ""
        what = "mxgate with every scanning stage / Postfix plain relay, mixed corpus" if size == MIX else "mxgate/Postfix"
        md.append(f"- Throughput ratio {what} at {label(size)}: **{ratios[size]:.2f}**{tgt_s}")
for size, shares in ceiling.items():
    if shares:
        md.append(
            f"- Share of the harness ceiling (load generator straight to smtp-sink, row `{pair(size)[2]}`) at "
            f"{label(size)}: " + ", ".join(f"{k} {v * 100:.0f}%" for k, v in shares.items())
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
if mix_load:
    kinds = ", ".join(f"{k} {v}" for k, v in mix_load.get("kinds", {}).items())
    md.append(
        f"- Mixed corpus (`bench_load send`, {mix_load.get('sessions')} sessions, one message per session): "
        f"{kinds}; mean {mix_load['bytes'] / max(mix_load['sent'], 1) / 1024:.1f} KB per message on the wire."
    )
if stages:
    md.append("")
    md.append("mxgate-scan, time per stage (mean µs per message; stages run concurrently, so the times overlap "
              "and include waiting for DNS and for the CPU; `auth` is SPF, DKIM, DMARC and ARC together):\n")
    md.append("| stage | idle µs/msg | msgs | under load µs/msg | msgs |")
    md.append("|---|---:|---:|---:|---:|")
    for st in stages:
        md.append(f"| {st['stage']} | {fmt(st['idle_us'])} | {st['idle_runs']} | {fmt(st['load_us'])} | {st['load_runs']} |")
    md.append("\nidle = the check messages sent one at a time before the run (cold DNS cache included); "
              "under load = during the timed run (load and probe messages).")
if mix_check:
    md.append("")
    md.append(f"mxgate-scan check ({mix_check.get('count')} messages one at a time through mxgate to a recording "
              "sink; all must arrive with a delivering verdict, SPF pass, and DKIM and DMARC pass when signed):\n")
    md.append("| kind | arrived/sent | verdicts | auth results | symbols | mean ms connect→arrival |")
    md.append("|---|---:|---|---|---|---:|")
    for kind, k in mix_check["kinds"].items():
        def d(x):
            return ", ".join(f"{a} {b}" for a, b in sorted((k.get(x) or {}).items(), key=lambda kv: -kv[1])) or "-"
        md.append(f"| {kind} | {k.get('arrived')}/{k.get('sent')} | {d('verdicts')} | {d('auth')} | {d('symbols')} | "
                  f"{fmt(k.get('mean_ms'))} |")
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
missed = (10240 in ratios and ratios[10240] < RATIO_TARGET_10K) or (MIX in ratios and ratios[MIX] < RATIO_TARGET_MIX) or any(
    r is not None and r.get("kb_per_conn") is not None and r["kb_per_conn"] >= RSS_TARGET_KB for r in rss.values()
)
if failed:
    raise SystemExit(2)
if missed and args.enforce_targets == "1":
    print("a target was missed")
    raise SystemExit(3)

#!/usr/bin/env python3
"""The summary (markdown) of bench/workers.sh from its scratch directory.

  workers_report.py DIR N CHECK_N LAT_N SESSIONS

DIR/tp.txt holds one line per throughput run ("mode rep e2e_s ingress_s got
source_rc others%"); DIR/tp-MODE-REP/ the stage times (stages-check.json
after the check, stages-before/-after.json around the timed run), the check
(check.json) and the gateway's view of its workers (workers.json);
DIR/lat-NAME/ each scanner's latency series (lat.json), stage times around
it, the clean message's check and the caught message's quarantine record.
"""

import json
import os
import statistics
import sys

MESSAGE = (
    "The message (bench/workers.py; only its Date changes from run to run): 10,240 octets in the file, 10,327 on the wire, "
    "multipart/mixed: a multipart/alternative with a text part (19 product lines with links) and an HTML part "
    "(table layout, 19 product blocks with an image, a product link and a click-tracking link: 40 links), and "
    "documents.zip (base64, 2 deflated members: notes.txt and invoice.csv). From news@shop.test, envelope "
    "bench@sender.test to user@example.test (the checks: check@check.test)."
)
DISTURBED = 10  # % of a CPU used by other processes that marks a run


def load(*parts):
    try:
        return json.load(open(os.path.join(*parts)))
    except Exception:
        return None


def totals(times):
    """{stage: (runs, total_ns)} from a stage-times answer."""
    return {t["stage"]: (t["runs"], t["total_ns"]) for t in (times or [])}


def delta(after, before, stage):
    (r1, n1), (r0, n0) = totals(after).get(stage, (0, 0)), totals(before).get(stage, (0, 0))
    return r1 - r0, n1 - n0


def pct(xs, p):
    """Nearest-rank percentile of sorted xs."""
    return xs[max(0, -(-len(xs) * p // 100) - 1)]


def us(runs, ns):
    return f"{ns / runs / 1000:.1f}" if runs else "-"


def throughput(d, n, check_n, sessions, out):
    runs = {}
    for line in open(os.path.join(d, "tp.txt")):
        mode, rep, e2e, ingress, got, src, cpu = line.split()
        runs.setdefault(mode, []).append(
            {"rep": rep, "rate": n / float(e2e), "ingress": n / float(ingress), "busy": int(cpu) >= DISTURBED}
        )
    if not {"local", "remote"} <= set(runs):
        return
    # As in bench/run.sh: a disturbed run is left out of its mode's median
    # when the mode has a clean one.
    kept = {m: [r for r in rs if not r["busy"]] or rs for m, rs in runs.items()}
    med = {m: statistics.median(r["rate"] for r in kept[m]) for m in kept}
    ing = {m: statistics.median(r["ingress"] for r in kept[m]) for m in kept}
    ratio = med["remote"] / med["local"]
    out.append("### Remote stages: attachment + phishing in-process vs on 2 workers")
    out.append("")
    of = "/".join(str(len(kept[m])) for m in ("local", "remote"))
    out.append(f"| 10 KB message, {n} messages, {sessions} sessions, median of {of} runs "
               f"| local | remote | ratio remote/local |")
    out.append("|---|---:|---:|---:|")
    verdict = "met" if ratio >= 0.70 else "MISSED"
    out.append(f"| relay msg/s, end to end | {med['local']:.1f} | {med['remote']:.1f} | "
               f"**{ratio:.2f}** (target >= 0.70: {verdict}) |")
    out.append(f"| ingress msg/s (250s) | {ing['local']:.1f} | {ing['remote']:.1f} | "
               f"{ing['remote'] / ing['local']:.2f} |")
    out.append("")
    for m in ("local", "remote"):
        out.append(f"{m} runs, msg/s: " + ", ".join(f"{r['rate']:.1f}" + "*" * r["busy"] for r in runs[m]))
    pairs = [(r["rate"] / l["rate"], l["busy"] or r["busy"]) for l, r in zip(runs["local"], runs["remote"])]
    out.append("remote/local per pair of runs: " + ", ".join(f"{p:.2f}" + "*" * b for p, b in pairs)
               + f" (* = others, steal included, used >= {DISTURBED} % of a CPU: left out of the median"
               " when the mode has an undisturbed run)")
    out.append("")
    stage_table(d, runs, kept, check_n, out)


def stage_table(d, runs, kept, check_n, out):
    """Per stage and mode: idle (the check, one message at a time) and under
    load (the timed run), pooled over the runs the medians use."""
    acc = {}
    for mode, rs in kept.items():
        for r in rs:
            rd = os.path.join(d, f"tp-{mode}-{r['rep']}")
            for stage in ("attachment", "phishing"):
                a = acc.setdefault((mode, stage), [0, 0, 0, 0])
                ri, ni = delta(load(rd, "stages-check.json"), None, stage)
                rl, nl = delta(load(rd, "stages-after.json"), load(rd, "stages-before.json"), stage)
                a[0] += ri; a[1] += ni; a[2] += rl; a[3] += nl
    out.append("Stage time per message, µs, from GET /api/v1/pipeline/stages (total_ns / runs; idle = the "
               f"{check_n} check messages sent one at a time before each run; under load = the timed run; "
               "pooled over the runs of the medians):")
    out.append("")
    out.append("| stage | local idle | remote idle | local under load | remote under load |")
    out.append("|---|---:|---:|---:|---:|")
    for stage in ("attachment", "phishing"):
        l, r = acc.get(("local", stage), [0] * 4), acc.get(("remote", stage), [0] * 4)
        out.append(f"| {stage} | {us(l[0], l[1])} | {us(r[0], r[1])} | {us(l[2], l[3])} | {us(r[2], r[3])} |")
    out.append("")
    idle = {m: sorted(x for r in kept[m] for x in (load(d, f"tp-{m}-{r['rep']}", "check-lat.json") or {}).get(
        "samples_ms", [])) for m in ("local", "remote")}
    if idle["local"] and idle["remote"]:
        out.append("The check messages as their client saw them (connect to the 250 after the data, one at a time; "
                   f"{len(idle['local'])} per mode): local p50 {pct(idle['local'], 50):.2f} ms, p95 "
                   f"{pct(idle['local'], 95):.2f} ms; remote p50 {pct(idle['remote'], 50):.2f} ms, p95 "
                   f"{pct(idle['remote'], 95):.2f} ms.")
    served = {}
    for r in runs["remote"]:
        for w in load(d, f"tp-remote-{r['rep']}", "workers.json") or []:
            s = served.setdefault(w["addr"], [0, 0])
            s[0] += w["served"]; s[1] += w["failed"]
    if served:
        out.append("Requests per worker over the remote runs (both stages; served/failed): "
                   + ", ".join(f"{a} {s[0]}/{s[1]}" for a, s in sorted(served.items())))
    checks = [load(d, f"tp-{m}-{r['rep']}", "check.json") or {} for m in runs for r in runs[m]]
    syms = sorted({s for c in checks for s in (c.get("symbols") or {})})
    verdicts = sorted({v for c in checks for v in (c.get("verdicts") or {})})
    out.append(f"Checks: {sum(c.get('arrived', 0) for c in checks)} messages arrived at the check sink with "
               f"X-Mxgate-Verdict {', '.join(verdicts) or '?'}; symbols: {', '.join(syms) or 'none'}.")
    out.append("")


def scanners(d, lat_n, out):
    names = [n for n in ("none", "clamav", "rspamd", "spamassassin") if load(d, f"lat-{n}", "lat.json")]
    if not names:
        return
    base = load(d, "lat-none", "lat.json") or {}
    out.append("### Outside scanners: per-message latency through mxgate")
    out.append("")
    out.append(f"{lat_n} messages (the same 10 KB message) sent one at a time per gateway; client = connect to the "
               "250 after the data, as timed by the client; stage = the stage's total_ns / runs.")
    out.append("")
    out.append("| gateway stage | client mean ms | p50 | p95 | p99 | + p50 vs none | stage mean ms | "
               "what the stage said about the message |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---|")
    for name in names:
        r = load(d, f"lat-{name}", "lat.json")
        runs, ns = delta(load(d, f"lat-{name}", "stages-after.json"), load(d, f"lat-{name}", "stages-before.json"),
                         name)
        stage = f"{ns / runs / 1e6:.2f} ({runs} runs)" if runs else "-"
        plus = f"{r['p50_ms'] - base['p50_ms']:+.2f}" if name != "none" and base.get("p50_ms") else "-"
        chk = load(d, f"lat-{name}", "check.json") or {}
        said = ", ".join(sorted(chk.get("symbols") or {})) or "no symbol"
        said = f"{'/'.join(chk.get('verdicts') or {}) or '?'}; {said}"
        out.append(f"| {name} | {r['mean_ms']:.2f} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {r['p99_ms']:.2f} | "
                   f"{plus} | {stage} | {said} |")
    out.append("")
    for name in names[1:]:
        q = load(d, f"lat-{name}", "quarantine.json") or []
        ours = ("CLAMAV", "RSPAMD", "SA_")
        why = [x for rec in q for x in rec.get("reasons", []) if x.split(":")[0].startswith(ours)]
        out.append(f"- {name}: {'EICAR' if name == 'clamav' else 'GTUBE'} message quarantined: "
                   + ("; ".join(why[:3]) or "NOT FOUND"))
    errs = {n: (load(d, f"lat-{n}", "lat.json") or {}).get("codes") for n in names}
    out.append(f"- SMTP replies to the timed messages: " + "; ".join(f"{n} {c}" for n, c in errs.items()))
    v = os.path.join(d, "versions.txt")
    if os.path.exists(v):
        out.append("- versions: " + "; ".join(l.strip() for l in open(v) if l.strip()))
    out.append("")


def main():
    d, n, check_n, lat_n, sessions = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    out = [MESSAGE, ""]
    if os.path.exists(os.path.join(d, "tp.txt")):
        throughput(d, n, check_n, sessions, out)
    scanners(d, lat_n, out)
    print("\n".join(out).rstrip())


if __name__ == "__main__":
    main()

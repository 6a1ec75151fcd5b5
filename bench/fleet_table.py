#!/usr/bin/env python3
"""Markdown tables from a `calm bench suite` result, for README.md and bench/RESULTS.md.

    python3 bench/fleet_table.py build/fleet-bench/report/suite.json

Prints the headline (the full system against the generalist, with the
targets), the ablations (each against the full system) and every system.
Standard library only.
"""

import json
import math
import sys

DOMAINS = ["maths", "code", "medical", "legal", "finance"]


def fmt(v, digits=1):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return "%.*f" % (digits, v)


def pct(v):
    return "-" if v is None else "%.1f%%" % (100 * v)


def change(new, old):
    if new is None or old in (None, 0):
        return "-"
    return "%+.1f%%" % (100 * (new - old) / old)


def ppl(s, d):
    q = s["summary"].get("quality", {}).get(d)
    return q["perplexity"] if q else None


def main():
    suite = json.load(open(sys.argv[1]))
    systems = {s["name"]: s for s in suite["systems"] if "summary" in s}
    base, full = systems["generalist"], systems["full"]
    b, f = base["summary"], full["summary"]

    print("Headline: the full system against the generalist (same workload, same run)\n")
    print("| metric | generalist | full system | change | target |")
    print("|---|---|---|---|---|")
    print("| mean latency | %s ms | %s ms | %s | at least 40%% lower |" % (
        fmt(b["latency_mean_ms"], 0), fmt(f["latency_mean_ms"], 0),
        change(f["latency_mean_ms"], b["latency_mean_ms"])))
    print("| p95 latency | %s ms | %s ms | %s | |" % (
        fmt(b["latency_p95_ms"], 0), fmt(f["latency_p95_ms"], 0),
        change(f["latency_p95_ms"], b["latency_p95_ms"])))
    print("| time to first token, mean | %s ms | %s ms | %s | |" % (
        fmt(b["ttft_mean_ms"], 0), fmt(f["ttft_mean_ms"], 0),
        change(f["ttft_mean_ms"], b["ttft_mean_ms"])))
    print("| energy per request (%s) | %s J | %s J | %s | at least 50%% lower |" % (
        f["energy_source"], fmt(b["energy_per_request_j"], 2), fmt(f["energy_per_request_j"], 2),
        change(f["energy_per_request_j"], b["energy_per_request_j"])))
    for d in DOMAINS:
        print("| perplexity, %s (lower is better) | %s | %s | %s | at most 2%% worse |" % (
            d, fmt(ppl(base, d), 2), fmt(ppl(full, d), 2), change(ppl(full, d), ppl(base, d))))
    print("| peak model memory | %s MiB | %s MiB | %s | |" % (
        fmt(b["peak_model_bytes"] / 2**20), fmt(f["peak_model_bytes"] / 2**20),
        change(f["peak_model_bytes"], b["peak_model_bytes"])))
    print("| decision accuracy | - | %s | | |" % pct(f["decision_accuracy"]))

    print("\nAblations: the full system without one addition each (change against the full system)\n")
    print("| system | mean latency | p95 latency | energy/request | perplexity (all) | decision accuracy | hit rate | loads |")
    print("|---|---|---|---|---|---|---|---|")
    for name, s in systems.items():
        if s.get("group") not in ("headline", "ablation"):
            continue
        m = s["summary"]
        rel = "" if name == "full" else " (%s)"
        print("| %s | %s ms%s | %s ms%s | %s J%s | %s%s | %s | %s | %s |" % (
            name,
            fmt(m["latency_mean_ms"], 0), rel % change(m["latency_mean_ms"], f["latency_mean_ms"]) if rel else "",
            fmt(m["latency_p95_ms"], 0), rel % change(m["latency_p95_ms"], f["latency_p95_ms"]) if rel else "",
            fmt(m["energy_per_request_j"], 2),
            rel % change(m["energy_per_request_j"], f["energy_per_request_j"]) if rel else "",
            fmt(ppl(s, "all"), 2), rel % change(ppl(s, "all"), ppl(full, "all")) if rel else "",
            pct(m["decision_accuracy"]), pct(m["cache_hit_rate"]), m["loads"]))

    print("\nEvery system\n")
    print("| system | group | done | mean | p50 | p95 | p99 | TTFT mean | J/request | accuracy | hit rate | loads | peak model MiB | peak RSS MiB | " +
          " | ".join("ppl %s" % d for d in DOMAINS) + " |")
    print("|" + "---|" * (14 + len(DOMAINS)))
    for s in suite["systems"]:
        if "summary" not in s:
            print("| %s | %s | failed: %s |" % (s["name"], s.get("group", ""), s.get("error", "")))
            continue
        m = s["summary"]
        print("| %s | %s | %d/%d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            s["name"], s.get("group", ""), m["completed"], m["requests"],
            fmt(m["latency_mean_ms"], 0), fmt(m["latency_p50_ms"], 0), fmt(m["latency_p95_ms"], 0),
            fmt(m["latency_p99_ms"], 0), fmt(m["ttft_mean_ms"], 0), fmt(m["energy_per_request_j"], 2),
            pct(m["decision_accuracy"]), pct(m["cache_hit_rate"]), m["loads"],
            fmt(m["peak_model_bytes"] / 2**20), fmt(m["peak_rss_bytes"] / 2**20),
            " | ".join(fmt(ppl(s, d), 2) for d in DOMAINS)))


if __name__ == "__main__":
    main()

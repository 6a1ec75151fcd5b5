#!/usr/bin/env python3
"""Floods one calm endpoint with concurrent chat clients and watches it.

While `--clients` threads send chat requests back to back for `--duration`
seconds, a prober GETs /health and /metrics every `--probe-ms` and times
them. Every request ends as one of: completed (200), refused with 503 and
Retry-After, refused otherwise, or hung (no answer within --timeout). With
--rss-pid it samples that process's RSS every 5 s and reports the growth
after the warm-up. Prints a table; exits 1 if any request hung or was lost.

Only talks to the URL it is given (loopback in bench/flood_bench.sh).
"""
import argparse
import http.client
import json
import threading
import time
import urllib.parse


def percentile(values, p):
    # Nearest rank, as calm's own (src/util/percentile.h).
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--clients", type=int, default=128)
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--timeout", type=float, default=300, help="a request with no answer by then hung")
    ap.add_argument("--probe-ms", type=float, default=50)
    ap.add_argument("--rss-pid", type=int, default=0)
    ap.add_argument("--warmup", type=float, default=60, help="seconds before the RSS baseline")
    ap.add_argument("--title", default="flood")
    args = ap.parse_args()

    url = urllib.parse.urlparse(args.url)
    host, port = url.hostname, url.port
    body = json.dumps({"model": args.model, "max_tokens": args.max_tokens, "ignore_eos": True,
                       "messages": [{"role": "user", "content": "What is 12 times 7?"}]})
    lock = threading.Lock()
    counts = {"sent": 0, "completed": 0, "refused_503_retry_after": 0, "refused_other": 0,
              "hung": 0, "errors": 0}
    latencies = []
    stop_at = time.monotonic() + args.duration

    def client():
        conn = None
        while time.monotonic() < stop_at:
            if conn is None:
                conn = http.client.HTTPConnection(host, port, timeout=args.timeout)
            start = time.monotonic()
            with lock:
                counts["sent"] += 1
            try:
                conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
                res = conn.getresponse()
                res.read()
                outcome = "refused_other"
                if res.status == 200:
                    outcome = "completed"
                elif res.status == 503 and res.getheader("Retry-After"):
                    outcome = "refused_503_retry_after"
                with lock:
                    counts[outcome] += 1
                    if outcome == "completed":
                        latencies.append(time.monotonic() - start)
                if res.status != 200:
                    time.sleep(0.05)  # keep the pressure, not a busy loop
            except TimeoutError:
                with lock:
                    counts["hung"] += 1
                conn.close()
                conn = None
            except (OSError, http.client.HTTPException):
                with lock:
                    counts["errors"] += 1
                conn.close()
                conn = None

    probes = {"/health": [], "/metrics": []}
    probe_failures = {"/health": 0, "/metrics": 0}

    def prober():
        conn = http.client.HTTPConnection(host, port, timeout=30)
        while time.monotonic() < stop_at:
            for path in probes:
                start = time.monotonic()
                try:
                    conn.request("GET", path)
                    res = conn.getresponse()
                    res.read()
                    probes[path].append((time.monotonic() - start) * 1000)
                    if res.status != 200:
                        probe_failures[path] += 1
                except (OSError, http.client.HTTPException):
                    probe_failures[path] += 1
                    conn.close()
                    conn = http.client.HTTPConnection(host, port, timeout=30)
            time.sleep(args.probe_ms / 1000)

    rss = []

    def sampler():
        start = time.monotonic()
        while time.monotonic() < stop_at:
            rss.append((time.monotonic() - start, rss_bytes(args.rss_pid)))
            time.sleep(5)

    threads = [threading.Thread(target=client) for _ in range(args.clients)]
    threads.append(threading.Thread(target=prober))
    if args.rss_pid:
        threads.append(threading.Thread(target=sampler))
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - began

    answered = sum(counts[k] for k in ("completed", "refused_503_retry_after", "refused_other"))
    lost = counts["sent"] - answered - counts["hung"] - counts["errors"]
    print(f"## {args.title}: {args.clients} clients, {args.duration:.0f} s, model {args.model}, "
          f"max_tokens {args.max_tokens} (wall {wall:.0f} s)\n")
    print("| figure | value |\n|---|---|")
    print(f"| requests sent | {counts['sent']} |")
    print(f"| completed (200) | {counts['completed']} |")
    print(f"| refused 503 with Retry-After | {counts['refused_503_retry_after']} |")
    print(f"| refused otherwise | {counts['refused_other']} |")
    print(f"| hung (no answer in {args.timeout:.0f} s) | {counts['hung']} |")
    print(f"| connection errors | {counts['errors']} |")
    print(f"| lost (sent, never settled) | {lost} |")
    if latencies:
        print(f"| completed latency p50 / p99 | {percentile(latencies, 50):.2f} s / "
              f"{percentile(latencies, 99):.2f} s |")
    for path, values in probes.items():
        print(f"| GET {path} p50 / p99 / max ({len(values)} probes, {probe_failures[path]} not 200) | "
              f"{percentile(values, 50):.1f} / {percentile(values, 99):.1f} / "
              f"{max(values) if values else float('nan'):.1f} ms |")
    ok = counts["hung"] == 0 and lost == 0 and counts["errors"] == 0
    if rss:
        base = next((b for t, b in rss if t >= args.warmup), rss[-1][1])
        final = rss[-1][1]
        peak = max(b for _, b in rss)
        growth = 100.0 * (final - base) / base if base else float("nan")
        print(f"| RSS after {args.warmup:.0f} s warm-up / at the end / peak | {base / 2**20:.1f} / "
              f"{final / 2**20:.1f} / {peak / 2**20:.1f} MiB |")
        print(f"| RSS growth after warm-up | {growth:+.2f}% |")
        series = [f"{t:.0f} s: {b / 2**20:.1f}" for t, b in rss if int(t) % 60 < 5]
        print(f"| RSS every minute (MiB) | {', '.join(series)} |")
        ok = ok and growth < 5
    print(f"\nresult: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

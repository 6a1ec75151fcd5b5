#!/usr/bin/env python3
"""Normal clients beside a slowloris: are they served as fast as without it?

Phases alternate, `--rounds` times each, in one run: "alone" (the normal
clients only) and "slowloris" (the same, while `--slow` connections each
send their request one byte every `--byte-s` seconds and never finish it).
Each normal client sends short chat requests back to back, `--requests` per
phase. Prints a table per phase and the ratio of the means; exits 1 if any
normal request failed or hung.

Only talks to the URL it is given (loopback in bench/slowloris_bench.sh).
"""
import argparse
import http.client
import json
import socket
import statistics
import threading
import time
import urllib.parse


def percentile(values, p):
    # Nearest rank, as calm's own (src/util/percentile.h).
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


def normal_client(host, port, body, count, timeout, latencies, failures, lock):
    for _ in range(count):
        start = time.monotonic()
        try:
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
            conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            ok = resp.status == 200
            conn.close()
        except OSError:
            ok = False
        took = (time.monotonic() - start) * 1000
        with lock:
            (latencies if ok else failures).append(took)


def slowloris(host, port, stop, byte_s, opened):
    # A request that never ends: a header line a byte at a time.
    request = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100000
    try:
        s = socket.create_connection((host, port), timeout=5)
    except OSError:
        return
    with opened[1]:
        opened[0] += 1
    try:
        for byte in request:
            if stop.wait(byte_s):
                break
            s.send(bytes([byte]))
    except OSError:
        pass  # the server closed it (its read timeout): a real slowloris would reconnect
    finally:
        s.close()


def phase(host, port, args, body, slow):
    stop = threading.Event()
    opened = [0, threading.Lock()]
    attackers = [threading.Thread(target=slowloris, args=(host, port, stop, args.byte_s, opened))
                 for _ in range(slow)]
    for t in attackers:
        t.start()
    time.sleep(1.0 if slow else 0)  # let them connect and start trickling
    latencies, failures, lock = [], [], threading.Lock()
    start = time.monotonic()
    clients = [threading.Thread(target=normal_client,
                                args=(host, port, body, args.requests, args.timeout, latencies,
                                      failures, lock))
               for _ in range(args.clients)]
    for t in clients:
        t.start()
    for t in clients:
        t.join()
    wall = time.monotonic() - start
    stop.set()
    for t in attackers:
        t.join()
    return {"latencies": latencies, "failures": failures, "wall": wall, "opened": opened[0]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=12, help="per client per phase")
    ap.add_argument("--slow", type=int, default=64, help="slowloris connections")
    ap.add_argument("--byte-s", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=8)
    ap.add_argument("--timeout", type=float, default=60)
    args = ap.parse_args()
    u = urllib.parse.urlparse(args.url)
    body = json.dumps({"model": args.model, "max_tokens": args.max_tokens, "temperature": 0,
                       "messages": [{"role": "user", "content": "What is 2 + 2?"}]})
    results = {"alone": [], "slowloris": []}
    phase(u.hostname, u.port, args, body, 0)  # warm-up (the model's first requests), not counted
    for _ in range(args.rounds):
        results["alone"].append(phase(u.hostname, u.port, args, body, 0))
        results["slowloris"].append(phase(u.hostname, u.port, args, body, args.slow))
    print(f"| phase | slow connections | requests | failed | mean ms | p50 ms | p95 ms | req/s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    means = {}
    lost = 0
    for name, runs in results.items():
        lat = [x for r in runs for x in r["latencies"]]
        failed = sum(len(r["failures"]) for r in runs)
        lost += failed
        rps = sum(len(r["latencies"]) for r in runs) / sum(r["wall"] for r in runs)
        means[name] = statistics.mean(lat)
        opened = min(r["opened"] for r in runs) if name == "slowloris" else 0
        print(f"| {name} | {opened} | {len(lat)} | {failed} | {means[name]:.0f} | "
              f"{percentile(lat, 50):.0f} | {percentile(lat, 95):.0f} | {rps:.2f} |")
    print(f"\nmean latency with the slowloris / alone: {means['slowloris'] / means['alone']:.3f} "
          f"({args.rounds} rounds of each, alternating)")
    return 1 if lost else 0


if __name__ == "__main__":
    raise SystemExit(main())

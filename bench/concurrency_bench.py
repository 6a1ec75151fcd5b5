#!/usr/bin/env python3
"""Aggregate decode throughput of OpenAI-compatible servers under concurrency.

Each round sends --requests streamed-off /v1/completions calls (greedy,
ignore_eos, --max-tokens each, every prompt distinct) from --clients
threads to one server, and measures completion tokens / wall time of the
round. Rounds alternate between the --target servers, so machine noise
hits them alike. Prints a markdown table with the ratio to the first target.

  concurrency_bench.py --target calm=http://127.0.0.1:8080/bench \
                       --target llama-server=http://127.0.0.1:8081/bench --rounds 3
"""
import argparse
import http.client
import json
import queue
import threading
import time
import urllib.parse


def run_round(url, model, clients, requests, max_tokens, round_no):
    u = urllib.parse.urlparse(url)
    jobs = queue.Queue()
    for i in range(requests):
        jobs.put(i)
    tokens = [0]
    failures = [0]
    lock = threading.Lock()

    def client():
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
        while True:
            try:
                i = jobs.get_nowait()
            except queue.Empty:
                return
            body = json.dumps({"model": model, "prompt": f"{round_no}-{i}: Once upon a time",
                               "max_tokens": max_tokens, "temperature": 0, "ignore_eos": True,
                               "seed": 1})
            try:
                conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
                res = conn.getresponse()
                data = json.loads(res.read())
                with lock:
                    if res.status == 200:
                        tokens[0] += data["usage"]["completion_tokens"]
                    else:
                        failures[0] += 1
            except (OSError, http.client.HTTPException, ValueError, KeyError):
                with lock:
                    failures[0] += 1
                conn.close()
                conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - start
    return tokens[0] / wall, tokens[0], wall, failures[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", action="append", required=True, help="name=http://host:port/model")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=96)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=16, help="unmeasured requests per target first")
    args = ap.parse_args()
    targets = []
    for spec in args.target:
        name, url = spec.split("=", 1)
        base, model = url.rsplit("/", 1)
        targets.append((name, base, model))
    for name, base, model in targets:
        run_round(base, model, args.clients, args.warmup, args.max_tokens, -1)
    results = {name: [] for name, _, _ in targets}
    for r in range(args.rounds):
        for name, base, model in targets:
            results[name].append(run_round(base, model, args.clients, args.requests,
                                           args.max_tokens, r))
    first = targets[0][0]
    print(f"{args.clients} clients, {args.requests} completions of {args.max_tokens} tokens "
          f"per round, {args.rounds} rounds alternating\n")
    print("| round | " + " | ".join(f"{n} tokens/s" for n, _, _ in targets) +
          " | " + " | ".join(f"{first} / {n}" for n, _, _ in targets[1:]) + " | failures |")
    print("|---" * (1 + 2 * len(targets)) + "|")
    for r in range(args.rounds):
        row = [results[n][r] for n, _, _ in targets]
        ratios = [row[0][0] / x[0] if x[0] else float("nan") for x in row[1:]]
        print(f"| {r + 1} | " + " | ".join(f"{x[0]:.0f}" for x in row) + " | " +
              " | ".join(f"{q:.2f}" for q in ratios) + f" | {sum(x[3] for x in row)} |")
    means = [sum(x[0] for x in results[n]) / args.rounds for n, _, _ in targets]
    print("| mean | " + " | ".join(f"{m:.0f}" for m in means) + " | " +
          " | ".join(f"{means[0] / m:.2f}" for m in means[1:]) + " | |")


if __name__ == "__main__":
    main()

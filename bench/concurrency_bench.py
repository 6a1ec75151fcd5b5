#!/usr/bin/env python3
"""Aggregate decode throughput of OpenAI-compatible servers under concurrency.

Each round sends --requests non-streamed /v1/completions calls (greedy,
ignore_eos, --max-tokens each, every prompt distinct) from --clients
threads to one server, and measures completion tokens / wall time of the
round. Rounds alternate between the --target servers, so machine noise
hits them alike. Prints a markdown table with the ratio to the first target,
and each target's failed requests with the first error seen.

For a target named in --llama-metrics the completion tokens are the growth of
llama-server's own `llamacpp:tokens_predicted_total` counter (its /metrics,
`--metrics`) over the round, not the sum of the answers' usage: the pinned
llama-server fails about one request in five on a random-weight model with
500 "The model produced output that does not match the expected Content-only
format", raised by its chat-output parser after the tokens were generated.
Those tokens were decoded, so they count.

  concurrency_bench.py --target calm=http://127.0.0.1:8080/bench \
                       --target llama-server=http://127.0.0.1:8081/bench \
                       --llama-metrics llama-server --rounds 3
"""
import argparse
import http.client
import json
import queue
import threading
import time
import urllib.parse


def tokens_predicted_total(url):
    """llama-server's count of generated tokens, from its Prometheus /metrics."""
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.request("GET", "/metrics")
    for line in conn.getresponse().read().decode().splitlines():
        if line.startswith("llamacpp:tokens_predicted_total"):
            return float(line.split()[-1])
    raise SystemExit(f"{url}/metrics has no llamacpp:tokens_predicted_total (start with --metrics)")


def run_round(url, model, clients, requests, max_tokens, round_no, llama_metrics=False):
    u = urllib.parse.urlparse(url)
    jobs = queue.Queue()
    for i in range(requests):
        jobs.put(i)
    tokens = [0]
    failures = [0]
    first_error = [None]
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
                raw = res.read()
                data = json.loads(raw)
                with lock:
                    if res.status == 200:
                        tokens[0] += data["usage"]["completion_tokens"]
                    else:
                        failures[0] += 1
                        first_error[0] = first_error[0] or f"{res.status} {raw[:160]!r}"
            except (OSError, http.client.HTTPException, ValueError, KeyError) as e:
                with lock:
                    failures[0] += 1
                    first_error[0] = first_error[0] or repr(e)
                conn.close()
                conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    counted_before = tokens_predicted_total(url) if llama_metrics else 0
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - start
    if llama_metrics:
        tokens[0] = tokens_predicted_total(url) - counted_before
    return tokens[0] / wall, tokens[0], wall, failures[0], first_error[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", action="append", required=True, help="name=http://host:port/model")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=96)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--llama-metrics", action="append", default=[],
                    help="target name whose tokens come from llama-server's /metrics")
    ap.add_argument("--warmup", type=int, default=16, help="unmeasured requests per target first")
    args = ap.parse_args()
    targets = []
    for spec in args.target:
        name, url = spec.split("=", 1)
        base, model = url.rsplit("/", 1)
        targets.append((name, base, model))
    for name, base, model in targets:
        run_round(base, model, args.clients, args.warmup, args.max_tokens, -1,
                  name in args.llama_metrics)
    results = {name: [] for name, _, _ in targets}
    for r in range(args.rounds):
        for name, base, model in targets:
            results[name].append(run_round(base, model, args.clients, args.requests,
                                           args.max_tokens, r, name in args.llama_metrics))
    first = targets[0][0]
    print(f"{args.clients} clients, {args.requests} completions of {args.max_tokens} tokens "
          f"per round, {args.rounds} rounds alternating\n")
    print("| round | " + " | ".join(f"{n} tokens/s" for n, _, _ in targets) +
          " | " + " | ".join(f"{first} / {n}" for n, _, _ in targets[1:]) + " | " + " | ".join(f"{n} failures" for n, _, _ in targets) + " |")
    print("|---" * (3 * len(targets)) + "|")
    for r in range(args.rounds):
        row = [results[n][r] for n, _, _ in targets]
        ratios = [row[0][0] / x[0] if x[0] else float("nan") for x in row[1:]]
        print(f"| {r + 1} | " + " | ".join(f"{x[0]:.0f}" for x in row) + " | " +
              " | ".join(f"{q:.2f}" for q in ratios) + " | " +
              " | ".join(str(x[3]) for x in row) + " |")
    means = [sum(x[0] for x in results[n]) / args.rounds for n, _, _ in targets]
    print("| mean | " + " | ".join(f"{m:.0f}" for m in means) + " | " +
          " | ".join(f"{means[0] / m:.2f}" for m in means[1:]) + " |" + " |" * len(targets))
    for name, _, _ in targets:
        errors = [x[4] for x in results[name] if x[4]]
        if errors:
            print(f"\n{name}: {sum(x[3] for x in results[name])} failed; first: {errors[0]}")


if __name__ == "__main__":
    main()

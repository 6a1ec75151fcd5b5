#!/usr/bin/env python3
"""Write the workload pool: the held-out items the fleet can serve whole.

Reads <data>/<domain>/heldout.jsonl and the token ids tokenize-corpus made of
it (heldout.tok.jsonl, line for line) and keeps an item when its prompt and
reference fit the models' training context, and its prompt leaves room for
--max-tokens of answer: past the trained context the rotary positions are
ones the models never saw, which would measure extrapolation, not domain
quality. Writes <data>/pool.jsonl as `calm bench workload --pool` reads it.
Standard library only; deterministic.
"""

import argparse
import json
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOMAINS = ["maths", "code", "medical", "legal", "finance"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=REPO / "build" / "fleet-data")
    ap.add_argument("--ctx", type=int, default=768, help="the models' training context")
    ap.add_argument("--max-tokens", type=int, default=64, help="answer room the prompt must leave")
    args = ap.parse_args()
    pool = []
    for domain in DOMAINS:
        kept = total = 0
        with open(args.data / domain / "heldout.jsonl") as items, \
                open(args.data / domain / "heldout.tok.jsonl") as tokens:
            for item_line, token_line in zip(items, tokens):
                item, tok = json.loads(item_line), json.loads(token_line)
                total += 1
                if len(tok["p"]) + len(tok["r"]) > args.ctx or \
                        len(tok["p"]) + args.max_tokens > args.ctx:
                    continue
                kept += 1
                pool.append({"domain": domain, "source": item["source"],
                             "messages": item["messages"], "reference": item["reference"]})
        print("%-8s %4d of %4d held-out items fit" % (domain, kept, total))
    with open(args.data / "pool.jsonl", "w", encoding="utf-8") as f:
        for it in pool:
            f.write(json.dumps(it, ensure_ascii=False, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Split ../shared/data into the evaluation fleet's five domains.

For each domain (maths, code, medical, legal, finance) writes, into --out:

  <domain>/train.jsonl    what the domain's specialist (and the generalist) trains on
  <domain>/heldout.jsonl  never trained on: perplexity, the workload pool
  examples/<domain>.jsonl routing examples for the router, from the train split

Each item is {"domain", "source", "prompt", "reference", "messages"}: the
question a user would send and the answer a good model would give (the
reference the quality metric scores). Standard library only; the output
depends only on the input files, so two runs are byte-identical.

Split: GSM8K keeps its own train/test split; every other record goes to the
held-out split when sha256(source + prompt) falls in the lowest --heldout
fraction, so the split never depends on file order or on the other datasets.
"""

import argparse
import ast
import csv
import hashlib
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data"
DEFAULT_OUT = REPO / "build" / "fleet-data"

MMLU = {
    "maths": ["elementary_mathematics", "high_school_mathematics", "college_mathematics",
              "high_school_statistics", "abstract_algebra"],
    "code": ["college_computer_science", "high_school_computer_science", "computer_security",
             "machine_learning"],
    "medical": ["anatomy", "clinical_knowledge", "college_medicine", "medical_genetics",
                "professional_medicine", "virology", "nutrition", "human_aging"],
    "legal": ["professional_law", "jurisprudence", "international_law"],
    "finance": ["econometrics", "high_school_macroeconomics", "high_school_microeconomics",
                "professional_accounting", "business_ethics", "marketing", "management"],
}
DOMAINS = ["maths", "code", "medical", "legal", "finance"]
LETTERS = "ABCD"


def clean(text):
    return text.replace("\r\n", "\n").strip()


def item(domain, source, prompt, reference):
    prompt, reference = clean(prompt), clean(reference)
    return {"domain": domain, "source": source, "prompt": prompt, "reference": reference,
            "messages": [{"role": "user", "content": prompt}]}


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f):
            if line.strip():
                yield n, json.loads(line)


def gsm8k(data, name):
    for n, r in read_jsonl(data / "gsm8k" / name):
        answer = re.sub(r"<<[^>]*>>", "", r["answer"])
        answer = re.sub(r"\n#### *(.*)$", r"\nThe answer is \1.", answer.strip())
        yield item("maths", "gsm8k/%s#%d" % (name, n), r["question"], answer)


def mbpp(data):
    for n, r in read_jsonl(data / "mbpp" / "mbpp.jsonl"):
        yield item("code", "mbpp#%d" % n, r["text"], r["code"])


def medqa(data):
    for n, r in read_jsonl(data / "medqa" / "test.jsonl"):
        options = r["options"]
        if isinstance(options, str):
            options = ast.literal_eval(options)
        lines = "\n".join("%s. %s" % (k, v) for k, v in sorted(options.items()))
        yield item("medical", "medqa#%d" % n, r["question"] + "\n" + lines,
                   "The answer is %s. %s" % (r["answer_idx"], r["answer"]))


def pubmedqa(data):
    with open(data / "pubmedqa" / "ori_pqal.json", encoding="utf-8") as f:
        records = json.load(f)
    for pmid in sorted(records):
        r = records[pmid]
        yield item("medical", "pubmedqa#%s" % pmid, r["QUESTION"], r["LONG_ANSWER"])


def mmlu(data, domain, subject):
    for split in ("dev", "test"):
        path = data / "mmlu" / split / ("%s_%s.csv" % (subject, split))
        if not path.exists():
            continue
        with open(path, encoding="utf-8", newline="") as f:
            for n, row in enumerate(csv.DictReader(f)):  # header: question,choice0..3,answer
                if row.get("answer") not in ("0", "1", "2", "3"):
                    continue
                question = row["question"]
                choices = [row["choice%d" % i] for i in range(4)]
                answer = LETTERS[int(row["answer"])]
                lines = "\n".join("%s. %s" % (LETTERS[i], c) for i, c in enumerate(choices))
                reference = "The answer is %s. %s" % (answer, choices[LETTERS.index(answer)])
                yield item(domain, "mmlu/%s_%s#%d" % (subject, split, n), question + "\n" + lines,
                           reference)


def is_heldout(it, fraction):
    digest = hashlib.sha256((it["source"].split("#")[0] + "\n" + it["prompt"]).encode()).digest()
    return int.from_bytes(digest[:8], "big") < fraction * 2**64


def collect(data, fraction):
    """Returns {domain: (train, heldout)}."""
    out = {d: ([], []) for d in DOMAINS}

    def add(items, split=None):
        for it in items:
            if not it["prompt"] or not it["reference"]:
                continue
            held = is_heldout(it, fraction) if split is None else split == "heldout"
            out[it["domain"]][1 if held else 0].append(it)

    add(gsm8k(data, "train.jsonl"), "train")
    add(gsm8k(data, "test.jsonl"), "heldout")
    add(mbpp(data))
    add(medqa(data))
    add(pubmedqa(data))
    for domain, subjects in MMLU.items():
        for subject in subjects:
            add(mmlu(data, domain, subject))
    # A prompt in two domains (or twice in one) has no single right answer:
    # keep its first occurrence only, so train and held-out never overlap.
    seen = set()
    for domain in DOMAINS:
        for split in out[domain]:
            kept = []
            for it in split:
                key = " ".join(it["prompt"].lower().split())
                if key not in seen:
                    seen.add(key)
                    kept.append(it)
            split[:] = kept
    return out


def write_jsonl(path, items):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for it in items:
            f.write(json.dumps(it, ensure_ascii=False, sort_keys=True) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--heldout", type=float, default=0.1, help="held-out fraction (not GSM8K)")
    ap.add_argument("--examples", type=int, default=100, help="routing examples per domain")
    ap.add_argument("--example-max-chars", type=int, default=1200, help="longest routing example")
    args = ap.parse_args()
    if not (args.data / "gsm8k").is_dir():
        sys.exit("prepare_data: %s has no gsm8k/: pass --data ../shared/data" % args.data)

    splits = collect(args.data, args.heldout)
    for domain in DOMAINS:
        train, heldout = splits[domain]
        write_jsonl(args.out / domain / "train.jsonl", train)
        write_jsonl(args.out / domain / "heldout.jsonl", heldout)
        # Routing examples: short training prompts, spread over the split.
        short = [it for it in train if len(it["prompt"]) <= args.example_max_chars]
        step = max(1, len(short) // max(1, args.examples))
        examples = [{"query": it["prompt"], "domain": domain} for it in short[::step]]
        write_jsonl(args.out / "examples" / (domain + ".jsonl"), examples[:args.examples])
        chars = sum(len(it["prompt"]) + len(it["reference"]) for it in train)
        print("%-8s train %5d items %8d chars   held-out %4d items"
              % (domain, len(train), chars, len(heldout)))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Build labelled routing sets (examples split + test split) for five domains.

Reads the public datasets under ../shared/data (see its SOURCES.md) and writes,
into the output folder:

  examples.jsonl  an examples split, N per domain (default 50)
  test.jsonl      a separate test split, M per domain (default 200)
  SPLITS.md       counts per domain and per source, method, licences, hashes

Each line is {"query": "...", "domain": "maths", "source": "gsm8k/train.jsonl#123"}.
The "#N" suffix is the 0-based record index in that file: the line of a .jsonl
file, the data row of a .csv file (header not counted); for pubmedqa's
ori_pqal.json it is the PubMed id (the JSON key).

Standard library only. The output depends only on the input files and the
options, so two runs with the same seed are byte-identical.

Usage: python3 scripts/make-route-sets.py [--data DIR] [--out DIR]
           [--examples-per-domain 50] [--test-per-domain 200] [--seed 2026]
           [--max-chars 2000] [--min-chars 1]
"""

import argparse
import csv
import hashlib
import json
import random
import sys
from pathlib import Path

PROG = "make-route-sets"
REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data"
DEFAULT_OUT = REPO / "build" / "route-sets"

EXAMPLES = "examples"
TEST = "test"
BOTH = (EXAMPLES, TEST)

MMLU_HEADER = ["question", "choice0", "choice1", "choice2", "choice3", "answer"]


class DataError(Exception):
    """An expected problem with the input data: reported without a traceback."""


# --------------------------------------------------------------------------
# What goes into each domain.
#
# A domain is a list of *groups* (a dataset: gsm8k, mbpp, medqa, pubmedqa,
# mmlu). A group is a list of *sources* (the unit that is sampled: one
# dataset, or one MMLU subject). A source reads one or more files; every
# file says which split(s) its records may go to.
# --------------------------------------------------------------------------

def _jsonl(path, field, splits=BOTH):
    return {"kind": "jsonl", "path": path, "field": field, "splits": splits}


def _pubmedqa(path):
    return {"kind": "pubmedqa", "path": path, "field": "QUESTION", "splits": BOTH}


def _mmlu_subject(subject):
    return {
        "name": "mmlu/" + subject,
        "optional": True,  # MMLU here holds 48 of 57 subjects
        "files": [
            {"kind": "mmlu", "path": "mmlu/test/%s_test.csv" % subject, "splits": BOTH},
            {"kind": "mmlu", "path": "mmlu/dev/%s_dev.csv" % subject, "splits": BOTH,
             "optional": True},
        ],
    }


def _mmlu(*subjects):
    return {"name": "mmlu", "sources": [_mmlu_subject(s) for s in subjects]}


DOMAINS = [
    ("maths", [
        {"name": "gsm8k", "sources": [{"name": "gsm8k", "files": [
            _jsonl("gsm8k/train.jsonl", "question", (EXAMPLES,)),
            _jsonl("gsm8k/test.jsonl", "question", (TEST,)),
        ]}]},
        _mmlu("elementary_mathematics", "high_school_mathematics", "college_mathematics"),
    ]),
    ("code", [
        {"name": "mbpp", "sources": [{"name": "mbpp", "files": [
            _jsonl("mbpp/mbpp.jsonl", "text"),
        ]}]},
        _mmlu("college_computer_science", "high_school_computer_science",
              "computer_security", "machine_learning"),
    ]),
    ("medical", [
        {"name": "medqa", "sources": [{"name": "medqa", "files": [
            _jsonl("medqa/test.jsonl", "question"),
        ]}]},
        {"name": "pubmedqa", "sources": [{"name": "pubmedqa", "files": [
            _pubmedqa("pubmedqa/ori_pqal.json"),
        ]}]},
        _mmlu("anatomy", "clinical_knowledge", "college_medicine", "medical_genetics",
              "professional_medicine", "virology", "nutrition"),
    ]),
    ("legal", [
        _mmlu("professional_law", "jurisprudence", "international_law"),
    ]),
    ("finance", [
        _mmlu("econometrics", "high_school_macroeconomics", "high_school_microeconomics",
              "professional_accounting", "business_ethics", "marketing"),
    ]),
]

METHOD = """\
1. Read every source file. The query is the question text only (never the
   answer options or the answer), with leading and trailing white space
   removed. A query is skipped when it is empty, shorter than --min-chars or
   longer than --max-chars.
2. Deduplicate on a normalised key (white space collapsed, case folded):
   within a domain the first occurrence is kept (sources in the order of
   the table "Counts per source", files in order, records in file order); a
   key that occurs in more than one domain is dropped everywhere, since its
   label is ambiguous. Every query therefore occurs once at most in the two
   files together: the splits never overlap.
3. Each source's remaining queries are shuffled with a random.Random seeded
   from sha256("<seed>:<domain>:<source>"), so a source's order does not
   depend on any other source.
4. Quotas, the examples split first and then the test split: the domain's
   count is dealt one at a time, round robin, over the domain's datasets
   (gsm8k, mbpp, medqa, pubmedqa, mmlu), skipping a dataset once it has
   nothing left for that split; each dataset's share is then dealt the same
   way over its sources (one per MMLU subject). So datasets get equal shares,
   and the MMLU subjects of a domain share the MMLU part equally, as far as
   each has queries; a remainder goes to the earlier ones in the order listed.
5. The examples split takes each source's first queries (in shuffled order)
   that may go to it; the test split takes the next ones from what is left.
   gsm8k keeps its own split: train.jsonl feeds only the examples split and
   test.jsonl only the test split. Every other file may feed either.
6. Each domain's picks are shuffled once more (seeded the same way) so that
   sources are interleaved; the files list the domains in the order maths,
   code, medical, legal, finance.
"""


# --------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------

def _read_text(data, rel):
    path = data / rel
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError("%s: required file is missing" % path)
    except IsADirectoryError:
        raise DataError("%s: is a folder, expected a file" % path)
    except UnicodeDecodeError as e:
        raise DataError("%s: not valid UTF-8 (%s)" % (path, e.reason))
    except OSError as e:
        raise DataError("%s: cannot read (%s)" % (path, e.strerror or e))


def read_jsonl(data, spec):
    """Yield (index, text) for each record of a JSON-lines file."""
    rel, field = spec["path"], spec["field"]
    text = _read_text(data, rel)
    index = 0
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError("%s:%d: invalid JSON (%s)" % (data / rel, lineno, e.msg))
        if not isinstance(rec, dict) or not isinstance(rec.get(field), str):
            raise DataError("%s:%d: record has no string field %r"
                            % (data / rel, lineno, field))
        yield index, rec[field]
        index += 1
    if index == 0:
        raise DataError("%s: holds no records" % (data / rel))


def read_pubmedqa(data, spec):
    """Yield (pmid, QUESTION) from ori_pqal.json: {pmid: {QUESTION, CONTEXTS, ...}}."""
    rel, field = spec["path"], spec["field"]
    text = _read_text(data, rel)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError("%s:%d: invalid JSON (%s)" % (data / rel, e.lineno, e.msg))
    if not isinstance(obj, dict) or not obj:
        raise DataError("%s: expected a non-empty JSON object {id: {%s, ...}}"
                        % (data / rel, field))
    for key, rec in obj.items():
        if not isinstance(rec, dict) or not isinstance(rec.get(field), str):
            raise DataError("%s: entry %s has no string field %r" % (data / rel, key, field))
        yield key, rec[field]


def read_mmlu(data, spec):
    """Yield (row, question) from an MMLU csv: question,A,B,C,D,answer.

    The copies here start with the header question,choice0..choice3,answer;
    upstream hendrycks files have no header. Both are accepted.
    """
    rel = spec["path"]
    text = _read_text(data, rel)
    try:
        rows = list(csv.reader(text.splitlines()))
    except csv.Error as e:
        raise DataError("%s: not valid CSV (%s)" % (data / rel, e))
    if rows and [c.strip().lower() for c in rows[0]] == MMLU_HEADER:
        rows = rows[1:]
    index = 0
    for row in rows:
        if not row:
            continue
        if len(row) != 6:
            raise DataError("%s: data row %d has %d columns, expected 6 "
                            "(question,A,B,C,D,answer)" % (data / rel, index, len(row)))
        yield index, row[0]
        index += 1
    if index == 0:
        raise DataError("%s: holds no questions" % (data / rel))


READERS = {"jsonl": read_jsonl, "pubmedqa": read_pubmedqa, "mmlu": read_mmlu}


def norm_key(text):
    return " ".join(text.split()).casefold()


def load(data, min_chars, max_chars):
    """Read every source. Returns (domains, absent, files_read).

    domains: [(domain, [group{name, sources:[src{name, items, stats, files}]}])]
    Each item is {"query", "source", "splits", "key"}.
    """
    domains = []
    absent = []       # (domain, source name) of optional sources not present
    files_read = []   # relative paths, in order of reading
    for domain, groups in DOMAINS:
        out_groups = []
        for g in groups:
            out_sources = []
            for s in g["sources"]:
                present = [f for f in s["files"] if (data / f["path"]).exists()]
                if s.get("optional") and not any(
                        f for f in present if not f.get("optional")):
                    absent.append((domain, s["name"]))
                    continue
                stats = {"read": 0, "empty": 0, "short": 0, "long": 0,
                         "duplicate": 0, "cross_domain": 0}
                items = []
                used = []
                for f in s["files"]:
                    if f.get("optional") and not (data / f["path"]).exists():
                        continue
                    used.append(f["path"])
                    files_read.append(f["path"])
                    for idx, raw in READERS[f["kind"]](data, f):
                        stats["read"] += 1
                        q = raw.strip()
                        if not q:
                            stats["empty"] += 1
                        elif len(q) < min_chars:
                            stats["short"] += 1
                        elif len(q) > max_chars:
                            stats["long"] += 1
                        else:
                            items.append({"query": q, "source": "%s#%s" % (f["path"], idx),
                                          "splits": f["splits"], "key": norm_key(q)})
                out_sources.append({"name": s["name"], "items": items,
                                    "stats": stats, "files": used})
            if out_sources:
                out_groups.append({"name": g["name"], "sources": out_sources})
        if not out_groups:
            raise DataError("%s: no source for domain %r is present (looked for %s)"
                            % (data, domain, ", ".join(
                                s["name"] for g in groups for s in g["sources"])))
        domains.append((domain, out_groups))

    # Deduplicate: within a domain keep the first; across domains drop all.
    owners = {}
    for domain, groups in domains:
        for g in groups:
            for s in g["sources"]:
                for it in s["items"]:
                    owners.setdefault(it["key"], set()).add(domain)
    for domain, groups in domains:
        seen = set()
        for g in groups:
            for s in g["sources"]:
                kept = []
                for it in s["items"]:
                    if len(owners[it["key"]]) > 1:
                        s["stats"]["cross_domain"] += 1
                    elif it["key"] in seen:
                        s["stats"]["duplicate"] += 1
                    else:
                        seen.add(it["key"])
                        kept.append(it)
                s["items"] = kept
    return domains, absent, files_read


# --------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------

def seeded_rng(seed, *parts):
    digest = hashlib.sha256(":".join([str(seed)] + list(parts)).encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def deal(n, caps):
    """Deal n units round robin over len(caps) bins, each holding at most caps[i]."""
    alloc = [0] * len(caps)
    while n > 0:
        progressed = False
        for i, cap in enumerate(caps):
            if n == 0:
                break
            if alloc[i] < cap:
                alloc[i] += 1
                n -= 1
                progressed = True
        if not progressed:
            break
    return alloc


def sample(domains, n_examples, n_test, seed):
    """Returns {split: [rows]} and per-source counts {(domain, source): {split: n}}."""
    out = {EXAMPLES: [], TEST: []}
    counts = {}
    for domain, groups in domains:
        pools = {}
        for g in groups:
            for s in g["sources"]:
                pool = list(s["items"])
                seeded_rng(seed, domain, s["name"]).shuffle(pool)
                pools[s["name"]] = pool
                counts[(domain, s["name"])] = {EXAMPLES: 0, TEST: 0,
                                               "available": len(pool)}
        picked = {EXAMPLES: [], TEST: []}
        for split, n in ((EXAMPLES, n_examples), (TEST, n_test)):
            def avail(src):
                return [it for it in pools[src["name"]] if split in it["splits"]]
            group_caps = [sum(len(avail(s)) for s in g["sources"]) for g in groups]
            for g, g_n in zip(groups, deal(n, group_caps)):
                caps = [len(avail(s)) for s in g["sources"]]
                for s, s_n in zip(g["sources"], deal(g_n, caps)):
                    take = avail(s)[:s_n]
                    taken = set(id(it) for it in take)
                    pools[s["name"]] = [it for it in pools[s["name"]] if id(it) not in taken]
                    picked[split].extend(take)
                    counts[(domain, s["name"])][split] = len(take)
        for split in (EXAMPLES, TEST):
            rows = picked[split]
            seeded_rng(seed, domain, "order", split).shuffle(rows)
            out[split].extend({"query": it["query"], "domain": domain,
                               "source": it["source"]} for it in rows)
    return out, counts


# --------------------------------------------------------------------------
# Licences (from SOURCES.md) and the report
# --------------------------------------------------------------------------

def read_licences(data):
    """Map dataset folder -> (upstream, licence) from the table in SOURCES.md."""
    text = _read_text(data, "SOURCES.md")
    lic = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[0].endswith("/") and "/" not in cells[0][:-1]:
            lic[cells[0][:-1]] = (cells[2], cells[-1])
    return lic


def md_table(header, rows, align=None):
    """A markdown table; align is a string of 'l'/'r', one per column (default all 'l')."""
    align = align or "l" * len(header)
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(lines)


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def render_splits_md(args, domains, absent, files_read, counts, out, shortfalls,
                     licences, data, out_bytes):
    L = []
    L.append("# Routing sets: examples and test splits\n")
    L.append("Built by `scripts/make-route-sets.py --seed %d --examples-per-domain %d "
             "--test-per-domain %d --min-chars %d --max-chars %d` from the datasets in "
             "`../shared/data` (see its SOURCES.md). Do not commit copies of these files; "
             "rebuild them with the script. The same inputs and options give byte-identical "
             "output.\n"
             % (args.seed, args.examples_per_domain, args.test_per_domain,
                args.min_chars, args.max_chars))
    L.append("Each line of `examples.jsonl` and `test.jsonl` is "
             "`{\"query\": ..., \"domain\": ..., \"source\": \"FILE#N\"}`, where N is the "
             "0-based record index in FILE (the line of a .jsonl file, the data row of a "
             ".csv file, header not counted) or, for `pubmedqa/ori_pqal.json`, the PubMed id.\n")

    L.append("## Counts per domain\n")
    rows = []
    for domain, _ in domains:
        ne = sum(1 for r in out[EXAMPLES] if r["domain"] == domain)
        nt = sum(1 for r in out[TEST] if r["domain"] == domain)
        rows.append([domain, "%d / %d" % (ne, args.examples_per_domain),
                     "%d / %d" % (nt, args.test_per_domain)])
    rows.append(["**total**", len(out[EXAMPLES]), len(out[TEST])])
    L.append(md_table(["domain", "examples (got / asked)", "test (got / asked)"], rows, "lrr"))
    L.append("")
    if shortfalls:
        L.append("**Shortfalls** (too few distinct queries; what exists was used):\n")
        for msg in shortfalls:
            L.append("- " + msg)
        L.append("")
    else:
        L.append("Every domain reached the requested counts.\n")

    L.append("## Counts per source\n")
    L.append("`available` is what remained after filtering and deduplication; "
             "`skipped` counts empty / too short / too long / duplicate within the domain / "
             "shared with another domain.\n")
    rows = []
    for domain, groups in domains:
        for g in groups:
            for s in g["sources"]:
                c = counts[(domain, s["name"])]
                st = s["stats"]
                rows.append([domain, s["name"], st["read"], "%d / %d / %d / %d / %d" % (
                                 st["empty"], st["short"], st["long"],
                                 st["duplicate"], st["cross_domain"]),
                             c["available"], c[EXAMPLES], c[TEST]])
    L.append(md_table(["domain", "source", "read", "skipped", "available",
                       "examples", "test"], rows, "llrrrrr"))
    L.append("")
    L.append("Per file (from the `source` field of the rows written):\n")
    per_file = {}
    for split in (EXAMPLES, TEST):
        for r in out[split]:
            k = (r["domain"], r["source"].rsplit("#", 1)[0])
            per_file.setdefault(k, {EXAMPLES: 0, TEST: 0})[split] += 1
    rows = [[d, "`%s`" % f, c[EXAMPLES], c[TEST]] for (d, f), c in per_file.items()]
    order = {d: i for i, (d, _) in enumerate(domains)}
    pos = {f: i for i, f in enumerate(files_read)}
    rows.sort(key=lambda r: (order[r[0]], pos[r[1].strip("`")]))
    L.append(md_table(["domain", "file", "examples", "test"], rows, "llrr"))
    L.append("")
    if absent:
        L.append("Listed for a domain but not present in the data folder, so not used: "
                 + "; ".join("%s: %s" % (d, ", ".join(n for dd, n in absent if dd == d))
                             for d in dict.fromkeys(d for d, _ in absent)) + ".\n")

    L.append("## Method\n")
    L.append(METHOD)

    L.append("## Licences\n")
    L.append("From `../shared/data/SOURCES.md`. Keep these notes with anything derived "
             "from the sets.\n")
    used = list(dict.fromkeys(f.split("/")[0] for f in files_read))
    rows = []
    for folder in used:
        up, lic = licences.get(folder, ("(not listed in SOURCES.md)",
                                        "(not listed in SOURCES.md)"))
        rows.append(["`%s/`" % folder, up, lic])
    L.append(md_table(["dataset", "upstream", "licence"], rows, "lll"))
    L.append("")

    L.append("## Checksums (SHA-256)\n")
    rows = [["`%s`" % name, "`%s`" % sha256_hex(b)] for name, b in out_bytes]
    for rel in files_read:
        rows.append(["`../shared/data/%s`" % rel,
                     "`%s`" % sha256_hex((data / rel).read_bytes())])
    L.append(md_table(["file", "sha256"], rows, "ll"))
    L.append("")
    return "\n".join(L)


# --------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(
        prog=PROG, description="Build labelled routing sets (examples and test splits) "
        "for maths, code, medical, legal and finance from ../shared/data.")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA,
                   help="data folder (default: <repo>/../shared/data)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help="output folder (default: <repo>/build/route-sets)")
    p.add_argument("--examples-per-domain", type=int, default=50, metavar="N",
                   help="queries per domain in examples.jsonl (default 50)")
    p.add_argument("--test-per-domain", type=int, default=200, metavar="N",
                   help="queries per domain in test.jsonl (default 200)")
    p.add_argument("--seed", type=int, default=2026, help="random seed (default 2026)")
    p.add_argument("--max-chars", type=int, default=2000, metavar="N",
                   help="skip queries longer than N characters (default 2000)")
    p.add_argument("--min-chars", type=int, default=1, metavar="N",
                   help="skip queries shorter than N characters (default 1: only empty ones)")
    args = p.parse_args(argv)
    for name in ("examples_per_domain", "test_per_domain"):
        if getattr(args, name) < 0:
            p.error("--%s must be 0 or more" % name.replace("_", "-"))
    if args.min_chars < 1:
        p.error("--min-chars must be 1 or more")
    if args.max_chars < args.min_chars:
        p.error("--max-chars must be at least --min-chars")
    return args


def run(args):
    data = args.data
    if not data.exists():
        raise DataError("%s: data folder is missing (pass --data DIR)" % data)
    if not data.is_dir():
        raise DataError("%s: not a folder (pass --data DIR)" % data)

    licences = read_licences(data)
    domains, absent, files_read = load(data, args.min_chars, args.max_chars)
    out, counts = sample(domains, args.examples_per_domain, args.test_per_domain, args.seed)

    shortfalls = []
    for split, want in ((EXAMPLES, args.examples_per_domain), (TEST, args.test_per_domain)):
        for domain, _ in domains:
            got = sum(1 for r in out[split] if r["domain"] == domain)
            if got < want:
                shortfalls.append("%s: %s split has %d of the %d asked for"
                                  % (domain, split, got, want))

    # Paranoia: the construction guarantees these; fail loudly if not.
    keys = {split: [norm_key(r["query"]) for r in out[split]] for split in out}
    for split in out:
        assert len(set(keys[split])) == len(keys[split]), "duplicate in " + split
    assert not set(keys[EXAMPLES]) & set(keys[TEST]), "splits overlap"

    def encode(rows):
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")

    out_bytes = [("examples.jsonl", encode(out[EXAMPLES])), ("test.jsonl", encode(out[TEST]))]
    md = render_splits_md(args, domains, absent, files_read, counts, out, shortfalls,
                          licences, data, out_bytes)
    out_bytes.append(("SPLITS.md", md.encode("utf-8")))

    try:
        args.out.mkdir(parents=True, exist_ok=True)
        for name, b in out_bytes:
            tmp = args.out / (name + ".tmp")
            tmp.write_bytes(b)
            tmp.replace(args.out / name)
    except OSError as e:
        raise DataError("%s: cannot write output (%s)"
                        % (e.filename or args.out, e.strerror or e))

    for msg in shortfalls:
        print("%s: warning: %s" % (PROG, msg), file=sys.stderr)
    print("%s: wrote %s (%d lines), %s (%d lines), %s"
          % (PROG, args.out / "examples.jsonl", len(out[EXAMPLES]),
             args.out / "test.jsonl", len(out[TEST]), args.out / "SPLITS.md"))
    return 0


def main(argv=None):
    args = parse_args(argv)
    try:
        return run(args)
    except DataError as e:
        print("%s: error: %s" % (PROG, e), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

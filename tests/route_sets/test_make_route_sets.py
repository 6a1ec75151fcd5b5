"""Tests for scripts/make-route-sets.py (stdlib unittest).

Run: python3 -m unittest discover -s tests/route_sets
The tests on the real data are skipped when ../shared/data is absent; the
others build a tiny data folder of their own.
"""

import json
import re
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "make-route-sets.py"
DATA = REPO.parent / "shared" / "data"
DOMAINS = ["maths", "code", "medical", "legal", "finance"]
SOURCE_RE = re.compile(r"^[a-z0-9_./-]+\.(jsonl|json|csv)#[0-9]+$")


def run_script(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def read_rows(path):
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        rows.append(json.loads(line))
    return rows


def norm(q):
    return " ".join(q.split()).casefold()


class Checks:
    """Assertions shared by the real-data and fixture tests."""

    def check_rows(self, rows):
        for r in rows:
            self.assertEqual(list(r.keys()), ["query", "domain", "source"], r)
            for k in ("query", "domain", "source"):
                self.assertIsInstance(r[k], str, r)
                self.assertTrue(r[k], r)
            self.assertEqual(r["query"], r["query"].strip(), r)
            self.assertIn(r["domain"], DOMAINS, r)
            self.assertRegex(r["source"], SOURCE_RE)

    def check_no_overlap(self, ex, te):
        ke = [norm(r["query"]) for r in ex]
        kt = [norm(r["query"]) for r in te]
        self.assertEqual(len(ke), len(set(ke)), "duplicate query in examples")
        self.assertEqual(len(kt), len(set(kt)), "duplicate query in test")
        self.assertFalse(set(ke) & set(kt), "a query is in both splits")
        srcs = [r["source"] for r in ex + te]
        self.assertEqual(len(srcs), len(set(srcs)), "a source record used twice")


@unittest.skipUnless((DATA / "SOURCES.md").is_file(), "no ../shared/data here")
class RealDataTest(unittest.TestCase, Checks):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.out1 = Path(cls.tmp.name) / "a"
        cls.out2 = Path(cls.tmp.name) / "b"
        cls.r1 = run_script("--data", DATA, "--out", cls.out1)
        cls.r2 = run_script("--data", DATA, "--out", cls.out2)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def setUp(self):
        self.assertEqual(self.r1.returncode, 0, self.r1.stderr)
        self.ex = read_rows(self.out1 / "examples.jsonl")
        self.te = read_rows(self.out1 / "test.jsonl")

    def test_five_domains_and_requested_counts(self):
        for rows, n in ((self.ex, 50), (self.te, 200)):
            counts = {d: 0 for d in DOMAINS}
            for r in rows:
                counts[r["domain"]] += 1
            self.assertEqual(counts, {d: n for d in DOMAINS})
        self.assertEqual(self.r1.stderr, "", "no warnings expected at default counts")

    def test_every_line_has_query_domain_source(self):
        self.check_rows(self.ex + self.te)

    def test_no_overlap_and_no_duplicates(self):
        self.check_no_overlap(self.ex, self.te)

    def test_deterministic(self):
        self.assertEqual(self.r2.returncode, 0, self.r2.stderr)
        for name in ("examples.jsonl", "test.jsonl", "SPLITS.md"):
            self.assertEqual((self.out1 / name).read_bytes(), (self.out2 / name).read_bytes(),
                             name + " differs between two runs")

    def test_gsm8k_keeps_its_split_and_sources_are_mixed(self):
        for r in self.ex:
            self.assertFalse(r["source"].startswith("gsm8k/test.jsonl"), r)
        for r in self.te:
            self.assertFalse(r["source"].startswith("gsm8k/train.jsonl"), r)

        def datasets(rows, domain):
            out = set()
            for r in rows:
                if r["domain"] == domain:
                    f = r["source"].split("#")[0]
                    m = re.match(r"mmlu/(?:test|dev)/(.+)_(?:test|dev)\.csv$", f)
                    out.add("mmlu/" + m.group(1) if m else f.split("/")[0])
            return out
        for d in DOMAINS:
            self.assertEqual(datasets(self.ex, d), datasets(self.te, d), d)
        self.assertEqual(datasets(self.te, "medical") & {"medqa", "pubmedqa", "mmlu/anatomy"},
                         {"medqa", "pubmedqa", "mmlu/anatomy"})
        self.assertIn("mbpp", datasets(self.te, "code"))

    def test_query_limits(self):
        for r in self.ex + self.te:
            self.assertLessEqual(len(r["query"]), 2000)

    def test_splits_md(self):
        md = (self.out1 / "SPLITS.md").read_text(encoding="utf-8")
        for word in DOMAINS + ["gsm8k", "mbpp", "medqa", "pubmedqa", "mmlu/professional_law",
                               "MIT", "CC BY 4.0", "## Method"]:
            self.assertIn(word, md)
        self.assertNotIn(str(DATA.resolve()), md, "SPLITS.md must not hold absolute paths")

    def test_options_counts_and_seed(self):
        with tempfile.TemporaryDirectory() as t:
            r = run_script("--data", DATA, "--out", t, "--examples-per-domain", 5,
                           "--test-per-domain", 7, "--seed", 1)
            self.assertEqual(r.returncode, 0, r.stderr)
            ex = read_rows(Path(t) / "examples.jsonl")
            te = read_rows(Path(t) / "test.jsonl")
            self.assertEqual(len(ex), 25)
            self.assertEqual(len(te), 35)
            self.check_rows(ex + te)
            self.check_no_overlap(ex, te)
            self.assertNotEqual((Path(t) / "test.jsonl").read_bytes()[:2000],
                                (self.out1 / "test.jsonl").read_bytes()[:2000])


def write_fixture(root, n=6):
    """A tiny data folder in the real formats: n records per file."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "SOURCES.md").write_text(
        "| folder | dataset | upstream | licence |\n|---|---|---|---|\n"
        "| gsm8k/ | g | up-g | MIT (g) |\n| mbpp/ | m | up-m | CC BY 4.0 |\n"
        "| medqa/ | q | up-q | MIT (q) |\n| pubmedqa/ | p | up-p | MIT (p) |\n"
        "| mmlu/ | u | up-u | MIT (u) |\n", encoding="utf-8")

    def jsonl(rel, recs):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")

    jsonl("gsm8k/train.jsonl", [{"question": "Train sum %d plus 1?" % i, "answer": "#### 1"}
                                for i in range(n)])
    jsonl("gsm8k/test.jsonl", [{"question": "Test sum %d plus 2?" % i, "answer": "#### 2"}
                               for i in range(n)])
    jsonl("mbpp/mbpp.jsonl", [{"text": "Write a function number %d." % i, "code": "pass",
                               "task_id": i + 1} for i in range(n)])
    jsonl("medqa/test.jsonl", [{"question": "  Patient %d has a cough.  " % i, "answer": "x",
                                "options": {"A": "x"}} for i in range(n)]
          + [{"question": "   ", "answer": "x"}])  # empty after trimming: skipped
    pub = {str(1000 + i): {"QUESTION": "Does drug %d work?" % i, "CONTEXTS": ["c"]}
           for i in range(n)}
    (root / "pubmedqa").mkdir()
    (root / "pubmedqa/ori_pqal.json").write_text(json.dumps(pub, indent=4), encoding="utf-8")
    (root / "mmlu/test").mkdir(parents=True)
    (root / "mmlu/dev").mkdir(parents=True)
    subjects = {"professional_law": "Is contract %d valid?",
                "econometrics": "Is regression %d biased?",
                "anatomy": "Where is bone %d?",
                "machine_learning": "Does model %d overfit?"}
    for subject, q in subjects.items():
        header = "question,choice0,choice1,choice2,choice3,answer\n"
        if subject == "econometrics":
            header = ""  # upstream MMLU files have no header
        body = "".join('"%s",a,b,c,d,%d\n' % (q % i, i % 4) for i in range(n))
        (root / ("mmlu/test/%s_test.csv" % subject)).write_text(header + body, encoding="utf-8")
    (root / "mmlu/dev/anatomy_dev.csv").write_text(
        '"A long one %s",a,b,c,d,A\n' % ("x" * 100), encoding="utf-8")
    # Shared by two domains: dropped from both.
    with open(root / "mmlu/test/econometrics_test.csv", "a", encoding="utf-8") as f:
        f.write('"Which of the following is correct?",a,b,c,d,1\n')
    with open(root / "mmlu/test/anatomy_test.csv", "a", encoding="utf-8") as f:
        f.write('"Which of the following is correct?",a,b,c,d,1\n')
    # Duplicate within a domain (after normalising white space and case).
    with open(root / "mmlu/test/machine_learning_test.csv", "a", encoding="utf-8") as f:
        f.write('"write a   function number 0.",a,b,c,d,1\n')


class FixtureTest(unittest.TestCase, Checks):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = Path(self.tmp.name)
        self.data = self.root / "data"
        write_fixture(self.data)
        self.out = self.root / "out"

    def tearDown(self):
        self.tmp.cleanup()

    def assertCleanError(self, r, *needles):
        self.assertNotEqual(r.returncode, 0)
        self.assertNotIn("Traceback", r.stderr)
        self.assertIn("error", r.stderr)
        for n in needles:
            self.assertIn(n, r.stderr)

    def test_small_counts_and_formats(self):
        r = run_script("--data", self.data, "--out", self.out,
                       "--examples-per-domain", 2, "--test-per-domain", 3)
        self.assertEqual(r.returncode, 0, r.stderr)
        ex = read_rows(self.out / "examples.jsonl")
        te = read_rows(self.out / "test.jsonl")
        self.check_rows(ex + te)
        self.check_no_overlap(ex, te)
        for rows, n in ((ex, 2), (te, 3)):
            self.assertEqual(sorted(set(r["domain"] for r in rows)), sorted(DOMAINS))
            for d in DOMAINS:
                self.assertEqual(sum(r["domain"] == d for r in rows), n, d)
        queries = {r["query"] for r in ex + te}
        self.assertNotIn("Which of the following is correct?", queries)
        self.assertNotIn("write a   function number 0.", queries)  # duplicate in code
        for r in ex + te:  # medqa questions are padded with spaces in the fixture
            if r["source"].startswith("medqa/"):
                self.assertRegex(r["query"], r"^Patient \d has a cough\.$")
        pub = [r for r in ex + te if r["source"].startswith("pubmedqa/")]
        for r in pub:
            self.assertRegex(r["source"], r"^pubmedqa/ori_pqal\.json#10\d\d$")

    def test_shortfall_is_reported(self):
        r = run_script("--data", self.data, "--out", self.out,
                       "--examples-per-domain", 4, "--test-per-domain", 100)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("warning", r.stderr)
        self.assertIn("legal: test split has 2 of the 100", r.stderr)
        md = (self.out / "SPLITS.md").read_text(encoding="utf-8")
        self.assertIn("Shortfalls", md)
        self.assertIn("legal: test split has 2 of the 100", md)
        ex = read_rows(self.out / "examples.jsonl")
        te = read_rows(self.out / "test.jsonl")
        self.check_no_overlap(ex, te)
        # gsm8k has its own test file, so maths still fills its test split up to 6.
        self.assertEqual(sum(r["domain"] == "maths" for r in te), 6)

    def test_max_chars(self):
        r = run_script("--data", self.data, "--out", self.out, "--max-chars", 18,
                       "--examples-per-domain", 1, "--test-per-domain", 1)
        self.assertEqual(r.returncode, 0, r.stderr)
        for row in read_rows(self.out / "examples.jsonl") + read_rows(self.out / "test.jsonl"):
            self.assertLessEqual(len(row["query"]), 18, row)

    def test_missing_data_folder(self):
        r = run_script("--data", self.root / "nope", "--out", self.out)
        self.assertCleanError(r, "nope", "missing")
        self.assertFalse(self.out.exists())

    def test_missing_required_file(self):
        (self.data / "medqa/test.jsonl").unlink()
        r = run_script("--data", self.data, "--out", self.out)
        self.assertCleanError(r, "medqa/test.jsonl", "missing")

    def test_missing_sources_md(self):
        (self.data / "SOURCES.md").unlink()
        r = run_script("--data", self.data, "--out", self.out)
        self.assertCleanError(r, "SOURCES.md")

    def test_domain_without_any_source(self):
        (self.data / "mmlu/test/professional_law_test.csv").unlink()
        r = run_script("--data", self.data, "--out", self.out)
        self.assertCleanError(r, "legal")

    def test_corrupt_json_line(self):
        with open(self.data / "gsm8k/train.jsonl", "a", encoding="utf-8") as f:
            f.write("{not json\n")
        r = run_script("--data", self.data, "--out", self.out)
        self.assertCleanError(r, "gsm8k/train.jsonl:7", "invalid JSON")

    def test_wrong_field(self):
        (self.data / "mbpp/mbpp.jsonl").write_text('{"prompt": "x"}\n', encoding="utf-8")
        r = run_script("--data", self.data, "--out", self.out)
        self.assertCleanError(r, "mbpp/mbpp.jsonl:1", "'text'")

    def test_bad_csv_row(self):
        with open(self.data / "mmlu/test/anatomy_test.csv", "a", encoding="utf-8") as f:
            f.write("only,three,columns\n")
        r = run_script("--data", self.data, "--out", self.out)
        self.assertCleanError(r, "anatomy_test.csv", "columns")

    def test_bad_arguments(self):
        r = run_script("--data", self.data, "--out", self.out, "--test-per-domain", -1)
        self.assertEqual(r.returncode, 2)
        self.assertNotIn("Traceback", r.stderr)


if __name__ == "__main__":
    unittest.main()

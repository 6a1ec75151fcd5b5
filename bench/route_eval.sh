#!/usr/bin/env bash
# Routing accuracy and decision latency on the five-domain labelled sets
# (scripts/make-route-sets.py builds them from ../shared/data): once with the
# models' one-line descriptions only (the paper's way), once with 50 example
# queries per model as well.
#
# Usage: bench/route_eval.sh [--json]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh >/dev/null
glove=$(scripts/fetch-glove.sh build/convert-glove | tail -n 1)
sets=build/route-sets
python3 scripts/make-route-sets.py --out "$sets" >/dev/null

# One examples file per domain, for the models' examples_file.
python3 - "$sets" <<'PY'
import json, sys, pathlib
sets = pathlib.Path(sys.argv[1])
by_domain = {}
for line in (sets / "examples.jsonl").read_text().splitlines():
    row = json.loads(line)
    by_domain.setdefault(row["domain"], []).append(line)
for domain, lines in by_domain.items():
    (sets / f"examples-{domain}.jsonl").write_text("\n".join(lines) + "\n")
PY

fleet() {  # $1: with examples (yes/no)
  cat <<YAML
router:
  embeddings: $glove
  similarity: $([ "$1" = yes ] && echo classifier || echo description)
  policy: pro-confidence
  lambda: 0
models:
YAML
  while IFS='|' read -r domain description; do
    cat <<YAML
  - id: $domain-specialist
    description: "$description"
    tags: [$domain]
    gguf: ../test-models/tiny-plain.gguf
YAML
    if [ "$1" = yes ]; then echo "    examples_file: examples-$domain.jsonl"; fi
  done <<'DOMAINS'
maths|Mathematics: arithmetic and algebra word problems, numbers, calculations, percentages, money and measurements.
code|Programming: writing Python functions, algorithms, data structures, software, computer science and security.
medical|Medicine and health: diseases, symptoms, diagnosis, treatment, drugs, patients, anatomy, genetics and clinical studies.
legal|Law: legal questions about contracts, torts, crimes, evidence, property, constitutional rights, courts and statutes.
finance|Economics and finance: markets, prices, supply and demand, money, inflation, firms, business ethics and marketing.
DOMAINS
}
fleet no >"$sets/fleet-descriptions.yaml"
fleet yes >"$sets/fleet-examples.yaml"

echo "== descriptions only (the paper's way) =="
build/calm route-eval "$sets/test.jsonl" --config "$sets/fleet-descriptions.yaml" "$@"
for mode in centroid examples combined classifier; do
  echo "== descriptions + 50 examples per model, similarity: $mode =="
  build/calm route-eval "$sets/test.jsonl" --config "$sets/fleet-examples.yaml" --similarity "$mode" "$@"
done

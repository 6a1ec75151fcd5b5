#!/usr/bin/env bash
# Makes the fleet's data from ../shared/data, everything but the training:
# the domain splits, their token ids (through the fleet's own vocabulary, with
# calm's own tokenizer) and the workload pool. About 20 seconds; needs the
# build's make-tiny-gguf and tokenize-corpus. Used by fleet/train.sh and by
# bench/fleet_bench.sh.
#   fleet/prepare.sh [BUILD_DIR]        (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
data=$build/fleet-data
for tool in make-tiny-gguf tokenize-corpus; do
  [[ -x $build/$tool ]] || { echo "fleet/prepare.sh: $build/$tool is missing: build first (scripts/build.sh)" >&2; exit 2; }
done
python3 fleet/prepare_data.py --data ../shared/data --out "$data"
# The vocabulary every fleet model has: make-tiny-gguf's 512-token
# byte-fallback SentencePiece vocabulary with the ChatML tokens.
"$build/make-tiny-gguf" --out "$data/vocab.gguf" --dim 8 --layers 1 --heads 2 --vocab 512 >/dev/null
for domain in maths code medical legal finance; do
  for split in train heldout; do
    "$build/tokenize-corpus" --vocab "$data/vocab.gguf" --in "$data/$domain/$split.jsonl" \
      --out "$data/$domain/$split.tok.jsonl" >/dev/null
  done
done
python3 fleet/make_pool.py --data "$data"

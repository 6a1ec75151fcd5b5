#!/usr/bin/env bash
# 8 normal clients beside 64 slowloris connections (bench/RESULTS.md,
# "Slow clients beside normal ones"): one model of the demo fleet
# (maths-expert), 2 slots, 1 thread, served by a fresh `calm serve` on a free
# loopback port; phases with and without the slowloris alternate in one run.
#
# Usage: bench/slowloris_bench.sh [slowloris_bench.py options, e.g. --rounds 5]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh >/dev/null
dir=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
cat >"$dir/fleet.yaml" <<YAML
server: {port: 0}
models:
  - id: maths
    gguf: $PWD/fleet/models/maths-expert.gguf
    context: 512
    parallel: 2
    threads: 1
YAML
build/calm serve -c "$dir/fleet.yaml" >"$dir/serve.log" 2>&1 &
pid=$!
for _ in $(seq 200); do
  grep -q "listening on" "$dir/serve.log" && break
  sleep 0.1
done
url=$(grep -o 'http://[0-9.:]*' "$dir/serve.log" | head -n 1)
[ -n "$url" ] || { echo "calm serve did not start:" >&2; cat "$dir/serve.log" >&2; exit 1; }
echo "calm serve at $url; $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
python3 bench/slowloris_bench.py --url "$url" --model maths "$@"

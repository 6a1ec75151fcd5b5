#!/usr/bin/env bash
# calm's in-process path against llama.cpp's own llama-server: same pinned
# llama.cpp build, same GGUF, same prompt, threads, context and sampling.
# Prints a markdown table (TTFT and decode tokens/s, with ratios) measured in
# one run, requests interleaved between the two servers.
#
# Usage: bench/engine_vs_llama_server.sh [--requests N] [--max-tokens N]
# Env:   BENCH_THREADS (default 2), BENCH_DIM/BENCH_LAYERS/BENCH_VOCAB for the model.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh >/dev/null
prefix=$(scripts/build-llama-cpp.sh 2>/dev/null | tail -n 1)

threads=${BENCH_THREADS:-2}
dim=${BENCH_DIM:-512}; layers=${BENCH_LAYERS:-8}; vocab=${BENCH_VOCAB:-32000}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

model=build/bench-models/bench-${dim}x${layers}-v${vocab}.gguf
mkdir -p build/bench-models
[ -f "$model" ] || build/make-tiny-gguf --out "$model" --dim "$dim" --layers "$layers" \
                      --vocab "$vocab" --type f16 --seed 5 --name bench >/dev/null
build/calm model-info "$model" | sed -n '1,6p' >&2

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
calm_port=$(free_port); llama_port=$(free_port)
cat >"$work/fleet.yaml" <<YAML
server: {port: $calm_port}
models:
  - id: bench
    gguf: $PWD/$model
    context: 2048
    parallel: 1
    threads: $threads
YAML
build/calm serve --config "$work/fleet.yaml" >"$work/calm.log" 2>&1 &
"$prefix/bin/llama-server" -m "$model" --host 127.0.0.1 --port "$llama_port" -c 2048 -np 1 \
  -t "$threads" -tb "$threads" --no-webui >"$work/llama-server.log" 2>&1 &
for port in "$calm_port" "$llama_port"; do
  for _ in $(seq 600); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
done
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" >&2
build/stream-bench --target "calm=http://127.0.0.1:$calm_port/bench" \
                   --target "llama-server=http://127.0.0.1:$llama_port/bench" "$@"

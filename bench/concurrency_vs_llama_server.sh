#!/usr/bin/env bash
# calm against llama.cpp's llama-server under concurrency: 16 clients, 96
# completions of 64 tokens per round, the same 133 MB f16 GGUF, calm with
# `parallel: 16, context: 512, threads: 2` against `llama-server -np 16 -c 8192
# -t 2` (the same KV room per sequence), rounds alternating in one run.
# Prints the table of bench/RESULTS.md ("Concurrency against llama-server").
# llama-server's tokens are read from its own /metrics: see
# concurrency_bench.py for why.
#
# Usage: bench/concurrency_vs_llama_server.sh [--rounds N] [--clients N] [--requests N]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh >/dev/null
prefix=$(scripts/build-llama-cpp.sh 2>/dev/null | tail -n 1)
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

model=build/bench-models/bench-512x8-v32000.gguf
mkdir -p build/bench-models
[ -f "$model" ] || build/make-tiny-gguf --out "$model" --dim 512 --layers 8 --vocab 32000 \
                      --type f16 --seed 5 --name bench >/dev/null
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
calm_port=$(free_port); llama_port=$(free_port)
cat >"$work/fleet.yaml" <<YAML
server: {port: $calm_port}
scheduler: {max_queue: 1024}
models:
  - id: bench
    gguf: $PWD/$model
    context: 512
    parallel: 16
    threads: 2
YAML
build/calm serve --config "$work/fleet.yaml" >"$work/calm.log" 2>&1 &
"$prefix/bin/llama-server" -m "$model" --host 127.0.0.1 --port "$llama_port" -c 8192 -np 16 \
  -t 2 -tb 2 --no-webui --metrics >"$work/llama-server.log" 2>&1 &
for port in "$calm_port" "$llama_port"; do
  for _ in $(seq 600); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
done
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
python3 bench/concurrency_bench.py --target "calm=http://127.0.0.1:$calm_port/bench" \
  --target "llama-server=http://127.0.0.1:$llama_port/bench" --llama-metrics llama-server "$@"

#!/usr/bin/env bash
# The serving core under a flood and a soak (bench/RESULTS.md, "Flood and soak").
#
#   bench/flood_bench.sh            flood: 4 x http_threads clients on one slow model, 60 s
#   bench/flood_bench.sh --soak     soak: clients = the queue limit + slots, 600 s, RSS sampled;
#                                   the growth is taken after a 180 s warm-up, by when the
#                                   bounded memories (the last 10,000 response ids kept for
#                                   feedback, the QoS and analyzer windows) are full
#
# One model of the demo fleet (maths-expert), 1 thread, 2 slots, max_queue 64,
# http_threads 32, served by a fresh `calm serve` on a free loopback port.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=flood
[ "${1:-}" = "--soak" ] && mode=soak
duration=${DURATION:-$([ $mode = soak ] && echo 600 || echo 60)}
http_threads=32
max_queue=64
clients=$((4 * http_threads))
[ $mode = soak ] && clients=$((max_queue + 2))

scripts/build.sh >/dev/null
dir=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
cat >"$dir/fleet.yaml" <<EOF
server: {port: 0, http_threads: $http_threads, drain_grace_s: 5}
scheduler: {max_queue: $max_queue, queue_timeout_s: 600}
models:
  - id: maths
    gguf: $PWD/fleet/models/maths-expert.gguf
    context: 512
    parallel: 2
    threads: 1
EOF
build/calm serve -c "$dir/fleet.yaml" >"$dir/serve.log" 2>&1 &
pid=$!
for _ in $(seq 200); do
  grep -q "listening on" "$dir/serve.log" && break
  sleep 0.1
done
url=$(grep -o 'http://[0-9.:]*' "$dir/serve.log" | head -n 1)
[ -n "$url" ] || { echo "calm serve did not start:" >&2; cat "$dir/serve.log" >&2; exit 1; }
echo "calm serve pid $pid at $url ($mode, $clients clients, $duration s); $(nproc) cores"
python3 bench/flood_bench.py --url "$url" --model maths --clients "$clients" --duration "$duration" \
  --max-tokens 64 --title "$mode" $([ $mode = soak ] && echo "--rss-pid $pid --warmup 180")

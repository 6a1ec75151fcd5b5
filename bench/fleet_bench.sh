#!/usr/bin/env bash
# The evaluation behind README's "Results": the trained fleet (fleet/) against
# one generalist, the paper's systems, our ablations and the routing bounds,
# all on one workload of held-out questions (bench/fleet/suite.yaml).
#
#   bench/fleet_bench.sh [calm bench suite options, e.g. --only generalist,full]
#
# Environment: RATE (requests/s in the calm state, default 1.2), REQUESTS
# (default 500), ARRIVAL (bursty | poisson, default bursty), MAX_TOKENS
# (default 64), SEED (default 1). Writes build/fleet-bench/: workload.jsonl,
# and report/ with suite.json, report.{json,csv,html} and each server's log.
# Do not build or run anything else meanwhile: it measures latency and CPU
# time on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}
out=$build/fleet-bench
mkdir -p "$out"

fleet/prepare.sh "$build" >/dev/null
"$build/calm" bench workload --pool "$build/fleet-data/pool.jsonl" --out "$out/workload.jsonl" \
  --requests "${REQUESTS:-500}" --rate "${RATE:-1.2}" --arrival "${ARRIVAL:-bursty}" \
  --max-tokens "${MAX_TOKENS:-64}" --seed "${SEED:-1}"
"$build/calm" bench suite --suite bench/fleet/suite.yaml --workload "$out/workload.jsonl" \
  --out "$out/report" "$@"

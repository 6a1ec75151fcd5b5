#!/usr/bin/env bash
# Failover on the cache benchmark's trace (bench/RESULTS.md, "Failover: a
# backend killed and restarted mid-trace"): a front calm whose six models are
# remote, each on backend A with the same model on backend B as its fallback
# (two more real `calm serve`, each with the six GGUFs of bench/cache_bench.sh
# under the same 400 MiB budget, gdsf + swap-aware). The trace is replayed
# open-loop with 8 clients; backend A is killed (SIGKILL) a third of the way
# in and restarted on its port at two thirds. Prints one markdown table: every
# request must be answered or get a clear error, none lost.
#
# Usage: bench/failover_bench.sh [--requests N] [--rate R]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh

requests=240; rate=3; budget_mib=400; concurrency=8; max_tokens=16
while [ $# -gt 0 ]; do
  case "$1" in
    --requests) requests=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

scripts/build.sh >/dev/null
work=build/failover-bench  # logs, trace and per-request results stay here
rm -rf "$work"; mkdir -p "$work"
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null' EXIT

make_cache_models  # the same six models as bench/cache_bench.sh (bench/common.sh)

build/calm bench workload --out "$work/trace.jsonl" --requests "$requests" --rate "$rate" \
  --arrival bursty --burst-factor 4 --calm-s 10 --burst-s 5 --models "${ids// /,}" \
  --mix 0.25,0.1,0.25,0.1,0.2,0.1 --locality 0 --max-tokens "$max_tokens" --seed 7 >&2


backend_fleet() {  # port file
  cat >"$2" <<YAML
server: {port: $1, drain_grace_s: 1}
cache: {budget: ${budget_mib}MiB, eviction: gdsf}
scheduler: {policy: swap-aware, max_wait_ms: 3000, max_active_models: 1}
models:
YAML
  for id in $ids; do
    printf '  - {id: %s, gguf: %s, context: 256, parallel: 2, threads: 1, preload: false}\n' \
      "$id" "$PWD/$models/$id.gguf" >>"$2"
  done
}
port_a=$(free_port); port_b=$(free_port); port_front=$(free_port)
backend_fleet "$port_a" "$work/a.yaml"; backend_fleet "$port_b" "$work/b.yaml"
build/calm serve --config "$work/a.yaml" >"$work/a.log" 2>&1 &
pid_a=$!
build/calm serve --config "$work/b.yaml" >"$work/b.log" 2>&1 &
wait_health "$port_a"; wait_health "$port_b"

{
  echo "server: {port: $port_front}"
  echo "scheduler: {max_queue: 1024}"
  echo "models:"
  for id in $ids; do
    printf '  - {id: %s, url: "http://127.0.0.1:%s", upstream_model: %s, parallel: 2, read_timeout_s: 60, fallbacks: [%s-b]}\n' \
      "$id" "$port_a" "$id" "$id"
    printf '  - {id: %s-b, url: "http://127.0.0.1:%s", upstream_model: %s, parallel: 2, read_timeout_s: 60}\n' \
      "$id" "$port_b" "$id"
  done
} >"$work/front.yaml"
build/calm serve --config "$work/front.yaml" >"$work/front.log" 2>&1 &
wait_health "$port_front"

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" >&2
duration=$(python3 -c "import json; print(max(json.loads(l)['t'] for l in open('$work/trace.jsonl')))")
build/calm bench run --url "http://127.0.0.1:$port_front" --workload "$work/trace.jsonl" \
  --concurrency "$concurrency" --ignore-eos --no-progress --label "failover" \
  --out "$work/front.json" >/dev/null &
bench=$!
kill_at=$(python3 -c "print($duration / 3)"); restart_at=$(python3 -c "print($duration / 3)")
sleep "$kill_at"
kill -KILL "$pid_a"; wait "$pid_a" 2>/dev/null || true
echo "killed backend A at ${kill_at} s" >&2
sleep "$restart_at"
build/calm serve --config "$work/a.yaml" >"$work/a2.log" 2>&1 &
wait_health "$port_a"
echo "restarted backend A at about $(python3 -c "print(2 * $duration / 3)") s" >&2
wait "$bench" || true
curl -s "http://127.0.0.1:$port_front/metrics" >"$work/front.metrics"
curl -s "http://127.0.0.1:$port_front/v1/calm/state" >"$work/front.state"

python3 - "$work/front.json" "$work/front.metrics" "$work/front.state" "$kill_at" <<'PY'
import json, re, sys
data = json.load(open(sys.argv[1]))
recs = data["records"] if "records" in data else data["requests"]
metrics = open(sys.argv[2]).read()
state = json.load(open(sys.argv[3]))
kill_at = float(sys.argv[4])

def total(name):
    return sum(float(v) for v in re.findall(r"^" + name + r"\{[^}]*\} (\S+)$", metrics, re.M))

ok = [r for r in recs if r.get("status") == 200 and not r.get("error")]
# A clear error: an error status, or an OpenAI error event that ended a
# stream already under way (a backend killed mid-answer). Lost: anything
# else (no answer, a timeout, a stream cut off without an error event).
clear = [r for r in recs if r.get("status", 0) >= 400 or
         (r.get("status") != 200 or r.get("error")) and r.get("error", "").startswith("error in stream")]
lost = [r for r in recs if r not in ok and r not in clear]
by_fallback = [r for r in ok if r.get("served_model", "").endswith("-b")]
lat = sorted(r["latency_ms"] for r in ok)
p95 = lat[max(1, -(-len(lat) * 95 // 100)) - 1] if lat else float("nan")
breakers = state.get("breakers", {})
print("| requests | answered 200 | of which by the fallback | clear errors (status, or an error event mid-stream) | lost | "
      "failover retries | breaker openings | breakers closed at the end | mean ms | p95 ms |")
print("|---|---|---|---|---|---|---|---|---|---|")
closed = sum(1 for b in breakers.values() if b["state"] == "closed")
print(f"| {len(recs)} | {len(ok)} | {len(by_fallback)} | {len(clear)} | {len(lost)} | "
      f"{total('calm_failover_retries_total'):.0f} | {total('calm_breaker_opened_total'):.0f} | "
      f"{closed} of {len(breakers)} | {sum(lat) / max(1, len(lat)):.0f} | {p95:.0f} |")
for r in clear[:5] + lost[:5]:
    print(f"  request {r['index']} ({r['model']}): status {r.get('status')}: {r.get('error', '')[:160]}")
sys.exit(1 if lost else 0)
PY

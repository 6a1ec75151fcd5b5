#!/usr/bin/env bash
# The model cache and the scheduler on one swap-heavy trace: six models that do
# not all fit in the memory budget, replayed open-loop with 8 concurrent
# clients, for every eviction policy (lru, lfu, gdsf) with every queue policy
# (fifo, stcf, swap-aware); then llama.cpp's router mode (same pinned build,
# --models-dir, --models-max = the number of models that always fit in the
# same budget) on the same trace. Prints one markdown table.
#
# Usage: bench/cache_bench.sh [--requests N] [--rate R] [--budget-mib M] [--max-wait-ms W]
#                             [--max-active-models K] [--only CONFIG]
# The models are random-weight llama GGUFs made by build/make-tiny-gguf with
# --ascii-output (llama-server rejects its own invalid-UTF-8 output).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh

requests=240; rate=3; budget_mib=400; max_wait_ms=3000; concurrency=8; max_tokens=16
max_active_models=1  # 2 cores, 2 threads a model: one model decodes at a time
only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --requests) requests=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --budget-mib) budget_mib=$2; shift 2 ;;
    --max-wait-ms) max_wait_ms=$2; shift 2 ;;
    --max-active-models) max_active_models=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

scripts/build.sh >/dev/null
prefix=$(scripts/build-llama-cpp.sh 2>/dev/null | tail -n 1)
work=build/cache-bench  # logs, trace and per-request results stay here
rm -rf "$work"; mkdir -p "$work"
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null' EXIT

# Six models in three sizes: 176, 84 and 32 MB files.
make_cache_models  # bench/common.sh
ids=${ids// /,}

# One bursty trace (a two-state Markov-modulated Poisson process): popular
# models and a long tail, no locality, so that a cache by count thrashes.
build/calm bench workload --out "$work/trace.jsonl" --requests "$requests" --rate "$rate" \
  --arrival bursty --burst-factor 4 --calm-s 10 --burst-s 5 --models "$ids" \
  --mix 0.25,0.1,0.25,0.1,0.2,0.1 --locality 0 --max-tokens "$max_tokens" --seed 7 >&2
# Both servers answer the same legacy completions (no chat template involved).
python3 - "$work/trace.jsonl" <<'PY'
import json, sys
path = sys.argv[1]
rows = [json.loads(l) for l in open(path)]
for r in rows:
    r["prompt"] = r.pop("messages")[0]["content"]
open(path, "w").write("".join(json.dumps(r) + "\n" for r in rows))
PY


run_calm() {  # eviction queue
  local port; port=$(free_port)
  cat >"$work/fleet.yaml" <<YAML
server: {port: $port}
cache: {budget: ${budget_mib}MiB, eviction: $1}
scheduler: {policy: $2, max_wait_ms: $max_wait_ms, max_active_models: $max_active_models}
models:
YAML
  for id in ${ids//,/ }; do
    printf '  - {id: %s, gguf: %s, context: 256, parallel: 2, threads: 2, preload: false}\n' \
      "$id" "$PWD/$models/$id.gguf" >>"$work/fleet.yaml"
  done
  build/calm serve --config "$work/fleet.yaml" >"$work/calm-$1-$2.log" 2>&1 &
  local pid=$!
  wait_health "$port"
  build/calm bench run --url "http://127.0.0.1:$port" --workload "$work/trace.jsonl" \
    --concurrency "$concurrency" --ignore-eos --no-progress --label "calm $1+$2" \
    --out "$work/calm-$1-$2.json" >/dev/null
  kill "$pid"; wait "$pid" 2>/dev/null || true
  echo "$work/calm-$1-$2.json"
}

run_llama_router() {  # models_max
  local port; port=$(free_port)
  "$prefix/bin/llama-server" --models-dir "$PWD/$models" --models-max "$1" --host 127.0.0.1 \
    --port "$port" -c 512 -np 2 -t 2 -tb 2 --no-webui >"$work/router.log" 2>&1 &
  local pid=$!
  wait_health "$port"
  build/calm bench run --url "http://127.0.0.1:$port" --workload "$work/trace.jsonl" \
    --concurrency "$concurrency" --ignore-eos --no-progress --label "llama.cpp router" \
    --out "$work/router.json" >/dev/null || true
  kill "$pid"; wait "$pid" 2>/dev/null || true
  # Each load spawns one child server.
  grep -ac "spawning server instance with name=" "$work/router.log" >"$work/router.loads" || true
  echo "$work/router.json"
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" >&2
results=()
for eviction in lru lfu gdsf; do
  for queue in fifo stcf swap-aware; do
    [ -n "$only" ] && [ "$only" != "$eviction+$queue" ] && continue
    echo "running calm $eviction+$queue" >&2
    results+=("$(run_calm "$eviction" "$queue")")
  done
done
# What always fits: the largest models' measured bytes, from the last calm run.
models_max=$(python3 - "${results[-1]}" "$budget_mib" <<'PY'
import json, sys
state = json.load(open(sys.argv[1]))["state_after"]["cache"]["models"]
sizes = sorted((m["bytes"] for m in state.values()), reverse=True)
budget, n, used = int(sys.argv[2]) << 20, 0, 0
while n < len(sizes) and used + sizes[n] <= budget:
    used += sizes[n]; n += 1
print(max(n, 1))
PY
)
if [ -z "$only" ] || [ "$only" = router ]; then
  echo "running llama.cpp router mode, --models-max $models_max" >&2
  router=$(run_llama_router "$models_max")
fi

python3 - "$budget_mib" "$max_wait_ms" "$models_max" "${router:-}" "$work/router.loads" "${results[@]}" <<'PY'
import json, sys, os
budget_mib, max_wait, models_max, router, router_loads = sys.argv[1:6]
budget = int(budget_mib) << 20

def pct(values, p):
    values = sorted(values)
    if not values:
        return float("nan")
    k = max(1, -(-len(values) * p // 100))
    return values[int(k) - 1]

def row(label, path, loads=None, hits=None, peak=None, longest=None, bound=None, rss=None):
    data = json.load(open(path))
    recs = data["records"] if "records" in data else data["requests"]
    ok = [r for r in recs if r.get("status") == 200 and not r.get("error")]
    lat = [r["latency_ms"] for r in ok]
    n = len(recs)
    mean = sum(lat) / len(lat) if lat else float("nan")
    failed = n - len(ok)
    state = data.get("state_after")
    if state:
        c = state["cache"]
        loads = sum(m["loads"] for m in c["models"].values())
        h = sum(m["hits"] for m in c["models"].values())
        miss = sum(m["misses"] for m in c["models"].values())
        hits = 100.0 * h / max(1, h + miss)
        peak = c["peak_used_bytes"] / 2**20
        s = state["scheduler"]
        longest = s["longest_queue_ms"]
        # swap-aware's bound: max_wait plus one service time (queue_policy.h)
        bound = s["max_wait_ms"] + s["longest_service_ms"] if s["policy"] == "swap-aware" else None
        rss = (state["process"]["peak_rss_bytes"] - data["state_before"]["process"]["rss_bytes"]) / 2**20
    fmt = lambda v, spec: "n/a" if v is None else format(v, spec)
    return (f"| {label} | {n} | {failed} | {mean:.0f} | {pct(lat, 95):.0f} | "
            f"{fmt(100.0 * loads / n if loads is not None else None, '.1f')} | {fmt(hits, '.1f')} | "
            f"{fmt(peak, '.0f')} / {budget_mib} | {fmt(rss, '.0f')} | {fmt(longest, '.0f')} | "
            f"{fmt(bound, '.0f')} |")

print(f"Budget {budget_mib} MiB; swap-aware max_wait {max_wait} ms; "
      f"llama.cpp router --models-max {models_max}.\n")
print("| system | requests | failed | mean ms | p95 ms | loads/100 req | hit rate % "
      "| peak charged MiB / budget | peak RSS growth MiB | longest queue wait ms | wait bound ms |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for path in sys.argv[6:]:
    name = os.path.basename(path)[len("calm-"):-len(".json")]
    ev, q = name.split("-", 1)
    print(row(f"calm {ev} + {q}", path))
if router and os.path.exists(router):
    loads = int(open(router_loads).read().strip() or 0)
    print(row(f"llama.cpp router (--models-max {models_max})", router, loads=loads))
PY

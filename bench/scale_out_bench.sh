#!/usr/bin/env bash
# Scale-out over router-mode nodes (bench/RESULTS.md, "Scale-out over three
# router-mode nodes"): the six models of bench/cache_bench.sh (two of 176 MB,
# two of 84 MB, two of 32 MB) over three real llama-servers of the pinned
# build in router mode (`--models-dir` holding the six GGUFs), each with room
# for two models: a byte budget of two of the largest for calm, and
# `--models-max 2` where the node swaps by itself. A swap-heavy bursty trace
# is replayed open-loop with 8 clients against, in turn:
#   calm      `calm serve` placing the models on the three nodes (`nodes:`)
#   haproxy   HAProxy round robin over the same three nodes, each node
#             loading and evicting by its own --models-max (health-checked,
#             with redispatch of refused connections)
#   one node  a single router-mode node, alone (no node killed)
# In the first two, node 2 is killed (SIGKILL, with its model processes) a
# third of the way in and restarted on its port at two thirds. Loads are
# counted from each node's own log (one "spawning server instance" per
# model process); bytes per node by polling each node's GET /models every
# 100 ms (the GGUF sizes of the models loading or loaded there) and the RSS
# of its process tree. Prints one markdown table.
#
# Usage: bench/scale_out_bench.sh [--requests N] [--rate R]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh

requests=240; rate=3; concurrency=8; max_tokens=16
while [ $# -gt 0 ]; do
  case "$1" in
    --requests) requests=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

command -v haproxy >/dev/null || { echo "haproxy is not installed (apt-get install haproxy)" >&2; exit 2; }
scripts/build.sh >/dev/null
llama_server="$(scripts/build-llama-cpp.sh | tail -n 1)/bin/llama-server"
work=build/scale-out-bench  # logs, trace and per-request results stay here
rm -rf "$work"; mkdir -p "$work"
cleanup() {
  for f in "$work"/*.pgid; do [ -f "$f" ] && kill -KILL -- "-$(cat "$f")" 2>/dev/null; done
  kill $(jobs -p) 2>/dev/null; wait 2>/dev/null
}
trap cleanup EXIT

make_cache_models  # the same six models as bench/cache_bench.sh (bench/common.sh)
largest=$(stat -c %s "$models/big1.gguf")
budget=$((2 * largest))
mkdir -p "$work/models"
for id in $ids; do ln -sf "$PWD/$models/$id.gguf" "$work/models/$id.gguf"; done

build/calm bench workload --out "$work/trace.jsonl" --requests "$requests" --rate "$rate" \
  --arrival bursty --burst-factor 4 --calm-s 10 --burst-s 5 --models "${ids// /,}" \
  --mix 0.25,0.1,0.25,0.1,0.2,0.1 --locality 0 --max-tokens "$max_tokens" --seed 7 >&2
duration=$(python3 -c "import json; print(max(json.loads(l)['t'] for l in open('$work/trace.jsonl')))")


# start_node NAME PORT MODELS_MAX: a router-mode node in a process group of
# its own (so that killing it kills its model processes too).
start_node() {
  # In a subshell, so that this shell does not report the kill of the job.
  (
    setsid "$llama_server" --models-dir "$work/models" --models-max "$3" --host 127.0.0.1 \
      --port "$2" -c 256 -np 2 -t 1 --no-webui --metrics >>"$work/$1.log" 2>&1 &
    echo $! >"$work/$1.pgid"
  )
  wait_health "$2"
}
kill_node() {
  kill -KILL -- "-$(cat "$work/$1.pgid")" 2>/dev/null || true
  rm -f "$work/$1.pgid"
}

# poll OUT NAME:PORT...: until $work/stop exists, every 100 ms, the bytes of
# the models loading or loaded on each node and its process tree's RSS.
poll() {
  python3 - "$work" "$models" "$@" <<'PY' &
import json, os, sys, time, urllib.request
work, models, out, nodes = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
size = {f[:-5]: os.path.getsize(os.path.join(models, f)) for f in os.listdir(models) if f.endswith(".gguf")}
peak = {n.split(":")[0]: {"bytes": 0, "rss": 0} for n in nodes}

def tree_rss(pgid):
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            if int(stat[2]) == pgid:  # field 5: the process group
                total += int(stat[21]) * os.sysconf("SC_PAGE_SIZE")  # field 24: rss pages
        except (OSError, IndexError, ValueError):
            pass
    return total

while not os.path.exists(os.path.join(work, "stop")):
    for n in nodes:
        name, port = n.split(":")
        try:
            data = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/models", timeout=1))
            held = sum(size.get(m["id"], 0) for m in data["data"]
                       if m["status"]["value"] in ("loading", "loaded", "sleeping"))
            peak[name]["bytes"] = max(peak[name]["bytes"], held)
        except Exception:
            pass  # a node killed on purpose
        try:
            pgid = int(open(os.path.join(work, name + ".pgid")).read())
            peak[name]["rss"] = max(peak[name]["rss"], tree_rss(pgid))
        except (OSError, ValueError):
            pass
    time.sleep(0.1)
json.dump(peak, open(out, "w"))
PY
}

# replay LABEL URL KILL(yes|no) NODE2_PORT MODELS_MAX: the trace against URL,
# node 2 killed at a third and restarted at two thirds when KILL is yes.
replay() {
  build/calm bench run --url "$2" --workload "$work/trace.jsonl" --concurrency "$concurrency" \
    --ignore-eos --no-progress --label "$1" --out "$work/$1.json" >/dev/null &
  local bench=$!
  if [ "$3" = yes ]; then
    local third
    third=$(python3 -c "print($duration / 3)")
    sleep "$third"
    kill_node "$1-n2"
    echo "$1: killed node 2 at ${third} s" >&2
    sleep "$third"
    start_node "$1-n2" "$4" "$5"
    echo "$1: restarted node 2 at about $(python3 -c "print(2 * $duration / 3)") s" >&2
  fi
  wait "$bench" || true
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" >&2

# --- calm placing the models on three nodes --------------------------------
p1=$(free_port); p2=$(free_port); p3=$(free_port); front=$(free_port)
start_node calm-n1 "$p1" 6; start_node calm-n2 "$p2" 6; start_node calm-n3 "$p3" 6
{
  echo "server: {port: $front}"
  echo "scheduler: {max_queue: 1024}"
  echo "cache: {eviction: lru}"
  echo "nodes:"
  for i in 1 2 3; do
    port_var=p$i
    echo "  - {id: n$i, url: \"http://127.0.0.1:${!port_var}\", budget: $budget, load_timeout_s: 60}"
  done
  echo "models:"
  for id in $ids; do
    printf '  - {id: %s, nodes: [n1, n2, n3], bytes: %s, parallel: 6, read_timeout_s: 120}\n' \
      "$id" "$(stat -c %s "$models/$id.gguf")"
  done
} >"$work/calm.yaml"
build/calm serve --config "$work/calm.yaml" >"$work/calm.log" 2>&1 &
calm_pid=$!
wait_health "$front"
rm -f "$work/stop"; poll "$work/calm.peak" calm-n1:"$p1" calm-n2:"$p2" calm-n3:"$p3"; poller=$!
replay calm "http://127.0.0.1:$front" yes "$p2" 6
touch "$work/stop"; wait "$poller"
curl -s "http://127.0.0.1:$front/v1/calm/state" >"$work/calm.state"
kill "$calm_pid"; wait "$calm_pid" 2>/dev/null || true
for n in calm-n1 calm-n2 calm-n3; do kill_node "$n"; done

# --- HAProxy round robin over three nodes, each swapping by itself --------
p1=$(free_port); p2=$(free_port); p3=$(free_port); front=$(free_port)
start_node haproxy-n1 "$p1" 2; start_node haproxy-n2 "$p2" 2; start_node haproxy-n3 "$p3" 2
cat >"$work/haproxy.cfg" <<CFG
global
  maxconn 256
defaults
  mode http
  timeout connect 2s
  timeout client 180s
  timeout server 180s
  retries 2
  option redispatch
frontend calm_bench
  bind 127.0.0.1:$front
  default_backend nodes
backend nodes
  balance roundrobin
  option httpchk GET /health
  default-server inter 1s fall 2 rise 1
  server n1 127.0.0.1:$p1 check
  server n2 127.0.0.1:$p2 check
  server n3 127.0.0.1:$p3 check
CFG
haproxy -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
haproxy_pid=$!
wait_health "$front"
rm -f "$work/stop"; poll "$work/haproxy.peak" haproxy-n1:"$p1" haproxy-n2:"$p2" haproxy-n3:"$p3"; poller=$!
replay haproxy "http://127.0.0.1:$front" yes "$p2" 2
touch "$work/stop"; wait "$poller"
kill "$haproxy_pid" 2>/dev/null || true
for n in haproxy-n1 haproxy-n2 haproxy-n3; do kill_node "$n"; done

# --- one node alone ----------------------------------------------------------
p1=$(free_port)
start_node one-n1 "$p1" 2
rm -f "$work/stop"; poll "$work/one.peak" one-n1:"$p1"; poller=$!
replay one "http://127.0.0.1:$p1" no "" 2
touch "$work/stop"; wait "$poller"
kill_node one-n1

python3 - "$work" "$budget" <<'PY'
import glob, json, os, sys
work, budget = sys.argv[1], int(sys.argv[2])
mib = lambda b: f"{b / 2**20:.0f}"
print(f"| system | requests | failed | of which mid-stream | loads | p50 ms | p95 ms | "
      f"peak model bytes per node, MiB (budget {mib(budget)}) | peak RSS per node, MiB |")
print("|---|---|---|---|---|---|---|---|---|")
rows = [("calm", "calm placing models"), ("haproxy", "HAProxy round robin"), ("one", "one node alone")]
worst = {}
for label, name in rows:
    data = json.load(open(f"{work}/{label}.json"))
    recs, summary = data["records"], data["summary"]
    failed = [r for r in recs if r["status"] != 200 or r["error"]]
    # Cut off after the answer had begun (an error event, or the stream broken).
    mid = [r for r in failed if r["status"] == 200 or "after HTTP 200" in r["error"]]
    loads = sum(open(f).read().count("spawning server instance with name=")
                for f in glob.glob(f"{work}/{label}-n*.log"))
    peak = json.load(open(f"{work}/{label}.peak"))
    nodes = sorted(peak)
    worst[label] = max(peak[n]["bytes"] for n in nodes)
    print(f"| {name} | {len(recs)} | {len(failed)} | {len(mid)} | {loads} | "
          f"{summary['latency_ms']['p50']:.0f} | {summary['latency_ms']['p95']:.0f} | "
          f"{' / '.join(mib(peak[n]['bytes']) for n in nodes)} | "
          f"{' / '.join(mib(peak[n]['rss']) for n in nodes)} |")
    for r in failed[:4]:
        print(f"  {label}: request {r['index']} ({r['model']}) status {r['status']}: {r['error'][:140]}")
state = json.load(open(f"{work}/calm.state")).get("placement") or {}
print(f"\ncalm's placement: {state.get('placed_on_holder')} on a node holding the model, "
      f"{state.get('placed_by_load')} by a load, {state.get('refused')} refused for a moment; "
      f"worst node peak {mib(worst['calm'])} MiB of {mib(budget)}")
PY

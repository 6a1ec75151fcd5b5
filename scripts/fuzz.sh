#!/usr/bin/env bash
# The libFuzzer harnesses of fuzz/ (one per parser of untrusted input, see
# fuzz/CMakeLists.txt), built with clang and ASan + UBSan into build-fuzz/.
#
#   scripts/fuzz.sh build                  installs what is missing, builds every harness
#   scripts/fuzz.sh run [SECONDS] [NAME..] each harness for SECONDS (default 60) on a copy
#                                          of its seeds; exits 1 on any crash
#   scripts/fuzz.sh long [NAME...]         the long runs: each harness until 10 million
#                                          executions or an hour, whichever comes first
#   scripts/fuzz.sh list                   the harness names
#
# Both run and long print a table (harness, executions, seconds, exec/s, cov,
# crashes) and keep each harness's log and findings under
# build-fuzz/run/NAME/ (long: build-fuzz/long/NAME/). A finding (crash-*,
# leak-*, timeout-*, oom-* in that folder) replays with
#   build-fuzz/NAME_fuzzer FILE
# Env: CALM_JOBS (build jobs, default nproc); CALM_FUZZ_LONG_RUNS and
# CALM_FUZZ_LONG_SECONDS (the long runs' bounds, default 10000000 and 3600);
# CALM_FUZZ_TIMEOUT (seconds one input may take before it counts as a hang:
# 10 for run, 30 for long, whose hour usually shares the machine: beside two
# builds, inputs that take 9 ms to 1 s alone were once stopped past 10 s).
set -euo pipefail
cd "$(dirname "$0")/.."

dir=build-fuzz
log() { echo "[fuzz] $*" >&2; }

build() {
  scripts/install-deps.sh
  local prefix
  prefix=$(scripts/build-llama-cpp.sh | tail -n 1)
  export CCACHE_BASEDIR="$PWD"
  local launcher=()
  command -v ccache >/dev/null && launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  if [ ! -f "$dir/CMakeCache.txt" ] || ! grep -q "CALM_LLAMA_PREFIX:PATH=$prefix\$" "$dir/CMakeCache.txt"; then
    cmake -S fuzz -B "$dir" -G Ninja -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
      -DCALM_LLAMA_PREFIX="$prefix" "${launcher[@]}" >/dev/null
  fi
  local start
  start=$(date +%s)
  cmake --build "$dir" -j "${CALM_JOBS:-$(nproc)}"
  log "built in $(($(date +%s) - start)) s"
}

names() {
  [ -f "$dir/fuzzers.txt" ] || { log "no $dir/fuzzers.txt: run scripts/fuzz.sh build first"; exit 2; }
  cat "$dir/fuzzers.txt"
}

# fuzz_one OUT NAME LIBFUZZER-ARGS...: runs one harness on a fresh copy of its
# seeds with its log and findings in OUT/NAME/, then prints its table row.
# Returns 1 when it found anything.
fuzz_one() {
  local out=$1/$2 name=$2
  shift 2
  rm -rf "$out" && mkdir -p "$out/corpus" "$out/findings"
  cp -r "fuzz/corpus/$name/." "$out/corpus/"
  local dict=()
  [ -f "fuzz/$name.dict" ] && dict=(-dict="fuzz/$name.dict")
  local start rc=0
  start=$(date +%s)
  # Every report goes to the log; -timeout: an input that takes longer is a
  # hang; stdin is empty, so that no input can make a harness wait on it.
  ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1}" \
  LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$PWD/fuzz/lsan.supp:print_suppressions=0}" \
  UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}" \
    "$dir/${name}_fuzzer" "$@" "${dict[@]}" -timeout="$timeout" -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$out/findings/" "$out/corpus" </dev/null >"$out/log" 2>&1 || rc=$?
  local took=$(($(date +%s) - start))
  local execs cov findings
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/log" | tail -n 1)
  cov=$(grep -o 'cov: [0-9]*' "$out/log" | tail -n 1 | cut -d' ' -f2)
  findings=$(find "$out/findings" -type f | wc -l)
  # A crash that libFuzzer could not save (say, a fatal signal in its own
  # code) still ends the run with a non-zero exit.
  [ "$rc" -ne 0 ] && [ "$findings" -eq 0 ] && findings=1
  printf '%-14s %12s %8s %9s %6s %8s\n' "$name" "${execs:-?}" "$took" \
    "$([ -n "$execs" ] && [ "$took" -gt 0 ] && echo $((execs / took)) || echo '?')" "${cov:-?}" "$findings"
  if [ "$findings" -ne 0 ]; then
    log "$name: FOUND something (exit $rc); see $out/log and $out/findings/"
    return 1
  fi
}

# fuzz_all OUT NAMES LIBFUZZER-ARGS...
fuzz_all() {
  local out=$1 list=$2
  shift 2
  local rc=0 start
  start=$(date +%s)
  printf '%-14s %12s %8s %9s %6s %8s\n' harness executions seconds exec/s cov crashes
  for name in $list; do
    [ -x "$dir/${name}_fuzzer" ] || { log "no harness $name (scripts/fuzz.sh list)"; exit 2; }
    fuzz_one "$out" "$name" "$@" || rc=1
  done
  log "total $(($(date +%s) - start)) s, $([ $rc -eq 0 ] && echo 'no crash' || echo 'FOUND CRASHES')"
  return "$rc"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  build) build ;;
  list) names ;;
  run)
    seconds=${1:-60}
    [ $# -gt 0 ] && shift
    [ -x "$dir/request_body_fuzzer" ] || build
    list=${*:-$(names)}
    timeout=${CALM_FUZZ_TIMEOUT:-10}
    fuzz_all "$dir/run" "$list" -max_total_time="$seconds"
    ;;
  long)
    [ -x "$dir/request_body_fuzzer" ] || build
    list=${*:-$(names)}
    timeout=${CALM_FUZZ_TIMEOUT:-30}
    fuzz_all "$dir/long" "$list" -runs="${CALM_FUZZ_LONG_RUNS:-10000000}" \
      -max_total_time="${CALM_FUZZ_LONG_SECONDS:-3600}"
    ;;
  *)
    echo "usage: scripts/fuzz.sh build | run [SECONDS] [NAME...] | long [NAME...] | list" >&2
    exit 2
    ;;
esac

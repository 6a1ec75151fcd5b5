#!/usr/bin/env bash
# Builds calm with sanitizers and runs the whole ctest suite under them:
#   scripts/sanitize.sh asan [ctest args...]   AddressSanitizer + UBSan (and LeakSanitizer), build-asan/
#   scripts/sanitize.sh tsan [ctest args...]   ThreadSanitizer, build-tsan/
# Only calm's code is instrumented (-DCALM_SANITIZE); llama.cpp is the cached
# build of scripts/build-llama-cpp.sh, and scripts/sanitizers/*.supp say what
# in it (and in ggml's OpenMP threads) the runtimes must not report.
#
# Every report, from a test binary or from a `calm serve` a test started,
# goes to a file under BUILD/sanitizer-logs/ (log_path), so a report in a
# child process that its test did not notice still fails the run: the script
# exits 1 when ctest fails or when any report file is left.
# Env: CALM_JOBS (build jobs, default nproc), CALM_TEST_JOBS (ctest -j, default 2).
set -euo pipefail
cd "$(dirname "$0")/.."

kind=${1:-}
case "$kind" in
  asan) sanitize=address,undefined ;;
  tsan) sanitize=thread ;;
  *) echo "usage: scripts/sanitize.sh asan|tsan [ctest args...]" >&2; exit 2 ;;
esac
shift
dir=build-$kind
supp=$PWD/scripts/sanitizers
log() { echo "[sanitize $kind] $*" >&2; }

scripts/install-deps.sh
prefix=$(scripts/build-llama-cpp.sh | tail -n 1)
export CCACHE_BASEDIR="$PWD"
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
if [ ! -f "$dir/CMakeCache.txt" ] || ! grep -q "CALM_LLAMA_PREFIX:PATH=$prefix\$" "$dir/CMakeCache.txt"; then
  # -O1 -g: readable stacks at a bearable speed.
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
    -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" -DCALM_SANITIZE="$sanitize" -DCALM_LLAMA_PREFIX="$prefix" \
    "${launcher[@]}" >/dev/null
fi
# GCC 12's TSan runtime cannot place its shadow memory when the kernel
# randomises mmap with more than 28 bits (newer kernels allow 32): every
# instrumented binary then dies at start, including the test discovery that
# the build runs. Without address randomisation (setarch -R, inherited by
# every child) it works on any such kernel.
run=()
if [ "$kind" = tsan ] && [ "$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 0)" -gt 28 ]; then
  run=(setarch "$(uname -m)" -R)
  log "vm.mmap_rnd_bits is above 28: building and testing without address randomisation"
fi
start=$(date +%s)
# What the suite runs (not the benchmarks, nor tokenize-corpus: no test uses them).
"${run[@]}" cmake --build "$dir" -j "${CALM_JOBS:-$(nproc)}" --target calm calm_unit_tests \
  calm_integration_tests test_models convert-glove
built=$(date +%s)
log "built in $((built - start)) s"
scripts/fetch-glove.sh "$dir/convert-glove" >/dev/null
(cd tests/node && npm ci --no-audit --no-fund --silent)

logs=$PWD/$dir/sanitizer-logs
rm -rf "$logs" && mkdir -p "$logs"
common="print_stacktrace=1:log_path=$logs/report"
# quarantine_size_mb=16: ASan's default 256 MB quarantine of freed blocks
# would swell the RSS that /v1/calm/state and the cache's logs show as a
# cross-check (the charge itself comes from llama.cpp's figures).
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:quarantine_size_mb=16:strict_string_checks=1:detect_stack_use_after_return=1:$common"
export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="halt_on_error=1:suppressions=$supp/ubsan.supp:print_suppressions=0:$common"
# A race report is no crash: TSan goes on, so one run lists every race (each
# still fails the run, by its report file and TSan's exit code 66).
export TSAN_OPTIONS="halt_on_error=0:second_deadlock_stack=1:suppressions=$supp/tsan.supp:print_suppressions=0:$common"

rc=0
"${run[@]}" ctest --test-dir "$dir" --output-on-failure -j "${CALM_TEST_JOBS:-2}" "$@" || rc=$?
log "tests ran in $(($(date +%s) - built)) s (ctest exit $rc)"

reports=$(find "$logs" -type f | sort)
if [ -n "$reports" ]; then
  for f in $reports; do
    echo "=== $f" >&2
    cat "$f" >&2
  done
  log "$(echo "$reports" | wc -l) sanitizer report file(s) under $logs"
  rc=1
fi
log "total $(($(date +%s) - start)) s, $([ $rc -eq 0 ] && echo passed || echo FAILED)"
exit $rc

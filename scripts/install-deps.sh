#!/usr/bin/env bash
# Installs the Debian packages calm builds and tests with, when any is missing.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config git ca-certificates
  nodejs npm
  libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev libyaml-cpp-dev libcli11-dev libspdlog-dev
  libcpp-httplib-dev libssl-dev zlib1g-dev libbrotli-dev
  libsqlite3-dev
  libpq-dev  # PostgreSQL client: knowledge shared by replicas
  postgresql  # a throwaway server per replica test (tests/support/postgres_server.h)
  haproxy  # the load balancer in front of replicas (integration tests, bench)
  libboost-dev  # Boost.Beast and Asio: the HTTP transport
  prometheus-cpp-dev  # the /metrics registry (prometheus-cpp core)
  prometheus  # promtool, which checks the /metrics output in the unit tests
  chromium    # headless, checks that the bench suite's HTML report renders (integration tests)
  clang-14 libclang-rt-14-dev  # libFuzzer and its sanitizer runtimes (scripts/fuzz.sh)
  iproute2  # ip netns: the nodes' network namespaces (integration tests)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# A machine with its own Node.js (not Debian's) needs no nodejs/npm package.
if command -v node >/dev/null && command -v npm >/dev/null; then
  missing=("${missing[@]/nodejs/}"); missing=("${missing[@]/npm/}")
fi
read -r -a missing <<<"${missing[*]}"
[ ${#missing[@]} -eq 0 ] && exit 0

echo "[install-deps] installing: ${missing[*]}" >&2
sudo=()
[ "$(id -u)" -ne 0 ] && sudo=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

#!/usr/bin/env bash
# The second README command: builds what is missing and runs every test
# (unit, integration against real `calm serve` and llama-server, and the
# official openai npm client).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/build.sh
(cd tests/node && npm ci --no-audit --no-fund --silent)
# The NodesInNamespaces tests make network namespaces (root and iproute2);
# where they cannot, they are skipped, and this says so up front.
if ! ip netns add "calm-probe-$$" 2>/dev/null; then
  echo "[test] network namespaces cannot be made here (they need root and iproute2):" \
    "NodesInNamespaces.* will be skipped" >&2
else
  ip netns del "calm-probe-$$"
fi
# The replica tests start their own PostgreSQL server and HAProxy (Debian's
# postgresql and haproxy, which scripts/install-deps.sh installs); where
# either is missing they are skipped, and this says so up front.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || [ ! -x /usr/sbin/haproxy ]; then
  echo "[test] no PostgreSQL server or HAProxy here: KnowledgePostgres.* and Replicas.*" \
    "will be skipped" >&2
fi
ctest --test-dir build --output-on-failure -j "${CALM_TEST_JOBS:-2}" "$@"

#!/usr/bin/env bash
# The second README command: builds what is missing and runs every test
# (unit, integration against real `calm serve` and llama-server, and the
# official openai npm client).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/build.sh
(cd tests/node && npm ci --no-audit --no-fund --silent)
ctest --test-dir build --output-on-failure -j "${CALM_TEST_JOBS:-2}" "$@"

#!/usr/bin/env bash
# The first README command: builds what is missing and serves the built-in
# demo fleet, five trained domain specialists (fleet/README.md), on
# http://127.0.0.1:8080 (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/build.sh
exec build/calm serve --config demo/fleet.yaml "$@"

#!/usr/bin/env bash
# The first README command: builds what is missing, makes the built-in demo
# fleet and serves it on http://127.0.0.1:8080 (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/build.sh
models=build/demo-models
mkdir -p "$models"
make_model() {  # name seed extra-args...
  local out="$models/$1.gguf"
  [ -f "$out" ] || build/make-tiny-gguf --out "$out" --seed "$2" --name "$1" "${@:3}"
}
make_model demo-chat 11
make_model demo-wide 12 --dim 128 --layers 4 --vocab 2000
make_model demo-plain 13 --chat-template none
exec build/calm serve --config demo/fleet.yaml "$@"

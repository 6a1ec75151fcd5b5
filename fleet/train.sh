#!/usr/bin/env bash
# The evaluation fleet's whole recipe: data, tokens, training, GGUF export and
# held-out perplexities (fleet/README.md). Writes fleet/models/*.gguf and
# fleet/models/fleet.json. 20 to 30 minutes on 2 cores (fleet/README.md); CI never
# runs it.
# Needs Debian's PyTorch: apt-get install python3-torch libopenblas0-pthread
#   fleet/train.sh [train.py options, e.g. --only code-expert]
set -euo pipefail
cd "$(dirname "$0")/.."
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  echo "fleet/train.sh: needs Debian's PyTorch: apt-get install python3-torch libopenblas0-pthread" >&2
  exit 2
fi
fleet/prepare.sh build
/usr/bin/python3 fleet/train.py --data build/fleet-data --out fleet/models --work build/fleet-train "$@"

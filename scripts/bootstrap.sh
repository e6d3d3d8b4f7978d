#!/usr/bin/env bash
# Create .venv (if missing) and install berg_ray into it. Usage: source scripts/bootstrap.sh [EXTRAS]
# torch is pinned to the CPU wheel these machines carry; on a GPU machine install a CUDA torch first.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
extras="${1:-}"
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${extras:+[$extras]}"

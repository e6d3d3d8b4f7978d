#!/usr/bin/env bash
# Create .venv (if missing) and install berg_ray into it. Usage: source scripts/bootstrap.sh [EXTRAS]
# torch is pinned to the CPU wheel these machines carry; on a GPU machine install a CUDA torch first.
# Prints one line per step and each package as pip collects it, so a first install (a few minutes) is never silent.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
step() { printf 'berg_ray setup: %s\n' "$*"; }
# pip's own lines worth seeing: each package collected, the final summary, and errors (not its per-index warnings)
pip_progress() { awk '/^(Collecting|Installing collected|Successfully installed|ERROR)/ { print "  " $0; fflush() }'; }
if [ ! -x .venv/bin/python ]; then
  step "creating .venv with $("$PYTHON" --version 2>&1)"
  "$PYTHON" -m venv .venv
fi
extras="${1:-}"
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  step "installing torch 2.13.0 (CPU wheel, about 200 MB)"
  .venv/bin/python -m pip install --disable-pip-version-check "torch==2.13.0" 2>&1 | pip_progress
fi
step "installing berg_ray${extras:+[$extras]} and its dependencies (Ray, PyArrow, PyAV, ...); the first time takes a few minutes"
.venv/bin/python -m pip install --disable-pip-version-check -e ".${extras:+[$extras]}" 2>&1 | pip_progress
versions=$(.venv/bin/python -c 'from importlib.metadata import version as v; print(", ".join(f"{p} {v(p)}" for p in ("berg_ray", "torch", "ray")))')
step "done: $versions"

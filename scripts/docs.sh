#!/usr/bin/env bash
# Serve the documentation site (docs/, mkdocs.yml) at http://127.0.0.1:8000, rebuilt on every edit.
#   bash scripts/docs.sh                       # installs the docs extra into .venv first (scripts/bootstrap.sh)
#   bash scripts/docs.sh -a 127.0.0.1:8001     # further arguments go to mkdocs serve
# `mkdocs build --strict` (what tests/test_docs.py runs) writes the static site to site/ instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh docs
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the hooks import berg_ray from this checkout
exec .venv/bin/python -m mkdocs serve "$@"

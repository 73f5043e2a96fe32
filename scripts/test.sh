#!/usr/bin/env bash
# Install what is needed, lint and type-check, then run the test suite: `bash scripts/test.sh [pytest args]`.
# The suite starts real tritonserver and gateway processes on free loopback ports, offline.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/bootstrap.sh test,weights
export HF_HUB_OFFLINE=1
.venv/bin/ruff check .
.venv/bin/mypy
set +e
.venv/bin/python -m pytest -m "not slow" "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: failing" >&2
  exit 1
fi
exit "$status"

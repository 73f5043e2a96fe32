#!/usr/bin/env bash
# Create .venv (if needed) and install pattern-tts with the given extras: bootstrap.sh [EXTRAS].
# Sourced by serve.sh and test.sh; safe to run again (pip skips what is installed).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EXTRAS="${1:-}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$ROOT/.venv/bin/python" ]; then
  "$PYTHON" -m venv "$ROOT/.venv"
  "$ROOT/.venv/bin/python" -m pip install --quiet --upgrade pip
fi
# torch is pinned in pyproject.toml (a CPU build; an unpinned torch pulls CUDA wheels), numpy < 2
# for Triton 2.51's python-backend stub.
spec="$ROOT"
[ -n "$EXTRAS" ] && spec="$ROOT[$EXTRAS]"
"$ROOT/.venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$spec"

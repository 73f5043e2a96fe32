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
# jemalloc for Triton's model processes (pattern_tts/allocator.py): the system's when installed,
# else Debian's libjemalloc2 unpacked into .venv/lib when apt-get can fetch it (no root needed).
# Optional: without it the model processes use glibc malloc, which uses more memory on long inputs.
jemalloc_found() {  # the same search as the launcher's (pattern_tts/allocator.py)
  "$ROOT/.venv/bin/python" -c 'import sys; from pattern_tts.allocator import find_jemalloc; sys.exit(find_jemalloc() is None)'
}
if ! jemalloc_found && command -v apt-get > /dev/null && command -v dpkg-deb > /dev/null; then
  tmp="$(mktemp -d)"
  if (cd "$tmp" && apt-get download -qq libjemalloc2 > /dev/null 2>&1) \
    && dpkg-deb -x "$tmp"/libjemalloc2_*.deb "$tmp/root"; then
    cp "$tmp"/root/usr/lib/*/libjemalloc.so.2 "$ROOT/.venv/lib/"
  else
    echo "bootstrap: could not fetch libjemalloc2; Triton will use glibc malloc" >&2
  fi
  rm -rf "$tmp"
fi

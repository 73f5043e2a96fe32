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
# A shared library from a Debian package, unpacked into .venv/lib (no root needed) when apt-get can
# fetch it: unpack_deb_lib PACKAGE LIBRARY.
unpack_deb_lib() {
  command -v apt-get > /dev/null && command -v dpkg-deb > /dev/null || return 1
  local tmp status=0
  tmp="$(mktemp -d)"
  (cd "$tmp" && apt-get download -qq "$1" > /dev/null 2>&1) && dpkg-deb -x "$tmp/$1"_*.deb "$tmp/root" \
    && cp "$tmp"/root/usr/lib/*/"$2" "$ROOT/.venv/lib/" || status=1
  rm -rf "$tmp"
  return "$status"
}
# jemalloc for Triton's model processes (pattern_tts/allocator.py): the system's when installed,
# else Debian's libjemalloc2 in .venv/lib.
# Optional: without it the model processes use glibc malloc, which uses more memory on long inputs.
jemalloc_found() {  # the same search as the launcher's (pattern_tts/allocator.py)
  "$ROOT/.venv/bin/python" -c 'import sys; from pattern_tts.allocator import find_jemalloc; sys.exit(find_jemalloc() is None)'
}
if ! jemalloc_found && ! unpack_deb_lib libjemalloc2 libjemalloc.so.2; then
  echo "bootstrap: could not fetch libjemalloc2; Triton will use glibc malloc" >&2
fi
# libb64 for perf_analyzer (scripts/perf_analyzer.sh): the system's when installed, else Debian's libb64-0d.
if ! ldconfig -p 2> /dev/null | grep 'libb64\.so\.0d' > /dev/null && [ ! -f "$ROOT/.venv/lib/libb64.so.0d" ] \
  && ! unpack_deb_lib libb64-0d libb64.so.0d; then
  echo "bootstrap: could not fetch libb64-0d; scripts/perf_analyzer.sh will not start" >&2
fi

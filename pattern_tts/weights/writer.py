"""Write a weights directory in the layout KModel and the Triton model load."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pattern_tts.weights.architecture import CONFIG_NAME, MODEL_NAME, VOICE_SHAPE, VOICES_DIR


def write_weights(
    root: Path,
    config: Mapping[str, Any],
    state_dicts: Mapping[str, Mapping[str, torch.Tensor]],
    voices: Mapping[str, np.ndarray | torch.Tensor],
) -> None:
    """Write config.json, kokoro-v1_0.pth ({submodule: state_dict}) and voices/<name>.pt [510, 1, 256]."""
    root = Path(root)
    (root / CONFIG_NAME).write_text(json.dumps(config, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    torch.save({name: dict(sd) for name, sd in state_dicts.items()}, root / MODEL_NAME)
    (root / VOICES_DIR).mkdir(exist_ok=True)
    for name, pack in voices.items():
        tensor = torch.as_tensor(np.asarray(pack, np.float32)).reshape(VOICE_SHAPE).contiguous()
        torch.save(tensor, root / VOICES_DIR / f"{name}.pt")

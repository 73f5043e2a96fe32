"""Kokoro v1.0 (hexgrad/Kokoro-82M) architecture: the `config.json` fields KModel reads, and file names."""

from __future__ import annotations

import copy
import json
from importlib import resources
from pathlib import Path
from typing import Any

HUB_REPO_ID = "hexgrad/Kokoro-82M"
CONFIG_NAME = "config.json"
MODEL_NAME = "kokoro-v1_0.pth"
VOICES_DIR = "voices"
MANIFEST_NAME = "pattern-tts-weights.json"
#: Top-level keys of the `.pth` file: one state dict per KModel submodule.
SUBMODULES = ("bert", "bert_encoder", "predictor", "text_encoder", "decoder")
#: Rows of a voice pack: one style vector per phoneme-sequence length.
VOICE_SHAPE = (510, 1, 256)

_ARCHITECTURE: dict[str, Any] = {
    "istftnet": {
        "upsample_kernel_sizes": [20, 12],
        "upsample_rates": [10, 6],
        "gen_istft_hop_size": 5,
        "gen_istft_n_fft": 20,
        "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
        "resblock_kernel_sizes": [3, 7, 11],
        "upsample_initial_channel": 512,
    },
    "dim_in": 64,
    "dropout": 0.2,
    "hidden_dim": 512,
    "max_conv_dim": 512,
    "max_dur": 50,
    "multispeaker": True,
    "n_layer": 3,
    "n_mels": 80,
    "n_token": 178,
    "style_dim": 128,
    "text_encoder_kernel_size": 5,
    "plbert": {
        "hidden_size": 768,
        "num_attention_heads": 12,
        "intermediate_size": 2048,
        "max_position_embeddings": 512,
        "num_hidden_layers": 12,
        "dropout": 0.1,
    },
}


def kokoro_vocab() -> dict[str, int]:
    """Kokoro v1.0's phoneme vocabulary (the ``vocab`` of its config.json, shipped beside the
    synthesis code). Needs neither torch nor misaki: the gateway reads it too."""
    text = resources.files("pattern_tts.synthesis").joinpath("kokoro_vocab.json").read_text(encoding="utf-8")
    vocab: dict[str, int] = json.loads(text)
    return vocab


def load_vocab(path: str | Path) -> dict[str, int]:
    """The ``vocab`` of a Kokoro ``config.json`` (``path`` is the file or the weights directory).
    Needs neither torch nor misaki: the gateway reads it too."""
    path = Path(path)
    if path.is_dir():
        path = path / CONFIG_NAME
    vocab = json.loads(path.read_text(encoding="utf-8"))["vocab"]
    if not isinstance(vocab, dict) or not all(isinstance(k, str) and len(k) == 1 for k in vocab):
        raise ValueError(f"{path}: 'vocab' must map single characters to ids")
    return {k: int(v) for k, v in vocab.items()}


def kokoro_v1_config(vocab: dict[str, int]) -> dict[str, Any]:
    """The full Kokoro v1.0 `config.json` with the given phoneme vocabulary."""
    config = copy.deepcopy(_ARCHITECTURE)
    config["vocab"] = dict(vocab)
    return config

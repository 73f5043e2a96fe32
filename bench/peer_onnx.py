"""The peer: onnxruntime on the packaged int8 Kokoro v1.0 ONNX model, timed in-process.

This is what kokoro-onnx-based servers run (one ``InferenceSession``, one request at a time). Timed
directly in-process (no HTTP): the figures flatter the peer slightly.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from pattern_tts.weights import packaged

SAMPLE_RATE = 24_000


def available() -> bool:
    """Whether onnxruntime and the packaged int8 model are installed."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return packaged.packaged_available()


class Peer:
    """An onnxruntime CPU session on the int8 model with one voice."""

    def __init__(self, voice: str = "jf_alpha", threads: int = 2) -> None:
        import onnxruntime as ort

        files = packaged.describe()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(
            packaged.read_onnx_bytes(files.expected_sha256), opts, providers=["CPUExecutionProvider"]
        )
        self.vocab = packaged.read_vocab()
        self.voice = packaged.read_voices()[voice]
        self.voice_name = voice

    def synthesize(self, phonemes: str, speed: float = 1.0) -> np.ndarray:
        """Audio of one <= 510-symbol phoneme chunk."""
        ids = [self.vocab[c] for c in phonemes if c in self.vocab][:510]
        style = self.voice[len(ids)].reshape(1, 256).astype(np.float32)
        (audio,) = self.session.run(
            [self.session.get_outputs()[0].name],
            {
                "tokens": np.array([[0, *ids, 0]], np.int64),
                "style": style,
                "speed": np.array([speed], np.float32),
            },
        )
        return np.asarray(audio, np.float32).ravel()

    def request(self, chunks: list[str]) -> dict[str, Any]:
        """One request of several chunks, serially: latency, time to the first chunk, audio seconds."""
        start = time.perf_counter()
        first = 0.0
        samples = 0
        for phonemes in chunks:
            samples += len(self.synthesize(phonemes))
            first = first or time.perf_counter() - start
        return {"latency_s": time.perf_counter() - start, "ttfb_s": first, "audio_s": samples / SAMPLE_RATE}

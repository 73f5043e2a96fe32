"""The stack on real Kokoro v1.0 weights (converted from the packaged model): what random weights
cannot show. Word timestamps line up with the audio: the pauses between sentences fall between the
words around them."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.conftest import Stack, serve_stack

TEXT = "The rain fell on the sea. Then the sun came out. I saw a bird in the tree. It flew away to the south."
QUIET_DB = -40.0  # below the loudest 10 ms window
MIN_PAUSE_S = 0.1
TOLERANCE_S = 0.05


@pytest.fixture(scope="module")
def real_stack(packaged_weights_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with serve_stack(packaged_weights_dir, tmp_path_factory.mktemp("real-stack")) as running:
        yield running


def pauses(samples: np.ndarray, rate: int, window_s: float = 0.01) -> list[tuple[float, float]]:
    """(start, end) seconds of every run of windows at least ``MIN_PAUSE_S`` long and ``QUIET_DB``
    below the loudest window."""
    win = int(rate * window_s)
    frames = samples[: len(samples) // win * win].astype(np.float64).reshape(-1, win)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    quiet = 20 * np.log10(rms / rms.max() + 1e-12) < QUIET_DB
    runs, start = [], None
    for i, q in enumerate([*quiet, False]):
        if q and start is None:
            start = i
        elif not q and start is not None:
            if (i - start) * window_s >= MIN_PAUSE_S:
                runs.append((start * window_s, i * window_s))
            start = None
    return runs


def test_pauses_between_sentences_fall_between_the_words_around_them(real_stack: Stack) -> None:
    body = {"model": "kokoro", "input": TEXT, "voice": "jf_alpha", "lang": "a", "response_format": "pcm"}
    response = httpx.post(f"{real_stack.gateway_url}/v1/audio/speech/timestamps", json=body, timeout=300)
    assert response.status_code == 200, response.text
    result = response.json()
    samples = np.frombuffer(base64.b64decode(result["audio"]), dtype="<i2")
    words = result["words"]
    assert [w["word"] for w in words] == [w.strip(".") for w in TEXT.split()]

    # Sentence boundaries: (last word of a sentence, first word of the next).
    boundaries = [(words[i], words[i + 1]) for i, w in enumerate(TEXT.split()[:-1]) if w.endswith(".")]
    assert len(boundaries) == 3
    inner = [p for p in pauses(samples, result["sample_rate"]) if words[0]["end"] < p[0] and p[1] < words[-1]["start"]]

    def between(pause: tuple[float, float], last: dict, first: dict) -> bool:
        return last["start"] <= pause[0] and pause[1] <= first["start"] + TOLERANCE_S

    for last, first in boundaries:
        assert any(between(p, last, first) for p in inner), (last, first, inner)
    for pause in inner:  # and no pause falls inside a sentence
        assert any(between(pause, last, first) for last, first in boundaries), (pause, words)

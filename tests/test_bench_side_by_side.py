"""bench/side_by_side.py: variants timed in alternating order, and their rows against a reference."""

from __future__ import annotations

import torch

from bench.side_by_side import alternating_rtf, variant_rows
from pattern_tts.synthesis.batched import BatchOutput


def output(audio: list[float], durations: list[int]) -> BatchOutput:
    return BatchOutput(audio=torch.tensor(audio), durations=torch.tensor(durations))


def test_rounds_alternate_their_order() -> None:
    calls: list[str] = []

    def synthesize(name: str) -> list[BatchOutput]:
        calls.append(name)
        return []

    rtf = alternating_rtf(["a", "b"], synthesize, audio_s=10.0, rounds=3)
    assert calls == ["a", "b", "b", "a", "a", "b"]
    assert {name: len(values) for name, values in rtf.items()} == {"a": 3, "b": 3}


def test_rows_compare_each_variant_with_the_baseline_and_the_reference() -> None:
    reference = [output([1.0, -1.0, 0.5], [2, 3]), output([0.2, 0.4], [1])]
    outputs = {
        "same": reference,
        "other": [output([1.0, -1.0, 0.5], [2, 4]), output([0.2, 0.5], [1])],
    }
    rtf = {"same": [0.4, 0.5, 0.6], "other": [0.2, 0.3, 0.9]}
    rows = variant_rows(rtf, {"same": 1.0, "other": 2.0}, outputs, reference, "same", "vs_same")
    same, other = rows
    assert same["rtf_median"] == 0.5 and same["vs_same"] == 1.0 and same["same_durations"] == 2
    assert other["rtf_median"] == 0.3 and other["vs_same"] == 0.6 and other["first_call_s"] == 2.0
    assert other["same_durations"] == 1
    assert other["snr_db"][0] > 100 and other["snr_db"][1] < 20

"""Variants of the kokoro model's decode timed side by side on the same items: first calls, rounds in
alternating order, and a row per variant against a reference's audio (bench.fp32_path,
bench.spectral_convs)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from pattern_tts.synthesis.batched import BatchOutput
from pattern_tts.weights.parity import snr_db

Synthesize = Callable[[str], list[BatchOutput]]  # a variant's name -> its outputs, one per item


def first_calls(names: Sequence[str], synthesize: Synthesize) -> tuple[dict[str, list[BatchOutput]], dict[str, float]]:
    """Each variant's outputs and the seconds of its first call (compiling included)."""
    outputs: dict[str, list[BatchOutput]] = {}
    seconds: dict[str, float] = {}
    for name in names:
        start = time.perf_counter()
        outputs[name] = synthesize(name)
        seconds[name] = round(time.perf_counter() - start, 2)
        print(f"{name}: first call {seconds[name]} s", flush=True)
    return outputs, seconds


def alternating_rtf(
    names: Sequence[str], synthesize: Synthesize, audio_s: float, rounds: int
) -> dict[str, list[float]]:
    """Each variant's real-time factor per round; the order reverses every round, since this machine's
    speed drifts over minutes."""
    rtf: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(rounds):
        for name in names if round_ % 2 == 0 else list(reversed(names)):
            start = time.perf_counter()
            synthesize(name)
            rtf[name].append(round((time.perf_counter() - start) / audio_s, 4))
        print(f"round {round_ + 1}: " + ", ".join(f"{n} {rtf[n][-1]}" for n in names), flush=True)
    return rtf


def variant_rows(
    rtf: dict[str, list[float]],
    first_call: dict[str, float],
    outputs: dict[str, list[BatchOutput]],
    reference: list[BatchOutput],
    baseline: str,
    ratio_key: str,
) -> list[dict[str, Any]]:
    """A row per variant: median RTF, its ratio to ``baseline``'s (as ``ratio_key``), first call, and
    per item the waveform SNR and equal durations against ``reference``."""
    median = {name: statistics.median(values) for name, values in rtf.items()}
    return [
        {
            "variant": name,
            "rtf_median": round(median[name], 4),
            "rtf_rounds": rtf[name],
            ratio_key: round(median[name] / median[baseline], 3),
            "first_call_s": first_call[name],
            "snr_db": [round(snr_db(r.audio, o.audio), 1) for r, o in zip(reference, outputs[name], strict=True)],
            "same_durations": sum(
                torch.equal(r.durations, o.durations) for r, o in zip(reference, outputs[name], strict=True)
            ),
        }
        for name in rtf
    ]


__all__ = ["alternating_rtf", "first_calls", "variant_rows"]

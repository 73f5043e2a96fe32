"""Frequency-domain resblock convolutions on the float32 CPU path, measured side by side with oneDNN's.

    flock /tmp/pattern-tts-bench.lock .venv/bin/python -m bench.spectral_convs [--weights DIR] [--rounds 5]

Two parts, both float32 with the CPU quota's threads:

* Each shape of the generator's resblock convolutions for a 5 s item (256 channels x 4,000 frames
  and 128 channels x 24,000 frames; kernels 3, 7 and 11; dilations 1, 3 and 5), time-major: oneDNN's
  (``BatchedKokoro._conv``) against ``spectral_conv1d`` whatever the kernel, median ms of 5 calls each,
  and the relative error of the spectral output. This is what ``SPECTRAL_MIN_KERNEL`` is chosen from.
* End to end: the kokoro model's fast path on this CPU (compiled, time-major) with and without
  ``spectral_convs`` on the concurrency-1 sentences of ``bench.run``, one item at a time as the
  kokoro model decodes on CPU, in alternating rounds (the order reverses every round). Each is
  compared with float32 eager channels-first ``BatchedKokoro``, the fidelity guard's reference:
  waveform SNR and equal durations per sentence.

Prints both tables and writes ``bench/results/spectral-convs-<date>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path
from typing import Any

import torch

from bench.int8_convs import median_ms
from bench.side_by_side import alternating_rtf, first_calls, variant_rows
from bench.workload import CACHE, Plan, make_workload, resolve_weights
from pattern_tts.cpu import cpu_flags, cpu_model, cpu_quota
from pattern_tts.synthesis.batched import SPECTRAL_MIN_KERNEL, BatchedKokoro, BatchItem, BatchOutput
from pattern_tts.synthesis.engine import KokoroEngine, SynthesisRequest
from pattern_tts.synthesis.fastpath import configure_compile_cache
from pattern_tts.synthesis.kokoro_model import KModel
from pattern_tts.synthesis.spectral_conv import spectral_conv1d

RESULTS = Path(__file__).resolve().parent / "results"
SHAPES = [(256, 4_000), (128, 24_000)]  # (channels, frames) of the generator's two stages, 5 s of audio
KERNELS = [(3, 1), (3, 5), (7, 1), (7, 5), (11, 1), (11, 3), (11, 5)]
REFERENCE = "eager, channels first"
DIRECT, SPECTRAL = "compiled, time-major (oneDNN convolutions)", "compiled, time-major, spectral convolutions"


def conv_rows(model: KModel) -> list[dict[str, Any]]:
    """Each resblock convolution shape, oneDNN (``BatchedKokoro._conv``) against ``spectral_conv1d``."""
    direct = BatchedKokoro(model)
    rows = []
    with torch.no_grad():
        for channels, frames in SHAPES:
            x = direct._time_major(torch.randn(1, channels, frames))
            for kernel, dilation in KERNELS:
                padding = dilation * (kernel - 1) // 2
                conv = torch.nn.Conv1d(channels, channels, kernel, dilation=dilation, padding=padding)
                ref = direct._conv(conv, x)
                out = spectral_conv1d(x, conv.weight, conv.bias, dilation)
                row = {
                    "channels": channels,
                    "frames": frames,
                    "kernel": kernel,
                    "dilation": dilation,
                    "onednn_ms": round(median_ms(lambda: direct._conv(conv, x), 5), 1),  # noqa: B023
                    "spectral_ms": round(median_ms(lambda: spectral_conv1d(x, conv.weight, conv.bias, dilation), 5), 1),  # noqa: B023
                    "relative_error": float(f"{((out - ref).norm() / ref.norm()).item():.1e}"),
                }
                row["speedup"] = round(row["onednn_ms"] / row["spectral_ms"], 2)
                rows.append(row)
                print(row, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, help="weights directory (default: as bench.run picks them)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, help="results file (default: bench/results/spectral-convs-<date>.json)")
    args = parser.parse_args()
    threads = cpu_quota()
    torch.set_num_threads(threads)
    weights, weights_kind, voice = resolve_weights(args.weights)
    configure_compile_cache(CACHE / "compile")

    engine = KokoroEngine(weights)  # float32, weight norm folded
    convs = conv_rows(engine.model)
    phonemes = make_workload(Plan(quick=False), weights, voice).perf_entries()  # bench.run's c=1 chunks
    items: list[BatchItem] = [engine.prepare(SynthesisRequest(p, voice, seed=i)) for i, p in enumerate(phonemes)]
    reference = BatchedKokoro(engine.model)  # float32 eager, channels first: the guard's reference
    reference.time_major = False
    systems = {
        REFERENCE: reference,
        DIRECT: BatchedKokoro(engine.model, compile=True),
        SPECTRAL: BatchedKokoro(engine.model, compile=True, spectral_convs=True),
    }

    def synthesize(name: str) -> list[BatchOutput]:
        with torch.no_grad():
            return [systems[name]([item], batch_decoder=False)[0] for item in items]

    reference_outputs = synthesize(REFERENCE)
    audio_s = sum(len(o.audio) for o in reference_outputs) / 24_000
    outputs, first_call = first_calls([DIRECT, SPECTRAL], synthesize)
    rtf = alternating_rtf([DIRECT, SPECTRAL], synthesize, audio_s, args.rounds)
    rows = variant_rows(rtf, first_call, outputs, reference_outputs, DIRECT, "vs_onednn")
    flags = cpu_flags()
    result = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu": cpu_model() or "unknown",
        "cpu_features": {f: f in flags for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16")},
        "threads": threads,
        "torch": torch.__version__,
        "weights": weights_kind,
        "voice": voice,
        "spectral_min_kernel": SPECTRAL_MIN_KERNEL,
        "items": len(items),
        "audio_s": round(audio_s, 2),
        "rounds": args.rounds,
        "convs": convs,
        "rows": rows,
    }
    out = args.json or RESULTS / f"spectral-convs-{dt.date.today().isoformat()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{result['cpu']}, {threads} threads, {len(items)} items, {audio_s:.1f} s of audio, {args.rounds} rounds")
    for r in rows:
        print(f"{r['variant']:48s} RTF {r['rtf_median']:.3f} ({r['vs_onednn']}x)  SNR dB {r['snr_db']}")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()

"""The float32 path on CPU: the resblocks' memory layout and torch.compile, measured side by side.

    flock /tmp/pattern-tts-bench.lock .venv/bin/python -m bench.fp32_path [--weights DIR] [--rounds 5]

On CPUs without AVX-512 BF16 or AMX the kokoro model runs in float32 (``PATTERN_TTS_PRECISION=auto``),
so this is the path most CPUs serve. Four variants of ``BatchedKokoro`` on the same model, all
float32, one item at a time as the kokoro model decodes on CPU: eager or compiled (the fused
element-wise chains, ``pattern_tts/synthesis/fused.py``) times the generator's resblocks laid out
channels first or time-major (channels last). They run on the concurrency-1 sentences of
``bench.run`` in alternating rounds (the order reverses every round; this machine's speed drifts
over minutes), and each is compared with eager channels-first, the plain float32 path: waveform SNR
and equal durations per sentence. Also timed: one resblock convolution in both layouts (128
channels, kernel 11, dilation 5, 24,000 frames), and each variant's first call (compilation
included). Prints a table and writes ``bench/results/fp32-path-<date>.json``.
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
from pattern_tts.synthesis.batched import SAMPLES_PER_FRAME, BatchedKokoro, BatchItem
from pattern_tts.synthesis.engine import KokoroEngine, SynthesisRequest
from pattern_tts.synthesis.fastpath import configure_compile_cache, cpu_has_fast_bf16

RESULTS = Path(__file__).resolve().parent / "results"
REFERENCE = "eager, channels first"


def conv_ms(systems: dict[str, BatchedKokoro]) -> dict[str, float]:
    """One resblock convolution in float32 through ``BatchedKokoro._conv``, channels first and
    time-major."""
    conv = torch.nn.Conv1d(128, 128, 11, dilation=5, padding=25)
    x = torch.randn(1, 128, 24_000)
    channels_first, time_major = systems[REFERENCE], systems["eager, time-major"]
    x_time_major = time_major._time_major(x)
    with torch.no_grad():
        return {
            "channels first": median_ms(lambda: channels_first._conv(conv, x), 5),
            "time-major": median_ms(lambda: time_major._conv(conv, x_time_major), 5),
        }


def variants(engine: KokoroEngine) -> dict[str, BatchedKokoro]:
    out = {}
    for compiled in (False, True):
        for time_major in (False, True):
            batched = BatchedKokoro(engine.model, compile=compiled)
            batched.time_major = time_major
            name = f"{'compiled' if compiled else 'eager'}, {'time-major' if time_major else 'channels first'}"
            out[name] = batched
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, help="weights directory (default: as bench.run picks them)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: the CPU quota)")
    parser.add_argument("--json", type=Path, help="results file (default: bench/results/fp32-path-<date>.json)")
    args = parser.parse_args()
    threads = args.threads or cpu_quota()
    torch.set_num_threads(threads)
    weights, weights_kind, voice = resolve_weights(args.weights)
    configure_compile_cache(CACHE / "compile")

    engine = KokoroEngine(weights)  # float32, weight norm folded
    phonemes = make_workload(Plan(quick=False), weights, voice).perf_entries()  # bench.run's c=1 chunks
    items: list[BatchItem] = [engine.prepare(SynthesisRequest(p, voice, seed=i)) for i, p in enumerate(phonemes)]
    systems = variants(engine)

    def synthesize(name: str) -> list[Any]:
        with torch.no_grad():
            return [systems[name]([item], batch_decoder=False)[0] for item in items]

    names = list(systems)
    outputs, first_call = first_calls(names, synthesize)
    audio_s = sum(len(o.audio) for o in outputs[REFERENCE]) / 24_000
    rtf = alternating_rtf(names, synthesize, audio_s, args.rounds)
    rows = variant_rows(rtf, first_call, outputs, outputs[REFERENCE], REFERENCE, "vs_reference")
    reference = outputs[REFERENCE]
    flags = cpu_flags()
    result = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu": cpu_model() or "unknown",
        "cpu_features": {f: f in flags for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16")},
        "cpu_fast_bf16": cpu_has_fast_bf16(),
        "threads": threads,
        "torch": torch.__version__,
        "weights": weights_kind,
        "voice": voice,
        "items": len(items),
        "frames": [len(o.audio) // SAMPLES_PER_FRAME for o in reference],
        "audio_s": round(audio_s, 2),
        "rounds": args.rounds,
        "conv_ms": conv_ms(systems),
        "rows": rows,
    }
    out = args.json or RESULTS / f"fp32-path-{dt.date.today().isoformat()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{result['cpu']}, {threads} threads, {len(items)} items, {audio_s:.1f} s of audio, {args.rounds} rounds")
    print(f"one resblock convolution (ms): {result['conv_ms']}")
    print(f"{'variant':28s} {'RTF':>7s} {'vs ref':>7s} {'first s':>8s}  SNR dB per item (same durations)")
    for r in rows:
        print(
            f"{r['variant']:28s} {r['rtf_median']:7.3f} {r['vs_reference']:7.3f} {r['first_call_s']:8.2f}  "
            f"{r['snr_db']} ({r['same_durations']}/{len(items)})"
        )
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()

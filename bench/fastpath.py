"""Micro-benchmark of the kokoro fast path, in-process (no server): one step at a time.

Variants, all through ``BatchedKokoro`` on the same encoded input, with the same seed:
stock ``KModel.forward_with_tokens`` (weight norm as shipped), eager with weight norm as shipped,
eager folded, compiled (Inductor, dynamic shapes), compiled + reduced precision, and the decoder
batched vs one item at a time over a mixed-length batch. Prints a table of seconds per second of
audio (real-time factor) and SNR against eager float32, and writes
``bench/results/fastpath-<date>.json``.

    flock /tmp/pattern-tts-bench.lock .venv/bin/python -m bench.fastpath --weights DIR

Without ``--weights`` it uses full-size random weights (``write_random_kokoro(size="full")``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pattern_tts.synthesis.batched import SAMPLES_PER_FRAME, BatchedKokoro, BatchItem  # noqa: E402
from pattern_tts.synthesis.engine import KokoroEngine, SynthesisRequest, load_kmodel  # noqa: E402
from pattern_tts.synthesis.fastpath import cpu_has_fast_bf16  # noqa: E402
from pattern_tts.weights.parity import snr_db  # noqa: E402

SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "It was the best of times, it was the worst of times, it was the age of wisdom.",
    "Call me Ishmael.",
    "Some years ago, never mind how long precisely, having little or no money in my purse, "
    "I thought I would sail about a little and see the watery part of the world.",
)
RESULTS = Path(__file__).resolve().parent / "results"


def timed(fn: Callable[[], list[Any]], repeats: int) -> tuple[float, float, float, list[Any]]:
    """(first call seconds, median wall seconds and median process CPU seconds of ``repeats``
    further calls, last result). CPU seconds (user + system, all threads) are less sensitive than
    wall time to other processes on a shared machine."""
    start = time.perf_counter()
    result = fn()
    first = time.perf_counter() - start
    times, cpu = [], []
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        result = fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
    return first, statistics.median(times), statistics.median(cpu), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, help="weights directory (default: full-size random)")
    parser.add_argument("--voice", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sentence", type=int, default=0, help="index of the single-item sentence")
    parser.add_argument("--skip", default="", help="comma-separated variant names to skip")
    parser.add_argument("--tag", default="", help="suffix of the results file name")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    skip = set(filter(None, args.skip.split(",")))

    weights = args.weights
    kind = "given"
    if weights is None:
        from pattern_tts.synthesis.random_weights import write_random_kokoro

        weights = write_random_kokoro(Path(tempfile.mkdtemp()), size="full")
        kind = "random full-size"
    from pattern_tts.text import Phonemizer

    eager = KokoroEngine(weights)  # folded, fp32, eager
    voice = args.voice or eager.voices.names()[0]
    phonemizer = Phonemizer(eager.vocab)
    items = [
        eager.prepare(SynthesisRequest(phonemizer.phonemize(t), voice, seed=i))
        for i, t in enumerate(SENTENCES)
    ]
    item = items[args.sentence]

    def seconds(outputs: list) -> float:
        return sum(len(o.audio) for o in outputs) / 24000

    rows: list[dict] = []
    reference = eager.batched([item], batch_decoder=False)[0].audio

    def run(name: str, batched: BatchedKokoro, batch: list[BatchItem], batch_decoder: bool) -> None:
        if name in skip:
            return
        first, median, cpu, outputs = timed(lambda: batched(batch, batch_decoder=batch_decoder), args.repeats)
        audio_s = seconds(outputs)
        row = {
            "variant": name,
            "items": len(batch),
            "audio_s": round(audio_s, 3),
            "first_call_s": round(first, 2),
            "median_s": round(median, 3),
            "rtf": round(median / audio_s, 4),
            "cpu_s_per_audio_s": round(cpu / audio_s, 4),
            "snr_db": round(snr_db(reference, outputs[0].audio), 1) if batch == [item] else None,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)

    # Stock Kokoro, batch 1 (weight norm as shipped).
    stock = KokoroEngine.__new__(KokoroEngine)
    unfolded = load_kmodel(weights)
    if "kokoro-stock" not in skip:

        def stock_call() -> list:
            torch.manual_seed(item.seed)
            with torch.no_grad():
                audio, _ = unfolded.forward_with_tokens(item.input_ids[None], item.ref_s[None], item.speed)
            return [type("O", (), {"audio": audio})()]

        first, median, cpu, outputs = timed(stock_call, args.repeats)
        audio_s = seconds(outputs)
        row = {"variant": "kokoro-stock", "items": 1, "audio_s": round(audio_s, 3),
               "first_call_s": round(first, 2), "median_s": round(median, 3),
               "rtf": round(median / audio_s, 4), "cpu_s_per_audio_s": round(cpu / audio_s, 4),
               "snr_db": round(snr_db(reference, outputs[0].audio), 1)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    del stock

    run("eager-unfolded", BatchedKokoro(unfolded), [item], False)
    run("eager-folded", eager.batched, [item], False)
    run("eager-bf16", BatchedKokoro(eager.model, autocast_dtype=torch.bfloat16), [item], False)
    compiled = BatchedKokoro(eager.model, compile=True)
    run("compiled", compiled, [item], False)
    compiled_bf16 = BatchedKokoro(eager.model, compile=True, autocast_dtype=torch.bfloat16)
    run("compiled-bf16", compiled_bf16, [item], False)
    # Another length: no recompilation expected (dynamic shapes).
    run("compiled-bf16-other-length", compiled_bf16, [items[1]], False)

    # A mixed-length batch: decoder batched vs one item at a time (text side in similar-length groups).
    for name, batched in (("eager", eager.batched), ("compiled-bf16", compiled_bf16)):
        run(f"{name}-B4-per-item-decoder", batched, items, False)
        run(f"{name}-B4-batched-decoder", batched, items, True)

    result = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "weights": str(weights),
        "weights_kind": kind,
        "threads": args.threads,
        "cpu": platform.processor() or platform.machine(),
        "cpu_fast_bf16": cpu_has_fast_bf16(),
        "torch": torch.__version__,
        "frames_per_item": [int(len(i.input_ids)) for i in items],
        "samples_per_frame": SAMPLES_PER_FRAME,
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"fastpath-{dt.date.today().isoformat()}{args.tag}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print()
    print(f"{'variant':34s} {'items':>5s} {'audio s':>8s} {'first s':>8s} {'median s':>9s} {'RTF':>7s} "
          f"{'CPU s/s':>8s} {'SNR dB':>7s}")
    for r in rows:
        snr = "" if r["snr_db"] is None else f"{r['snr_db']:.1f}"
        print(f"{r['variant']:34s} {r['items']:5d} {r['audio_s']:8.2f} {r['first_call_s']:8.2f} "
              f"{r['median_s']:9.3f} {r['rtf']:7.3f} {r['cpu_s_per_audio_s']:8.3f} {snr:>7s}")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()

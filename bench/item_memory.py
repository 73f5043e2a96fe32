"""The kokoro model's live memory for one item, by length: what a long item adds to the process's peak.

    flock /tmp/pattern-tts-bench.lock .venv/bin/python -m bench.item_memory [--weights DIR] [--rounds 2] [--note TEXT]

On CPU the kokoro model decodes one item at a time, and the longest item's activations are most of
what its process holds above idle (pattern_tts/allocator.py). This runs the engine as served on this
CPU (``KokoroEngine.as_served``, warmed up) under jemalloc, and for the first chunk of the 100-word
request cut to several phoneme lengths reads jemalloc's per-thread peak (``thread.peak``): the most
memory the synthesis held at once above what was allocated when it started. Each length runs with
the spectral resblock convolutions on and off (oneDNN's), in alternating order, ``--rounds`` times.

Prints a table and writes ``bench/results/item-memory-<date>.json`` (BENCHMARKS.md lists every run).
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from bench import corpus
from bench.workload import resolve_weights, warm_engine
from pattern_tts import allocator
from pattern_tts.cpu import cpu_model, cpu_quota
from pattern_tts.synthesis.engine import KokoroEngine, SynthesisRequest

RESULTS = Path(__file__).resolve().parent / "results"
LENGTHS = (100, 250, 400)  # phonemes; Kokoro takes up to 510 per chunk
MIB = 1 << 20


def _mallctl_read(name: str) -> int:
    value, size = ctypes.c_uint64(0), ctypes.c_size_t(8)
    if ctypes.CDLL(None).mallctl(name.encode(), ctypes.byref(value), ctypes.byref(size), None, ctypes.c_size_t(0)):
        raise RuntimeError(f"mallctl {name} failed")
    return value.value


def live_peak_mib(run: Any) -> tuple[float, float]:
    """(peak MiB this thread held at once above its start, seconds) of ``run()``."""
    ctypes.CDLL(None).mallctl(b"thread.peak.reset", None, None, None, ctypes.c_size_t(0))
    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    return _mallctl_read("thread.peak.read") / MIB, seconds


def measure(engine: KokoroEngine, voice: str, phonemes: str, rounds: int) -> list[dict[str, Any]]:
    rows = []
    for n in LENGTHS:
        item = engine.prepare(SynthesisRequest(phonemes[:n], voice))
        audio_s = len(engine.synthesize([item])[0].audio) / 24_000
        runs: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
        for r in range(rounds):
            for spectral in (True, False) if r % 2 == 0 else (False, True):
                engine.batched.spectral_convs = spectral
                runs[spectral].append(live_peak_mib(lambda: engine.synthesize([item])))  # noqa: B023
        engine.batched.spectral_convs = True
        row = {"phonemes": len(item.input_ids) - 2, "audio_s": round(audio_s, 1)}
        for spectral, name in ((False, "onednn"), (True, "spectral")):
            row[f"{name}_peak_mib"] = round(max(p for p, _ in runs[spectral]))
            row[f"{name}_s"] = round(sorted(s for _, s in runs[spectral])[len(runs[spectral]) // 2], 2)
        rows.append(row)
        print(row, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, help="weights directory (default: as bench.run picks them)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--note", help="what this run measured, for BENCHMARKS.md (e.g. the code it ran)")
    args = parser.parse_args()
    if allocator.in_use() != "jemalloc":  # thread.peak is jemalloc's: run again with it preloaded
        env = {**os.environ, **allocator.allocator_env("jemalloc")}
        os.execve(sys.executable, [sys.executable, "-m", "bench.item_memory", *sys.argv[1:]], env)
    weights, weights_kind, voice = resolve_weights(args.weights)
    engine = warm_engine(weights)
    if not engine.batched.spectral_convs:
        raise SystemExit("the spectral convolutions are off on this CPU's served path: nothing to compare")
    from pattern_tts.text.g2p import Phonemizer

    phonemizer = Phonemizer(json.loads((weights / "config.json").read_text()).get("vocab"))
    phonemes = phonemizer.chunks(corpus.request_100_words())[0].phonemes
    rows = measure(engine, voice, phonemes, args.rounds)
    result = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu": cpu_model() or "unknown",
        "threads": cpu_quota(),
        "torch": torch.__version__,
        "weights": weights_kind,
        "voice": voice,
        "rounds": args.rounds,
        "rows": rows,
        **({"note": args.note} if args.note else {}),
    }
    out = RESULTS / f"item-memory-{dt.date.today().isoformat()}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{result['cpu']}, {result['threads']} threads; live peak of one item above its start (max of rounds)")
    print(f"{'phonemes':>8} {'audio s':>7} {'oneDNN MiB':>10} {'spectral MiB':>12} {'oneDNN s':>8} {'spectral s':>10}")
    for r in rows:
        print(
            f"{r['phonemes']:>8} {r['audio_s']:>7} {r['onednn_peak_mib']:>10} {r['spectral_peak_mib']:>12} "
            f"{r['onednn_s']:>8} {r['spectral_s']:>10}"
        )
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()

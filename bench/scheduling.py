"""Streams under load: first audio, playback stalls and latency by batch size and queue order.

With ``PATTERN_TTS_STREAM_PRIORITY=true`` the gateway sends a request's chunk i at Triton priority
level min(i + 1, 4), so every waiting first piece is synthesised before any second one; ``false``
is first come, first served. On CPU a batch runs to its end before Triton starts the next one, so
the largest batch bounds how long a new request waits. This script starts the stack
(``pattern-tts serve``) with each variant in ``VARIANTS`` in turn, ``--rounds`` times, and sends the
benchmark's mixed one-sentence requests through the gateway as streamed pcm in a closed loop at
each concurrency. For each request: first audio byte, playback stall (seconds a player that starts
at the first byte waits for audio), latency; per level: audio seconds per wall second.

    .venv/bin/python -m bench.scheduling [--weights DIR] [--rounds 2]

Prints a table and writes ``bench/results/scheduling-<date>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import corpus, loadgen, procs
from bench.procs import log
from bench.stack import StackPorts, stack_env, start_stack
from bench.workload import resolve_weights

RESULTS = Path(__file__).resolve().parent / "results"
LEVELS = {4: 16, 16: 32}  # concurrency -> requests (corpus.mixed: short and long interleaved)
# Stacks compared (PATTERN_TTS_* on top of the defaults): label -> settings.
VARIANTS: dict[str, dict[str, str]] = {
    "batch 16, FIFO": {"PATTERN_TTS_MAX_BATCH_SIZE": "16", "PATTERN_TTS_STREAM_PRIORITY": "false"},
    "batch 16, priority": {"PATTERN_TTS_MAX_BATCH_SIZE": "16", "PATTERN_TTS_STREAM_PRIORITY": "true"},
    "batch 4, FIFO": {"PATTERN_TTS_MAX_BATCH_SIZE": "4", "PATTERN_TTS_STREAM_PRIORITY": "false"},
    "batch 4, priority": {"PATTERN_TTS_MAX_BATCH_SIZE": "4", "PATTERN_TTS_STREAM_PRIORITY": "true"},
}


def run_stack(weights: Path, voice: str, label: str, tmp: Path) -> dict[str, Any]:
    """Start the stack with the variant's settings, run every level, stop it."""
    ports = StackPorts.free()
    env = stack_env(VARIANTS[label])
    log_path = tmp / "stack.log"
    url = ports.url
    out: dict[str, Any] = {}
    with procs.bench_lock(f"stack {label}"):
        process = start_stack(weights, ports, env, log_path)
        try:
            procs.wait_ready(f"{url}/ready", process, log_path, 1200)
            speech = f"{url}/v1/audio/speech"

            def body(text: str) -> dict[str, Any]:
                return {"model": "kokoro", "input": text, "voice": voice, "response_format": "pcm", "lang": "a"}

            loadgen.run(speech, [(body(corpus.mixed(1)[0].text), 1)], 1)  # warm-up
            for c, n in LEVELS.items():
                level = loadgen.run(speech, [(body(s.text), s.words) for s in corpus.mixed(n)], c)
                level.pop("records")
                out[str(c)] = level
                log(f"  {label} c={c}: ttfb p50 {level['ttfb_p50_s']} p95 {level['ttfb_p95_s']} s, "
                    f"stall p50 {level['stall_p50_s']} p95 {level['stall_p95_s']} s, "
                    f"latency p50 {level['latency_p50_s']} p95 {level['latency_p95_s']} s, "
                    f"{level['audio_s_per_wall_s']} audio s/s, failed {level['failed']}")  # fmt: skip
        finally:
            procs.stop(process)
        out["traceback_in_log"] = "Traceback" in log_path.read_text(errors="replace")
    return out


KEYS = ("ttfb_p50_s", "ttfb_p95_s", "stall_p50_s", "stall_p95_s", "latency_p50_s", "latency_p95_s",
        "audio_s_per_wall_s", "failed")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    weights, kind, voice = resolve_weights(args.weights)
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label in VARIANTS}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pattern-tts-scheduling-") as tmp:
        for _ in range(args.rounds):
            for label in VARIANTS:
                runs[label].append(run_stack(weights, voice, label, Path(tmp)))

    # Per setting and level: the median over rounds of each figure (failures: the sum).
    summary: dict[str, dict[str, dict[str, float]]] = {}
    print(f"\n{'stack':<20} {'conc':>4} " + " ".join(f"{k.removesuffix('_s'):>13}" for k in KEYS))
    for label, rounds in runs.items():
        summary[label] = {}
        for c in LEVELS:
            levels = [r[str(c)] for r in rounds]
            row = {k: (sum if k == "failed" else statistics.median)([lv[k] for lv in levels]) for k in KEYS}
            summary[label][str(c)] = row
            print(f"{label:<20} {c:>4} " + " ".join(f"{row[k]:>13.3f}" for k in KEYS))
    results = {"date": dt.date.today().isoformat(), "weights": kind, "voice": voice, "levels": LEVELS,
               "variants": VARIANTS, "rounds": runs, "summary": summary,
               "elapsed_s": round(time.perf_counter() - start, 1)}  # fmt: skip
    out = args.out or RESULTS / f"scheduling-{results['date']}.json"
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

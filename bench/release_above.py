"""What handing freed memory back between items costs and saves (``release_memory_above_mib``).

The kokoro model keeps the pages its allocator frees while it works (pattern_tts/allocator.py), so
after a long item the process holds that item's activations while shorter ones follow, and how much
it holds on top (jemalloc's free extents that no later item fits) varies with the order of lengths.
``release_memory_above_mib`` hands them back after each item while the process's RSS is above it.

One process, set up as the kokoro Triton model sets itself up on CPU (the allocator ``auto`` picks,
oneDNN's cache bound, the fast path, warm-up, release), synthesises a mixed workload: corpus
sentences from the shortest to the longest, in batches of 4 (the per-item decoder, shortest first
within a batch, as Triton would run them). Per round, each mode in turn (the order alternating by
round), from a process that has just handed its freed memory back:

* ``keep until idle``: never while working (``release_memory_above_mib=0``);
* ``above N MiB``: after each item while RSS is above the default of the setting;
* ``after every item``: a limit of 0 MiB.

Per mode: the median seconds of the rounds, the highest RSS sampled (every 10 ms), and the releases.

    .venv/bin/python -m bench.release_above [--weights DIR] [--rounds 3] [--items 12] [--note TEXT]

Writes ``bench/results/release-above-<date>.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from bench.procs import served_child
from pattern_tts.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_LIMIT_MIB = Settings.model_fields["release_memory_above_mib"].default

CHILD = r"""
import json, sys, threading, time
from pathlib import Path
import torch
from pattern_tts import allocator
from pattern_tts.cpu import cpu_quota
from pattern_tts.synthesis.engine import KokoroEngine, SynthesisRequest

weights, voice, cache = sys.argv[1], sys.argv[2], Path(sys.argv[4])
rounds, items, limits = int(sys.argv[3]), int(sys.argv[5]), json.loads(sys.argv[6])

torch.set_num_threads(cpu_quota())
engine = KokoroEngine.as_served(Path(weights), cache)
engine.warmup()
name = allocator.release_freed_memory()
idle = allocator.resident_mib()
rows = json.load(open("bench/corpus/phonemes.json", encoding="utf-8"))
by_length = sorted((r["phonemes"] for r in rows), key=len)
chosen = [by_length[round(i * (len(by_length) - 1) / (items - 1))] for i in range(items)]
order = [p for pair in zip(chosen[: items // 2], reversed(chosen[items // 2 :])) for p in pair]  # short, long, ...
batches = [order[i : i + 4] for i in range(0, len(order), 4)]

peak = [0.0]
def sample():
    while True:
        peak[0] = max(peak[0], allocator.resident_mib())
        time.sleep(0.01)
threading.Thread(target=sample, daemon=True).start()

out = {"allocator": name, "idle_mib": round(idle), "phonemes": [len(p) for p in order], "runs": []}
modes = list(limits)
for r in range(rounds):
    for mode in (modes if r % 2 == 0 else modes[::-1]):
        limit = limits[mode]
        allocator.release_freed_memory()
        time.sleep(0.1)
        peak[0] = allocator.resident_mib()
        releases, audio = 0, 0.0
        start = time.perf_counter()
        for batch in batches:
            prepared = [engine.prepare(SynthesisRequest(p, voice)) for p in batch]
            for _, result in engine.synthesize_each(prepared):
                audio += len(result.audio) / 24000
                if limit is not None and allocator.release_if_above(limit):
                    releases += 1
        seconds = time.perf_counter() - start
        out["runs"].append({"round": r, "mode": mode, "seconds": round(seconds, 2), "audio_s": round(audio, 1),
                            "peak_mib": round(peak[0]), "releases": releases})
        print(json.dumps(out["runs"][-1]), file=sys.stderr, flush=True)
print(json.dumps(out))
"""


def summarize(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    modes: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        modes.setdefault(run["mode"], []).append(run)
    return {
        mode: {"seconds": statistics.median(r["seconds"] for r in mine), "peak_mib": max(r["peak_mib"] for r in mine),
               "releases": statistics.median(r["releases"] for r in mine)}
        for mode, mine in modes.items()
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--items", type=int, default=12)
    parser.add_argument("--note", default="", help="a sentence for BENCHMARKS.md: the machine, what else ran")
    args = parser.parse_args()

    from bench.workload import CACHE, resolve_weights

    weights, kind, voice = resolve_weights(args.weights)
    limits = {"keep until idle": None, f"above {DEFAULT_LIMIT_MIB} MiB": DEFAULT_LIMIT_MIB, "after every item": 0}
    child_args = [str(weights), voice, str(args.rounds), str(CACHE / "compile"), str(args.items), json.dumps(limits)]
    results = served_child(CHILD, child_args, kind, voice, args.note)
    results["summary"] = summarize(results["runs"])

    print(f"\n{results['allocator']}; idle {results['idle_mib']} MiB; phonemes per item {results['phonemes']} ({kind})")
    print(f"{'mode':<20} {'seconds':>8} {'peak MiB':>9} {'releases':>9}")
    for mode, row in results["summary"].items():
        print(f"{mode:<20} {row['seconds']:>8} {row['peak_mib']:>9} {row['releases']:>9}")
    out = RESULTS / f"release-above-{results['date']}.json"
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

"""What handing memory back after an idle spell costs the next request (``release_memory_after_idle_s``).

The kokoro model keeps the pages its allocator frees while it works (pattern_tts/allocator.py). Once
it has been idle for ``release_memory_after_idle_s`` it hands them back (:class:`ReleaseWhenIdle`),
so the next request faults its working set in again. This measures that cost in one process, set
up as the kokoro Triton model sets itself up on CPU (the allocator ``auto`` picks, oneDNN's cache
bound, fast path, warm-up, release):

* a burst of the corpus's longest sentences raises the process to its working footprint;
* then, per round, for each probe sentence and each mode (the order alternating by round): the
  longest sentence again (so that the freed pages are there to keep or hand back), then either
  nothing ("keep") or ``allocator.release_freed_memory()`` ("release"), then the probe sentence,
  timed.

Per probe and mode it reports the wall time, the page faults and the kernel (system) CPU time of the
probe sentence: the faults and system time are the direct cost of the release, the wall time shows
it against the machine's noise. And the RSS the release handed back.

    .venv/bin/python -m bench.idle_release [--weights DIR] [--rounds 4] [--note TEXT]

Writes ``bench/results/idle-release-<date>.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from bench.procs import served_child

RESULTS = Path(__file__).resolve().parent / "results"
PROBES = {"one sentence": (90, 110), "long sentence": (270, 300)}  # phoneme counts

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
import torch
from pattern_tts import allocator
from pattern_tts.cpu import cpu_quota
from pattern_tts.synthesis.engine import KokoroEngine, SynthesisRequest

weights, voice, rounds, cache = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
probes = json.loads(sys.argv[5])

torch.set_num_threads(cpu_quota())
engine = KokoroEngine.as_served(Path(weights), cache)
engine.warmup()
name = allocator.release_freed_memory()
idle = allocator.resident_mib()
rows = json.load(open("bench/corpus/phonemes.json", encoding="utf-8"))
phonemes = sorted((r["phonemes"] for r in rows), key=len)
chosen = {k: next(p for p in phonemes if lo <= len(p) <= hi) for k, (lo, hi) in probes.items()}

def synthesize(texts):
    items = [engine.prepare(SynthesisRequest(p, voice)) for p in texts]
    return sum(len(out.audio) for _, out in engine.synthesize_each(items)) / 24000

synthesize(phonemes[-4:])
out = {"allocator": name, "idle_mib": round(idle), "burst_mib": round(allocator.resident_mib()),
       "refill_phonemes": len(phonemes[-1]), "probes": {k: len(p) for k, p in chosen.items()}, "runs": []}
for r in range(rounds):
    for mode in (("keep", "release") if r % 2 == 0 else ("release", "keep")):
        for probe, text in chosen.items():
            synthesize(phonemes[-1:])
            before = allocator.resident_mib()
            if mode == "release":
                allocator.release_freed_memory()
            released = before - allocator.resident_mib()
            usage = resource.getrusage(resource.RUSAGE_SELF)
            start = time.perf_counter()
            audio = synthesize([text])
            seconds = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_SELF)
            out["runs"].append({
                "round": r, "mode": mode, "probe": probe, "seconds": round(seconds, 3), "audio_s": round(audio, 2),
                "minor_faults": after.ru_minflt - usage.ru_minflt,
                "system_s": round(after.ru_stime - usage.ru_stime, 3),
                "released_mib": round(released), "rss_after_mib": round(allocator.resident_mib()),
            })
            print(json.dumps(out["runs"][-1]), file=sys.stderr, flush=True)
print(json.dumps(out))
"""


def summarize(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Medians per probe and mode."""
    groups: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for run in runs:
        groups.setdefault(run["probe"], {}).setdefault(run["mode"], []).append(run)
    keys = ("seconds", "minor_faults", "system_s", "released_mib", "rss_after_mib")
    return {
        probe: {mode: {key: round(statistics.median(r[key] for r in mine), 3) for key in keys}
                for mode, mine in modes.items()}
        for probe, modes in groups.items()
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--note", default="", help="a sentence for BENCHMARKS.md: the machine, what else ran")
    args = parser.parse_args()

    from bench.workload import CACHE, resolve_weights

    weights, kind, voice = resolve_weights(args.weights)
    child_args = [str(weights), voice, str(args.rounds), str(CACHE / "compile"), json.dumps(PROBES)]
    results = served_child(CHILD, child_args, kind, voice, args.note)
    results["summary"] = summarize(results["runs"])

    print(f"\n{results['allocator']}; idle {results['idle_mib']} MiB, after the burst {results['burst_mib']} MiB"
          f" ({kind})")  # fmt: skip
    print(f"{'probe':<28} {'mode':<8} {'seconds':>8} {'page faults':>12} {'system s':>9} {'released MiB':>13}")
    for probe, modes in results["summary"].items():
        for mode, row in modes.items():
            label = f"{probe} ({results['probes'][probe]} ph)"
            print(f"{label:<28} {mode:<8} {row['seconds']:>8} {row['minor_faults']:>12.0f} {row['system_s']:>9}"
                  f" {row['released_mib']:>13.0f}")  # fmt: skip
    out = args.out or RESULTS / f"idle-release-{results['date']}.json"
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

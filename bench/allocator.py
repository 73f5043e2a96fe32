"""Memory and speed of the kokoro model's process under each C allocator setting (pattern_tts/allocator.py)
and oneDNN primitive cache bound (pattern_tts/cpu.py).

Each setting gets its own process, set up as the kokoro Triton model sets itself up on CPU:
* load the engine on the fast path;
* warm it up;
* call ``allocator.release_freed_memory()``.
Then it synthesises the corpus's longest sentences as one batch (per-item decoder, shortest first,
as Triton would run them), for several rounds. For each setting it reports:
* idle RSS after the settle;
* the peak RSS of each round (sampled every 5 ms);
* the seconds each round took;
* RSS 3 s after the last round: what it holds once the work is over.
With ``--passes N`` every setting runs N times, the settings in turn, so that each sees the machine's
drift in speed: the same setting took 21-29 % less time in one working session than in the one before,
on the same kind of machine.

    .venv/bin/python -m bench.allocator [--weights DIR] [--items 16] [--rounds 2] [--passes 1] [--only TEXT]
        [--note TEXT]

Writes ``bench/results/allocator-<date>.json``. Without ``--weights`` it uses the weights that
``bench.run`` resolves (real converted weights when the packaged model is installed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from pattern_tts import allocator
from pattern_tts.cpu import ONEDNN_CACHE_ENV, onednn_env

RESULTS = Path(__file__).resolve().parent / "results"
# A reference: glibc told to keep freed memory in its heap (mallopt), the setting before jemalloc.
GLIBC_KEEP = "glibc keeping freed memory (before)"
ONEDNN_DEFAULT = {ONEDNN_CACHE_ENV: "1024"}  # oneDNN's own default: the setting before the bound
# jemalloc's MALLOC_CONF settings compared; the one that is allocator.JEMALLOC_CONF is marked the default.
# The others hand freed pages back to the system once unused for a while, from jemalloc's background
# threads. Allocations over 8 MiB (``oversize_threshold``) come from an arena of their own, which
# purges at once unless pages are kept for good; ``oversize_threshold:0`` gives them the same decay.
_RETURN = "background_thread:true,muzzy_decay_ms:0,dirty_decay_ms:"
JEMALLOC_CONFS = {
    "keeping freed pages": "dirty_decay_ms:-1,muzzy_decay_ms:-1",
    "returning pages unused for 1 s, large ones at once": f"{_RETURN}1000",
    "returning pages unused for 1 s": f"{_RETURN}1000,oversize_threshold:0",
    "returning pages unused for 10 s": f"{_RETURN}10000,oversize_threshold:0",
}


def configs() -> dict[str, dict[str, str]]:
    """The settings to compare, as child environments; jemalloc only where it is installed."""
    bounded = onednn_env(environ={})
    out = {}
    if allocator.find_jemalloc() is not None:
        jemalloc = allocator.allocator_env("jemalloc", environ={})
        for name, conf in JEMALLOC_CONFS.items():
            default = " (pattern-tts default)" if conf == allocator.JEMALLOC_CONF else ""
            out[f"jemalloc {name}{default}, oneDNN cache 64"] = {**jemalloc, "MALLOC_CONF": conf, **bounded}
        keeping = JEMALLOC_CONFS["keeping freed pages"]
        out["jemalloc keeping freed pages, oneDNN cache 1024 (before the bound)"] = {
            **jemalloc, "MALLOC_CONF": keeping, **ONEDNN_DEFAULT
        }
    out["glibc, oneDNN cache 64 (pattern-tts fallback)"] = bounded
    out[GLIBC_KEEP] = ONEDNN_DEFAULT
    return out


CHILD = r"""
import json, sys, threading, time
from pathlib import Path
from typing import Any
import psutil, torch
from pattern_tts import allocator
from pattern_tts.cpu import cpu_quota
from pattern_tts.synthesis.engine import KokoroEngine, SynthesisRequest

weights, voice, items_n, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
keep = sys.argv[5] == "keep"
process = psutil.Process()
rss = lambda: process.memory_info().rss / 2**20
torch.set_num_threads(cpu_quota())
engine = KokoroEngine.as_served(Path(weights), Path(sys.argv[6]))
engine.warmup()
name = allocator.release_freed_memory()
if keep:  # M_MMAP_THRESHOLD and M_TRIM_THRESHOLD 1 GB, M_TOP_PAD 64 MB
    import ctypes
    libc = ctypes.CDLL("libc.so.6")
    for param, value in ((-3, 1 << 30), (-1, 1 << 30), (-2, 64 << 20)):
        libc.mallopt(param, value)
idle = rss()
rows = json.load(open("bench/corpus/phonemes.json", encoding="utf-8"))
phonemes = sorted((r["phonemes"] for r in rows), key=len)[-items_n:]
items = [engine.prepare(SynthesisRequest(p, voice)) for p in phonemes]
out = {"allocator": name, "idle_mib": round(idle), "lengths": [len(p) for p in phonemes], "rounds": []}
for _ in range(rounds):
    peak, stop = [rss()], threading.Event()
    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(0.005)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    audio = sum(len(o.audio) for _, o in engine.synthesize_each(items)) / 24000
    seconds = time.perf_counter() - start
    stop.set(); sampler.join()
    peak_mib = round(max(peak[0], rss()))
    out["rounds"].append({"seconds": round(seconds, 1), "audio_s": round(audio, 1), "peak_mib": peak_mib})
time.sleep(3)
out["rest_after_mib"] = round(rss())  # what the process holds once the work is over
print(json.dumps(out))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--items", type=int, default=16, help="the corpus's N longest sentences, one batch")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--passes", type=int, default=1,
                        help="run every setting this many times, in turn: the machine's speed drifts over minutes")
    parser.add_argument("--only", default="", help="only the settings whose name contains this text")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--note", default="", help="a sentence for BENCHMARKS.md: the machine, what else ran")
    args = parser.parse_args()

    from bench.workload import CACHE, resolve_weights

    weights, kind, voice = resolve_weights(args.weights)
    results: dict[str, Any] = {"date": dt.date.today().isoformat(), "weights": kind, "voice": voice, "allocators": {}}
    if args.note:
        results["note"] = args.note
    chosen = {name: env for name, env in configs().items() if args.only in name}
    for turn in range(args.passes):
        for name, env in chosen.items():
            mode = "keep" if name == GLIBC_KEEP else "settle"
            child_env = {**os.environ, "HF_HUB_OFFLINE": "1", **env}
            command = [sys.executable, "-c", CHILD, str(weights), voice, str(args.items), str(args.rounds), mode,
                       str(CACHE / "compile")]  # fmt: skip
            print(f"{name}: pass {turn + 1}", flush=True)
            done = subprocess.run(command, env=child_env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
            child = json.loads(done.stdout.strip().splitlines()[-1])
            row = results["allocators"].setdefault(name, {**child, "rounds": [], "rest_after_mib": []})
            row["rounds"] += child["rounds"]
            row["rest_after_mib"].append(child["rest_after_mib"])

    print(f"\n{args.items} longest corpus sentences, one batch, {args.rounds} rounds x {args.passes} passes ({kind})")
    print(f"{'setting':<72} {'idle MiB':>9} {'peak MiB per round':>22} {'seconds per round':>20} {'3 s after':>10}")
    for name, row in results["allocators"].items():
        peaks = " / ".join(str(r["peak_mib"]) for r in row["rounds"])
        seconds = " / ".join(str(r["seconds"]) for r in row["rounds"])
        rest = " / ".join(map(str, row["rest_after_mib"]))
        print(f"{name:<72} {row['idle_mib']:>9} {peaks:>22} {seconds:>20} {rest:>10}")
    out = args.out or RESULTS / f"allocator-{results['date']}.json"
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

"""Dynamic batching on vs off on CPU, with the two stacks measured in alternation.

Measuring the stack with batching on, then again with it off, minutes apart, lets the machine's
drift into the ratio: on a shared machine it moved by 15 % or more between runs. Here both stacks
run at once (``pattern-tts serve``: on = defaults, off = ``PATTERN_TTS_MAX_BATCH_SIZE=1``,
``PATTERN_TTS_MAX_QUEUE_DELAY_US=0``). At each concurrency the two are measured back to back, the
first of the pair alternating, for ``rounds`` rounds. The client is a closed loop of tritonclient
calls on the perf_analyzer input data (the c=1 sentences' phoneme chunks), timed to the
millisecond (perf_analyzer's own run time is rounded up to whole seconds).

``bench.run`` runs :func:`measure` as its last phase, for its "never slower" target. Alone:

    .venv/bin/python -m bench.batching_ab [--weights DIR] [--rounds N] [--control]

prints the on/off ratios and writes ``bench/results/batching-ab-<date>.json``. ``--control`` runs
both stacks with the defaults (batching on) through the same steps: the spread of its ratios, where
nothing differs, is how far the instrument itself moves a ratio on this machine
(``batching-control-<date>.json``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import tempfile
import threading
import time
from contextlib import ExitStack, closing
from pathlib import Path
from typing import Any

import tritonclient.http as httpclient

from bench import procs, triton_direct
from bench.procs import log
from bench.stack import BATCHING, StackPorts, stack_env, start_stack
from bench.workload import Plan, make_workload, resolve_weights

RESULTS = Path(__file__).resolve().parent / "results"
CONCURRENCY = (1, 2, 4, 8, 16)


# Both stacks with the defaults: the instrument's control (started and measured as "on" and "off").
CONTROL: dict[str, dict[str, str]] = {"on": {}, "off": {}}


def start_variant(name: str, weights: Path, tmp: Path, settings: dict[str, str]) -> tuple[Any, str]:
    """``pattern-tts serve`` with the variant's ``settings``; (process, Triton HTTP address) once ready."""
    ports = StackPorts.free()
    log_path = tmp / f"stack-ab-{name}.log"
    process = start_stack(weights, ports, stack_env(settings), log_path)
    procs.wait_ready(f"{ports.url}/ready", process, log_path, 1200)
    return process, f"127.0.0.1:{ports.http}"


def closed_loop(url: str, phonemes: list[str], voice: str, concurrency: int, requests: int) -> dict[str, float]:
    """``requests`` calls (cycling through ``phonemes``) from ``concurrency`` clients in a closed loop."""
    todo = list(range(requests))
    lock = threading.Lock()
    audio = [0.0]

    def client_loop() -> None:
        # Closed when done: Triton's shutdown waits for open HTTP connections (up to its exit timeout).
        with closing(httpclient.InferenceServerClient(url, network_timeout=900)) as client:
            while True:
                with lock:
                    if not todo:
                        return
                    i = todo.pop(0)
                seconds = triton_direct.synthesize(client, phonemes[i % len(phonemes)], voice)
                with lock:
                    audio[0] += seconds

    threads = [threading.Thread(target=client_loop) for _ in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return {"wall_s": round(wall, 3), "audio_s": round(audio[0], 3), "audio_s_per_wall_s": round(audio[0] / wall, 3)}


def measure(
    weights: Path,
    voice: str,
    phonemes: list[str],
    tmp: Path,
    rounds: int,
    concurrency: tuple[int, ...] = CONCURRENCY,
    extra_env: dict[str, str] | None = None,
    variants: dict[str, dict[str, str]] = BATCHING,
) -> dict[str, Any]:
    """Both stacks up (``extra_env`` under each variant's settings; ``variants``: ``BATCHING``, or
    ``CONTROL`` for the instrument's own spread), measured in alternation:
    ``{"stacks", "entries", "pairs", "summary"}``, ``summary[c]`` holding the on/off ratio of each
    round and their median."""
    pairs: list[dict[str, Any]] = []
    with ExitStack() as stacks:
        urls = {}
        with procs.bench_lock("batching on/off, start-up"):
            for name, settings in variants.items():
                process, urls[name] = start_variant(name, weights, tmp, {**(extra_env or {}), **settings})
                stacks.callback(procs.stop, process)
        for url in urls.values():  # one warm call each, outside the timings
            with closing(httpclient.InferenceServerClient(url)) as client:
                triton_direct.synthesize(client, phonemes[0], voice)
        with procs.bench_lock("batching on/off"):
            for r in range(rounds):
                for k, c in enumerate(concurrency):
                    order = ("on", "off") if (r + k) % 2 == 0 else ("off", "on")
                    n = max(c, len(phonemes))  # one pass over the data, one call per client at least
                    pair: dict[str, Any] = {"round": r, "concurrency": c, "requests": n, "order": order}
                    for name in order:
                        pair[name] = closed_loop(urls[name], phonemes, voice, c, n)
                    pair["on_off"] = round(pair["on"]["audio_s_per_wall_s"] / pair["off"]["audio_s_per_wall_s"], 3)
                    pairs.append(pair)
                    log(f"  round {r} c={c}: on {pair['on']['audio_s_per_wall_s']} off "
                        f"{pair['off']['audio_s_per_wall_s']} audio s/s, on/off {pair['on_off']}")  # fmt: skip
    summary = {}
    for c in concurrency:
        ratios = [p["on_off"] for p in pairs if p["concurrency"] == c]
        summary[str(c)] = {"ratios": ratios, "median": statistics.median(ratios)}
    return {"stacks": variants, "entries": len(phonemes), "pairs": pairs, "summary": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=Plan(quick=False).ab_rounds, help="default: as in bench.run")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--control", action="store_true", help="both stacks with the defaults")
    args = parser.parse_args()
    variants = CONTROL if args.control else BATCHING

    weights, kind, voice = resolve_weights(args.weights)
    phonemes = make_workload(Plan(quick=False), weights, voice).perf_entries()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pattern-tts-batching-ab-") as tmp:
        measured = measure(weights, voice, phonemes, Path(tmp), args.rounds, variants=variants)
    print(f"\n{'conc':>4} {'on/off per round':>28} {'median':>7}")
    for c, row in measured["summary"].items():
        print(f"{c:>4} {' '.join(f'{x:.3f}' for x in row['ratios']):>28} {row['median']:>7.3f}")
    results = {"date": dt.date.today().isoformat(), "weights": kind, "voice": voice, "control": args.control,
               **measured, "elapsed_s": round(time.perf_counter() - started, 1)}  # fmt: skip
    kind_of_run = "batching-control" if args.control else "batching-ab"  # the report reads batching-ab-*
    out = args.out or RESULTS / f"{kind_of_run}-{results['date']}.json"
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

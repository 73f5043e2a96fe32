"""Lead pieces always, or only while the model is idle: two stacks side by side at concurrency 16.

The gateway can cut a request's first chunk into growing pieces so that its first audio comes
sooner (``gateway.serving.split_lead``). Each piece is synthesised with Kokoro's silences at both
ends, and the gateway then trims them. ``PATTERN_TTS_LEAD_SPLIT_MAX_IN_FLIGHT`` decides when to cut:
the default (0) only while no other kokoro call of the gateway is in flight; 1000 always, as before.

Both stacks are started (``pattern-tts serve``, same code, same weights) and measured in
alternation, ``--rounds`` times: the suite's concurrency-16 set of one-sentence requests (streamed
pcm), then the 100-word request streamed 3 times on each stack (its first byte is the target that
the pieces serve), while each stack's peak RSS (its whole process tree) is sampled. Prints the
figures and writes ``bench/results/lead-split-<date>.json``.

    .venv/bin/python -m bench.lead_split [--weights DIR] [--rounds 3]

It holds ``/tmp/pattern-tts-bench.lock`` while it measures, as ``bench.run`` does.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench import loadgen, procs
from bench.procs import log
from bench.stack import StackPorts, stack_env, start_stack
from bench.workload import Plan, Workload, make_workload, resolve_weights

RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS = {
    "pieces always": {"PATTERN_TTS_LEAD_SPLIT_MAX_IN_FLIGHT": "1000"},
    "pieces when idle (default)": {},
}
LEVEL = 16
KEYS = ("audio_s_per_wall_s", "wall_s", "audio_s", "latency_p50_s", "latency_p95_s", "ttfb_p50_s", "stall_p95_s",
        "failed")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, help="weights directory (default: as bench.run)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    weights, kind, voice = resolve_weights(args.weights)
    plan = Plan(quick=False)
    work = make_workload(plan, weights, voice)
    tmp = Path(tempfile.mkdtemp(prefix="lead-split-"))
    stacks: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
    out: dict[str, Any] = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "weights": kind,
                           "voice": voice, "concurrency": LEVEL, "rounds": [], "request_100_words": {}}  # fmt: skip
    try:
        with procs.bench_lock("lead split A/B"):
            for name, settings in VARIANTS.items():
                ports, log_path = StackPorts.free(), tmp / f"stack-{len(stacks)}.log"
                process = start_stack(weights, ports, stack_env(settings), log_path)
                stacks[name] = (process, f"{ports.url}/v1/audio/speech")
                procs.wait_ready(f"{ports.url}/ready", process, log_path, 1200)
                loadgen.run(stacks[name][1], work.bodies(work.c1[:2]), 1)  # warm-up
                log(f"{name}: ready")
            with contextlib.ExitStack() as sampling:
                monitors = {name: sampling.enter_context(procs.RssMonitor(process.pid))
                            for name, (process, _) in stacks.items()}  # fmt: skip
                measure(work, stacks, args.rounds, plan.request_100_repeats, out)
            out["peak_rss_mib"] = {name: monitor.result()["peak_total_mib"] for name, monitor in monitors.items()}
    finally:
        for process, _ in stacks.values():
            procs.stop(process)
    report(work, kind, args.rounds, out)


def measure(
    work: Workload, stacks: dict[str, tuple[subprocess.Popen[bytes], str]], rounds: int, repeats: int,
    out: dict[str, Any],
) -> None:  # fmt: skip
    """The c=16 set on each stack in alternation, ``rounds`` times, then the 100-word request."""
    for r in range(rounds):
        order = list(VARIANTS) if r % 2 == 0 else list(reversed(VARIANTS))
        for name in order:
            level = loadgen.run(stacks[name][1], work.bodies(work.levels[LEVEL]), LEVEL)
            row = {"round": r, "variant": name, **{k: level[k] for k in KEYS}}
            out["rounds"].append(row)
            log(json.dumps(row))
    for name in VARIANTS:
        body = (work.body(work.text_100, "pcm"), len(work.text_100.split()))
        streamed = loadgen.run(stacks[name][1], [body] * repeats, 1)
        out["request_100_words"][name] = {
            "ttfb_s": [round(x["ttfb_s"], 3) for x in streamed["records"]],
            "total_s": [round(x["latency_s"], 2) for x in streamed["records"]],
        }


def report(work: Workload, kind: str, rounds: int, out: dict[str, Any]) -> None:
    """Print the medians and write the results file."""
    print(f"\nconcurrency {LEVEL}, {len(work.levels[LEVEL])} one-sentence requests, {kind}; median of {rounds}")
    print(f"{'variant':28s} {'audio s/s':>9s} {'p50 s':>6s} {'p95 s':>6s} {'ttfb p50':>8s} {'stall p95':>9s} "
          f"{'peak RSS MiB':>12s}")  # fmt: skip
    out["summary"] = {}
    for name in VARIANTS:
        rows = [row for row in out["rounds"] if row["variant"] == name]
        med = {k: round(statistics.median(row[k] for row in rows), 3) for k in KEYS}
        out["summary"][name] = med
        print(f"{name:28s} {med['audio_s_per_wall_s']:9.2f} {med['latency_p50_s']:6.1f} {med['latency_p95_s']:6.1f} "
              f"{med['ttfb_p50_s']:8.2f} {med['stall_p95_s']:9.2f} {out['peak_rss_mib'][name]:12.0f}")  # fmt: skip
    for name, figures in out["request_100_words"].items():
        print(f"100 words streamed, {name}: first byte {figures['ttfb_s']} s, total {figures['total_s']} s")
    path = RESULTS / f"lead-split-{dt.date.today().isoformat()}.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

"""Long text inputs: when their first audio comes, and how long other requests' G2P waits beside them.

``g2p_block_chars`` (default 2,000): a longer text input goes to the g2p model in blocks cut at a
paragraph, sentence or word end, and synthesis starts once the first block is converted. With 0 the
whole input goes in one call: its first audio waits for the whole text's G2P, and the single g2p
model instance converts nothing else meanwhile.

Both stacks (``pattern-tts serve``) run at once, one with the default and one with
``PATTERN_TTS_G2P_BLOCK_CHARS=0``; each round measures them in turn (the order alternating):

* **first byte**: a streamed pcm request of N characters (the corpus paragraphs repeated, so the
  text has paragraph breaks), for each N in ``--chars``: seconds to its first audio byte. The
  stream is then closed (its queued kokoro calls are cancelled) and the stack left to go idle.
* **G2P beside it**: the longest request again, and ``--delay`` seconds later a one-sentence
  ``POST /v1/audio/phonemize`` (G2P only, the same g2p model): its seconds. A short speech request
  would then also wait in the kokoro queue behind the long request's chunks, with or without blocks.

Also, for scale: the G2P of each text in this process (``Phonemizer``), seconds.

    .venv/bin/python -m bench.long_input [--weights DIR] [--rounds 2] [--chars 20000,100000]

Prints a table and writes ``bench/results/long-input-<date>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench import corpus, procs
from bench.procs import log
from bench.stack import StackPorts, stack_env, start_stack
from bench.workload import resolve_weights

RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS: dict[str, dict[str, str]] = {"blocks": {}, "whole": {"PATTERN_TTS_G2P_BLOCK_CHARS": "0"}}
SHORT = "It is a truth universally acknowledged, that a single man must be in want of a wife."


def long_text(chars: int) -> str:
    """The corpus paragraphs, blank lines between them, repeated to at most ``chars`` characters."""
    text = "\n\n".join(p for _, p in corpus.paragraphs())
    return (text * (chars // len(text) + 1))[:chars].rsplit(" ", 1)[0]


def first_byte_s(client: httpx.Client, url: str, body: dict[str, Any], opened: threading.Event | None = None) -> float:
    """Seconds from sending ``body`` to the first audio byte of its streamed response (then closed)."""
    start = time.perf_counter()
    with client.stream("POST", f"{url}/v1/audio/speech", json=body) as response:
        if opened is not None:
            opened.set()
        response.raise_for_status()
        for data in response.iter_raw():
            if data:
                return time.perf_counter() - start
    raise RuntimeError("the stream ended without audio")


def wait_idle(pid: int, timeout_s: float = 300) -> float:
    """Wait until the process tree under ``pid`` uses under 10 % of a CPU for 2 s in a row."""
    start = time.monotonic()
    root = psutil.Process(pid)
    quiet = 0
    while time.monotonic() - start < timeout_s and quiet < 2:
        tree = [root, *root.children(recursive=True)]
        before = sum(sum(p.cpu_times()[:2]) for p in tree if p.is_running())
        time.sleep(1)
        after = sum(sum(p.cpu_times()[:2]) for p in tree if p.is_running())
        quiet = quiet + 1 if after - before < 0.1 else 0
    return time.monotonic() - start


def measure(url: str, pid: int, voice: str, chars: list[int], delay_s: float) -> dict[str, Any]:
    """One round on one stack: each long request's first byte, then a short G2P beside the longest."""
    out: dict[str, Any] = {"first_byte_s": {}}
    with httpx.Client(timeout=600) as client:
        for n in chars:
            body = {"input": long_text(n), "voice": voice, "lang": "a", "response_format": "pcm"}
            out["first_byte_s"][str(n)] = round(first_byte_s(client, url, body), 3)
            wait_idle(pid)
        body = {"input": long_text(max(chars)), "voice": voice, "lang": "a", "response_format": "pcm"}
        opened = threading.Event()
        long_request = threading.Thread(target=first_byte_s, args=(httpx.Client(timeout=600), url, body, opened))
        long_request.start()
        time.sleep(delay_s)
        start = time.perf_counter()
        client.post(f"{url}/v1/audio/phonemize", json={"input": SHORT, "lang": "a"}).raise_for_status()
        out["short_g2p_s"] = round(time.perf_counter() - start, 3)
        long_request.join()
        wait_idle(pid)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--chars", default="20000,100000", help="input lengths, comma-separated")
    parser.add_argument("--delay", type=float, default=0.3, help="seconds between the long request and the short G2P")
    args = parser.parse_args()
    chars = [int(c) for c in args.chars.split(",")]

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from pattern_tts.text import Phonemizer

    weights, kind, voice = resolve_weights(args.weights)
    phonemizer = Phonemizer()
    phonemizer.chunks(SHORT)
    g2p_s = {}
    for n in chars:
        start = time.perf_counter()
        phonemizer.chunks(long_text(n))
        g2p_s[str(n)] = round(time.perf_counter() - start, 2)
    log(f"in-process G2P: {g2p_s} s")

    runs: dict[str, list[dict[str, Any]]] = {label: [] for label in VARIANTS}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pattern-tts-long-input-") as tmp, procs.bench_lock("long input"):
        stacks = {}
        try:
            for label, settings in VARIANTS.items():
                ports = StackPorts.free()
                log_path = Path(tmp) / f"{label}.log"
                stacks[label] = (ports.url, start_stack(weights, ports, stack_env(settings), log_path), log_path)
            for url, process, log_path in stacks.values():
                procs.wait_ready(f"{url}/ready", process, log_path, 1200)
                wait_idle(process.pid)
            for r in range(args.rounds):
                for label in list(VARIANTS) if r % 2 == 0 else list(VARIANTS)[::-1]:
                    url, process, _ = stacks[label]
                    runs[label].append(measure(url, process.pid, voice, chars, args.delay))
                    log(f"  round {r} {label}: {runs[label][-1]}")
        finally:
            for _, process, _ in stacks.values():
                procs.stop(process)
        tracebacks = {label: "Traceback" in path.read_text(errors="replace") for label, (_, _, path) in stacks.items()}

    summary = {
        label: {
            **{f"first_byte_s_{n}": statistics.median(r["first_byte_s"][str(n)] for r in rounds) for n in chars},
            "short_g2p_s": statistics.median(r["short_g2p_s"] for r in rounds),
        }
        for label, rounds in runs.items()
    }
    print(f"\n{'stack':<8} " + " ".join(f"{k:>22}" for k in next(iter(summary.values()))))
    for label, row in summary.items():
        print(f"{label:<8} " + " ".join(f"{v:>22}" for v in row.values()))
    from bench.run import git_state, machine

    results = {"date": dt.date.today().isoformat(), "git": git_state(), "machine": machine(), "weights": kind,
               "voice": voice, "chars": chars,
               "delay_s": args.delay, "in_process_g2p_s": g2p_s, "variants": VARIANTS, "rounds": runs,
               "summary": summary, "traceback_in_log": tracebacks,
               "elapsed_s": round(time.perf_counter() - started, 1)}  # fmt: skip
    out = RESULTS / f"long-input-{results['date']}.json"
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

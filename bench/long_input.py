"""Long text inputs: when their first audio comes, and what they do to the requests beside them.

``g2p_block_chars`` (default 2,000): a longer text input goes to the g2p model in blocks cut at a
paragraph, sentence or word end, and synthesis starts once the first block is converted. With 0 the
whole input goes in one call: its first audio waits for the whole text's G2P, and the single g2p
model instance converts nothing else meanwhile. ``max_phonemes_in_flight`` (unset: 1,100 on CPU): how
much of one request's text waits in Triton's queue as kokoro calls, ahead of any request that comes
later.

The stacks (``pattern-tts serve``) in ``VARIANTS`` run at once; each round measures them in turn
(the order alternating):

* **first byte**: a streamed pcm request of N characters (the corpus paragraphs repeated, so the
  text has paragraph breaks), for each N in ``--chars``: seconds to its first audio byte. The
  stream is then closed (its queued kokoro calls are cancelled) and the stack left to go idle.
* **G2P beside it**: the longest request again, and ``--delay`` seconds later a one-sentence
  ``POST /v1/audio/phonemize`` (G2P only, the same g2p model): its seconds.
* **speech beside a stream**: a streamed request of ``--beside-chars`` characters read for
  ``--beside-s`` seconds, and 5 s into it a one-sentence streamed speech request: its first byte,
  and the seconds of audio the long stream delivered in that time.
* **100 words**: the benchmark's 100-word request alone, streamed: first byte and end, seconds.

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

from bench import corpus, loadgen, procs
from bench.procs import log
from bench.stack import StackPorts, stack_env, start_stack
from bench.workload import resolve_weights

RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS: dict[str, dict[str, str]] = {
    "defaults": {},
    "G2P in one call": {"PATTERN_TTS_G2P_BLOCK_CHARS": "0"},
    "no phoneme limit": {"PATTERN_TTS_MAX_PHONEMES_IN_FLIGHT": "0"},
}
SHORT = "It is a truth universally acknowledged, that a single man must be in want of a wife."
BESIDE_AFTER_S = 5.0  # when the short speech request follows the long stream
BESIDE_KEYS = ("short_first_byte_s", "long_audio_s")
HUNDRED_KEYS = ("first_byte_s", "end_s")


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


def speech_beside_stream(url: str, voice: str, chars: int, window_s: float) -> dict[str, float]:
    """A streamed request of ``chars`` characters read for ``window_s`` s; BESIDE_AFTER_S s into it, a
    one-sentence streamed request: its first byte, and the long stream's audio seconds in the window."""
    received = [0]

    def read_long() -> None:
        body = {"input": long_text(chars), "voice": voice, "lang": "a", "response_format": "pcm"}
        start = time.perf_counter()
        with httpx.Client(timeout=600) as client, client.stream("POST", f"{url}/v1/audio/speech", json=body) as r:
            for data in r.iter_raw():
                received[0] += len(data)
                if time.perf_counter() - start > window_s:
                    return

    long_request = threading.Thread(target=read_long)
    long_request.start()
    time.sleep(BESIDE_AFTER_S)
    body = {"input": SHORT, "voice": voice, "lang": "a", "response_format": "pcm"}
    with httpx.Client(timeout=600) as client:
        short_first_byte = first_byte_s(client, url, body)
    long_request.join()
    return {"short_first_byte_s": round(short_first_byte, 3), "long_audio_s": round(received[0] / 48_000, 1)}


def measure(url: str, pid: int, voice: str, args: argparse.Namespace, chars: list[int]) -> dict[str, Any]:
    """One round on one stack: each long request's first byte, a short G2P beside the longest, and a
    short speech request beside a long stream."""
    delay_s = args.delay
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
    out["beside_stream"] = speech_beside_stream(url, voice, args.beside_chars, args.beside_s)
    wait_idle(pid)
    out["hundred_words"] = hundred_words(url, voice)
    wait_idle(pid)
    return out


def hundred_words(url: str, voice: str) -> dict[str, float]:
    """The 100-word request streamed to its end (as ``bench.run`` sends it): first byte and end, seconds."""
    body = {"input": corpus.request_100_words(), "voice": voice, "lang": "a", "response_format": "pcm"}
    level = loadgen.run(f"{url}/v1/audio/speech", [(body, 100)], 1)
    if level["failed"]:
        raise RuntimeError(f"the 100-word request failed: {level['errors']}")
    return {"first_byte_s": level["ttfb_p50_s"], "end_s": level["latency_p50_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--chars", default="20000,100000", help="input lengths, comma-separated")
    parser.add_argument("--delay", type=float, default=0.3, help="seconds between the long request and the short G2P")
    parser.add_argument("--beside-chars", type=int, default=6000, help="characters of the stream a short request joins")
    parser.add_argument("--beside-s", type=float, default=60.0, help="seconds that stream is read")
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
                    runs[label].append(measure(url, process.pid, voice, args, chars))
                    log(f"  round {r} {label}: {runs[label][-1]}")
        finally:
            for _, process, _ in stacks.values():
                procs.stop(process)
        tracebacks = {label: "Traceback" in path.read_text(errors="replace") for label, (_, _, path) in stacks.items()}

    summary = {
        label: {
            **{f"first_byte_s_{n}": statistics.median(r["first_byte_s"][str(n)] for r in rounds) for n in chars},
            "short_g2p_s": statistics.median(r["short_g2p_s"] for r in rounds),
            **{k: statistics.median(r["beside_stream"][k] for r in rounds) for k in BESIDE_KEYS},
            **{f"hundred_words_{k}": statistics.median(r["hundred_words"][k] for r in rounds) for k in HUNDRED_KEYS},
        }
        for label, rounds in runs.items()
    }
    print(f"\n{'stack':<8} " + " ".join(f"{k:>22}" for k in next(iter(summary.values()))))
    for label, row in summary.items():
        print(f"{label:<8} " + " ".join(f"{v:>22}" for v in row.values()))
    from bench.run import git_state, machine

    results = {"date": dt.date.today().isoformat(), "git": git_state(), "machine": machine(), "weights": kind,
               "voice": voice, "chars": chars, "delay_s": args.delay, "beside_chars": args.beside_chars,
               "beside_s": args.beside_s, "beside_after_s": BESIDE_AFTER_S, "in_process_g2p_s": g2p_s,
               "variants": VARIANTS, "rounds": runs,
               "summary": summary, "traceback_in_log": tracebacks,
               "elapsed_s": round(time.perf_counter() - started, 1)}  # fmt: skip
    out = RESULTS / f"long-input-{results['date']}.json"
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

"""How the gateway cuts a request's first chunk into streamed pieces: speech rate, first audio, stalls.

The gateway sends a request's first chunk to Triton as growing pieces so that its first audio is
ready early (``gateway.serving.split_lead``). Kokoro reads a piece on its own more slowly than the
same words inside a longer input, and pauses at a piece's end as at a full stop. This script
compares, on the benchmark's requests (the 100-word request and the concurrency-16 sentences), in
process with the engine as the kokoro model loads it (fast path, warmed up):

* ``whole``: no cut (the chunks as Kokoro's KPipeline would make them);
* ``split_lead``: the gateway's rule: cut at the first sentence or clause end past 12 phonemes,
  then each piece at least twice the one before;
* ``split_lead, growth 3 (before)``: the same cuts with each piece at least 3 times the one before
  (the rule until a run on an AVX2 CPU stalled with it);
* ``sentence ends first (tried)``: a rule tried and not kept: the first piece ends at a sentence
  end (at a clause end only when that sentence is over 100 phonemes), each next one at the first
  sentence end at least 3 times all the pieces before it (a clause end when that sentence end is
  past 5 times). Its pieces are fewer and longer.

For each: the pieces, the seconds of audio (vs whole: the extra is slower speech and extra pauses;
the silence where two pieces meet trimmed as the gateway trims it: ``trim_silence``), the pause
where two pieces meet (milliseconds below -60 dBFS, trimmed and untrimmed),
the seconds to synthesise the first piece (first audio), and the playback stalls of a stream that
starts playing when the first piece is ready, with the pieces synthesised one after another (what
two cores do), each piece's synthesis time measured.

    flock /tmp/pattern-tts-bench.lock .venv/bin/python -m bench.stream_pieces [--weights DIR]

Prints a table and writes ``bench/results/stream-pieces-<date>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench import corpus
from gateway.serving import _LEAD_END, KEEP_TAIL_FRAMES, SILENCE_LEVEL, _cut_at, phoneme_words, split_lead, trim_silence
from gateway.triton import Chunk, Synthesized
from pattern_tts.synthesis.engine import SynthesisRequest
from pattern_tts.text.g2p import Phonemizer

RESULTS = Path(__file__).resolve().parent / "results"
SAMPLE_RATE = 24_000


_SENTENCE_END = re.compile(r"[.!?…]+[\"”')\]]*(?=\s)")


def sentence_ends_first(chunk: Chunk) -> list[Chunk]:
    """The tried rule: sentence ends where it can, pieces growing with all the pieces before."""

    def cut(chunk: Chunk, need: int, limit: int) -> tuple[Chunk, Chunk] | None:
        at_sentence = _cut_at(chunk, _SENTENCE_END, need)
        if at_sentence is None or len(at_sentence[0].phonemes) > limit:
            return _cut_at(chunk, _LEAD_END, need) or at_sentence
        return at_sentence

    pieces: list[Chunk] = []
    need, limit = 12, 100
    while (piece := cut(chunk, need, limit)) is not None:
        lead, chunk = piece
        pieces.append(lead)
        done = sum(len(p.phonemes) for p in pieces)
        need, limit = 3 * done, 5 * done
    return [*pieces, chunk]


RULES: dict[str, Callable[[Chunk], list[Chunk]]] = {
    "whole": lambda chunk: [chunk],
    "split_lead": split_lead,
    # Slower pieces need slower growth: a stream does not stall while each piece takes no longer to
    # synthesise than the audio before it plays, that is growth <= 1 / (synthesis s per audio s).
    "split_lead, growth 3 (before)": lambda chunk: split_lead(chunk, growth=3),
    "sentence ends first (tried)": sentence_ends_first,
}


def median_or_none(values: list[int]) -> float | None:
    return statistics.median(values) if values else None


def pauses(waves: list[np.ndarray]) -> list[int]:
    """Milliseconds below -60 dBFS where each piece meets the next: the end of one and the start of
    the next."""
    ends = []
    for wave in waves:
        loud = np.flatnonzero(np.abs(wave) > SILENCE_LEVEL)
        first, last = (int(loud[0]), int(loud[-1])) if loud.size else (len(wave), -1)
        ends.append((first, len(wave) - 1 - last))
    return [round((a[1] + b[0]) * 1000 / SAMPLE_RATE) for a, b in zip(ends, ends[1:], strict=False)]


def stream(synth_s: list[float], audio_s: list[float]) -> tuple[float, float]:
    """(first audio s, total stall s) of pieces synthesised one after another, played in order as
    soon as each is ready."""
    ready = 0.0
    playing_until = 0.0
    stall = 0.0
    for i, (synth, audio) in enumerate(zip(synth_s, audio_s, strict=True)):
        ready += synth
        if i and ready > playing_until:
            stall += ready - playing_until
        playing_until = max(playing_until, ready) + audio
    return synth_s[0], stall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    from bench.run import git_state, machine
    from bench.workload import resolve_weights, warm_engine

    weights, kind, voice = resolve_weights(args.weights)
    engine = warm_engine(weights)
    phonemizer = Phonemizer(json.loads((weights / "config.json").read_text()).get("vocab"))

    def synthesize(phonemes: str, lead: bool, tail: bool) -> tuple[float, np.ndarray, np.ndarray, int]:
        """(seconds to synthesise, the audio, the audio trimmed where the piece meets another
        (``lead``, ``tail``) as the gateway sends it, frames of speech without the boundary tokens)."""
        item = engine.prepare(SynthesisRequest(phonemes, voice))
        start = time.perf_counter()
        (out,) = engine.synthesize([item])
        elapsed = time.perf_counter() - start
        result = Synthesized(out.audio.numpy(), out.durations.numpy())
        trimmed = trim_silence(result, lead, KEEP_TAIL_FRAMES["piece"] if tail else None)
        return elapsed, result.waveform, trimmed.waveform, int(out.durations[1:-1].sum())

    texts = [("100-word request", corpus.request_100_words())]
    texts += [(f"c=16 sentence, {s.words} words", s.text) for s in corpus.mixed(16)]
    rows: list[dict[str, Any]] = []
    for label, text in texts:
        chunks = phonemizer.chunks(text)
        first = Chunk(chunks[0].phonemes, chunks[0].phonemes, phoneme_words(chunks[0].phonemes))
        whole_audio = 0.0
        for rule, cut in RULES.items():
            pieces = [p.phonemes for p in cut(first)]
            runs = [synthesize(p, lead=k > 0, tail=k < len(pieces) - 1) for k, p in enumerate(pieces)]
            synth_s = [r[0] for r in runs]
            audio_s = [len(r[2]) / SAMPLE_RATE for r in runs]
            first_s, stall_s = stream(synth_s, audio_s)
            if rule == "whole":
                whole_audio = sum(audio_s)
            rows.append({
                "text": label, "rule": rule, "pieces": [len(p) for p in pieces],
                "audio_s": round(sum(audio_s), 3), "vs_whole": round(sum(audio_s) / whole_audio, 3),
                "speech_frames": sum(r[3] for r in runs), "synth_s": round(sum(synth_s), 3),
                "pauses_ms": pauses([r[2] for r in runs]), "untrimmed_pauses_ms": pauses([r[1] for r in runs]),
                "first_audio_s": round(first_s, 3), "stall_s": round(stall_s, 3),
            })  # fmt: skip
            r = rows[-1]
            print(f"{label:<28} {rule:<28} {str(r['pieces']):<22} {r['audio_s']:>7} {r['vs_whole']:>6}x "
                  f"{r['synth_s']:>6} {r['first_audio_s']:>6} {r['stall_s']:>6}", flush=True)  # fmt: skip

    summary = {}
    whole_total = sum(r["audio_s"] for r in rows if r["rule"] == "whole")
    for rule in RULES:
        mine = [r for r in rows if r["rule"] == rule]
        summary[rule] = {
            "audio_s": round(sum(r["audio_s"] for r in mine), 2),
            "vs_whole": round(sum(r["audio_s"] for r in mine) / whole_total, 3),
            "synth_s": round(sum(r["synth_s"] for r in mine), 2),
            "first_audio_s_mean": round(sum(r["first_audio_s"] for r in mine) / len(mine), 3),
            "first_audio_s_max": max(r["first_audio_s"] for r in mine),
            "stall_s": round(sum(r["stall_s"] for r in mine), 3),
            "pieces": sum(len(r["pieces"]) for r in mine),
            "pause_ms_median": median_or_none([x for r in mine for x in r["pauses_ms"]]),
            "untrimmed_pause_ms_median": median_or_none([x for r in mine for x in r["untrimmed_pauses_ms"]]),
        }  # fmt: skip
    print(f"\n{'rule':<28} {'pieces':>6} {'audio s':>8} {'vs whole':>8} {'synth s':>8} {'first mean':>10} "
          f"{'first max':>9} {'stall s':>8} {'pause ms':>8} {'untrimmed':>9}")  # fmt: skip
    for rule, s in summary.items():
        print(f"{rule:<28} {s['pieces']:>6} {s['audio_s']:>8} {s['vs_whole']:>7}x {s['synth_s']:>8} "
              f"{s['first_audio_s_mean']:>10} {s['first_audio_s_max']:>9} {s['stall_s']:>8} "
              f"{s['pause_ms_median']!s:>8} {s['untrimmed_pause_ms_median']!s:>9}")  # fmt: skip
    results = {"date": dt.date.today().isoformat(), "weights": kind, "voice": voice, "git": git_state(),
               "machine": machine(), "threads": torch.get_num_threads(), "rows": rows, "summary": summary}  # fmt: skip
    out = args.out or RESULTS / f"stream-pieces-{results['date']}.json"
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

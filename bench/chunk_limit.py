"""Phonemes per chunk: does cutting long text into shorter chunks than Kokoro's 510 synthesise faster?

Two measurements, in process with the engine as the kokoro model loads it (fast path, warmed up):

1. **Decoder cost per frame by item length**: the 100-word request's first chunk (about 1000
   frames) through the text side once, then its first 100, 200, ... frames decoded alone. Long
   items cost more per frame (their activations outgrow the CPU caches), so shorter chunks would
   decode faster per frame.
2. **Chunk limits end to end**: but Kokoro reads a short input more slowly than the same words
   inside a longer one. The benchmark's long texts (the 100-word request and the concurrency-16
   sentences of 40 words or more) are chunked at each ``--limits`` value, cut where Kokoro's
   KPipeline cuts (sentence ends first), and synthesised one chunk after another. The limits run in
   turn, in alternating order per round, so that the machine's drift falls on all of them.
3. **Pauses where chunks meet**: a long paragraph (the 100-word request and 6 corpus sentences) in
   510-phoneme chunks: the pause where two chunks meet (ms below -60 dBFS), as Kokoro makes it and as
   the gateway trims it (``gateway.serving.trim_silence``), against Kokoro's own pauses inside a chunk.

    flock /tmp/pattern-tts-bench.lock .venv/bin/python -m bench.chunk_limit [--weights DIR] [--rounds 2]

Prints the decoder's cost per frame and seconds of synthesis and of audio per limit; writes
``bench/results/chunk-limit-<date>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench import corpus
from bench.stream_pieces import pauses
from bench.workload import resolve_weights, warm_engine
from gateway.serving import KEEP_TAIL_FRAMES, SILENCE_LEVEL, trim_silence
from gateway.triton import Synthesized
from pattern_tts.synthesis.engine import KokoroEngine, SynthesisRequest
from pattern_tts.text.g2p import Phonemizer

RESULTS = Path(__file__).resolve().parent / "results"
SAMPLE_RATE = 24_000
LIMITS = (510, 400, 300, 250)


def decode_cost_by_length(engine: KokoroEngine, voice: str, vocab: dict[str, int], rounds: int) -> dict[str, float]:
    """Median ms per frame of decoding the first N frames of the 100-word request's first chunk."""
    batched = engine.batched
    first = Phonemizer(vocab).chunks(corpus.request_100_words())[0].phonemes
    enc = batched.encode_frames(batched.encode_tokens([engine.prepare(SynthesisRequest(first, voice, seed=1))]))
    frames = int(enc.frames[0])
    times: dict[int, list[float]] = {n: [] for n in range(100, frames + 1, 100)}
    with torch.no_grad():
        for _ in range(rounds):
            for n in times:
                part = replace(enc, asr=enc.asr[..., :n], f0=enc.f0[..., : 2 * n], noise=enc.noise[..., : 2 * n],
                               frames=torch.tensor([n]))  # fmt: skip
                start = time.perf_counter()
                batched.decode(part)
                times[n].append((time.perf_counter() - start) * 1000 / n)
    out = {str(n): round(statistics.median(ms), 2) for n, ms in times.items()}
    print("decoder ms per frame by item length: " + ", ".join(f"{n}: {ms}" for n, ms in out.items()), flush=True)
    return out


def join_pauses(engine: KokoroEngine, voice: str, vocab: dict[str, int]) -> dict[str, list[int]]:
    """Pauses (ms below -60 dBFS) where the 510-phoneme chunks of one long paragraph meet, untrimmed
    and trimmed as the gateway trims them, and Kokoro's own pauses over 150 ms inside the chunks."""
    text = " ".join([corpus.request_100_words(), *(s.text for s in corpus.mixed(16)[:6])]).replace("\n", " ")
    chunks = Phonemizer(vocab).chunks(text)
    results = []
    for c in chunks:
        (out,) = engine.synthesize([engine.prepare(SynthesisRequest(c.phonemes, voice, seed=1))])
        results.append(Synthesized(out.audio.numpy(), out.durations.numpy()))
    last = len(results) - 1
    trimmed = [trim_silence(r, i > 0, KEEP_TAIL_FRAMES["chunk"] if i < last else None) for i, r in enumerate(results)]
    inside = []
    for r in results:
        loud = np.flatnonzero(np.abs(r.waveform) > SILENCE_LEVEL)
        gaps = np.diff(loud) * 1000 / SAMPLE_RATE
        inside += [round(float(g)) for g in gaps if g > 150]
    measured = {
        "untrimmed_ms": pauses([r.waveform for r in results]),
        "trimmed_ms": pauses([r.waveform for r in trimmed]),
        "inside_chunks_ms": sorted(inside),
    }
    print(f"pauses where {len(chunks)} chunks meet: {measured['untrimmed_ms']} ms untrimmed,"
          f" {measured['trimmed_ms']} ms trimmed; inside the chunks (over 150 ms): {measured['inside_chunks_ms']}",
          flush=True)  # fmt: skip
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--limits", default=",".join(map(str, LIMITS)), help="phonemes per chunk, at most")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    weights, kind, voice = resolve_weights(args.weights)
    engine = warm_engine(weights)
    vocab = json.loads((weights / "config.json").read_text()).get("vocab")
    limits = [int(x) for x in args.limits.split(",")]
    texts = [corpus.request_100_words()] + [s.text for s in corpus.mixed(16) if s.words >= 40]
    chunks = {limit: [[c.phonemes for c in Phonemizer(vocab, limit=limit).chunks(t)] for t in texts]
              for limit in limits}  # fmt: skip

    per_frame = decode_cost_by_length(engine, voice, vocab, args.rounds)
    joins = join_pauses(engine, voice, vocab)

    runs: dict[int, list[dict[str, float]]] = {limit: [] for limit in limits}
    for r in range(args.rounds):
        for limit in limits if r % 2 == 0 else limits[::-1]:
            synth = audio = 0.0
            for text_chunks in chunks[limit]:
                for phonemes in text_chunks:
                    item = engine.prepare(SynthesisRequest(phonemes, voice, seed=1))
                    start = time.perf_counter()
                    (output,) = engine.synthesize([item])
                    synth += time.perf_counter() - start
                    audio += output.audio.numel() / SAMPLE_RATE
            runs[limit].append({"synth_s": round(synth, 3), "audio_s": round(audio, 3)})
            print(f"round {r} limit {limit}: {synth:.2f} s for {audio:.1f} s of audio", flush=True)

    summary: dict[str, dict[str, Any]] = {}
    for limit in limits:
        synth = sum(x["synth_s"] for x in runs[limit]) / args.rounds
        audio = runs[limit][0]["audio_s"]
        summary[str(limit)] = {
            "chunks": sum(len(c) for c in chunks[limit]),
            "synth_s": round(synth, 2),
            "audio_s": round(audio, 2),
            "synth_s_per_audio_s": round(synth / audio, 3),
        }
    print(f"\n{'limit':>5} {'chunks':>6} {'synthesis s':>11} {'audio s':>8} {'per audio s':>11}")
    for name, s in summary.items():
        print(f"{name:>5} {s['chunks']:>6} {s['synth_s']:>11} {s['audio_s']:>8} {s['synth_s_per_audio_s']:>11}")
    results = {"date": dt.date.today().isoformat(), "weights": kind, "voice": voice,
               "threads": torch.get_num_threads(), "words": [len(t.split()) for t in texts],
               "rounds": args.rounds, "decoder_ms_per_frame": per_frame, "join_pauses": joins,
               "runs": {str(k): v for k, v in runs.items()}, "summary": summary}  # fmt: skip
    out = args.out or RESULTS / f"chunk-limit-{results['date']}.json"
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

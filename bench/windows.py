"""Windowed decoding, tried and not kept: a reading decoded window by window against its whole decode.

    .venv/bin/python -m bench.windows [--weights DIR] [--context 4,8]

The gateway streams a request's first chunk as growing pieces, each read alone
(``gateway.serving.split_lead``); Kokoro reads a piece alone more slowly than inside a longer input
(bench/stream_pieces.py: 15 % more audio for the 100-word request). The idea tried here: read the
lead piece alone, then run the text side once on the rest of the chunk and decode its frames window
by window, so the windows keep that reading's durations, F0 and energy. Windows are cut between
words (they join without a pause), the first as long as the lead piece (the rest's text side runs
before it is decoded), each next one at least 3 times the one before, none at the end shorter than
the first; each is decoded with context frames either side (dropped), its harmonic source cut from
the whole reading's, fading in over 10 ms from what the window before decoded past its end. The
decoder's instance norms take their statistics over the window, so the audio is close to, not equal
to, the whole decode. For the rest of the first chunk of the 100-word request and of the
concurrency-16 sentences cut into more than one window, in process with the engine as the kokoro
model loads it (fast path, warmed up), this prints and writes (``bench/results/windows-<date>.json``):

* waveform SNR and log-mel distance (mean absolute dB over frames within 40 dB of the loudest) of
  the windows against the whole decode of the same reading, for each context size;
* the same two figures for the fast path against float32 eager on the whole reading: the
  difference the fidelity guard already accepts, for scale;
* at each cut, the step between the two samples there against the largest step between two samples
  of the whole decode within 5 ms of the cut (a step well above those would be a click);
* seconds to decode the windows against the whole reading;
* word error rates of pocketsphinx's transcripts against the text, over all readings: the whole
  decode, the windows (the largest context), and the same words cut by ``split_lead`` (the
  gateway's rule: at sentence or clause ends, each piece read alone, the joins trimmed as the
  gateway trims them); needs ``pocketsphinx`` and ``jiwer`` (the ``weights`` extra), skipped
  without them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench import corpus
from bench.weights_intelligibility import Transcriber
from bench.weights_intelligibility import words as said_words
from bench.workload import resolve_weights, warm_engine
from gateway.serving import (
    _LEAD_END,
    KEEP_TAIL_FRAMES,
    LEAD_GROWTH,
    LEAD_MIN_PHONEMES,
    _cut_at,
    phoneme_words,
    split_lead,
    trim_silence,
)
from gateway.triton import Chunk, Synthesized, Word
from pattern_tts.synthesis.batched import SAMPLES_PER_FRAME, BatchedKokoro, Encoded, fold_weight_norm
from pattern_tts.synthesis.engine import SynthesisRequest, load_kmodel
from pattern_tts.text.g2p import Phonemizer
from pattern_tts.weights.parity import snr_db

RESULTS = Path(__file__).resolve().parent / "results"
SAMPLE_RATE = 24_000
FADE_SAMPLES = 240  # 10 ms


def window_cuts(rest: str, first: int, growth: int = LEAD_GROWTH) -> list[int]:
    """Positions in ``rest`` (phonemes) where windows end: at a space, the first at least ``first``
    symbols in, each next at least ``growth`` times the one before, and never leaving fewer than
    ``first`` symbols after a cut."""
    cuts: list[int] = []
    start, need = 0, first
    while (end := rest.find(" ", start + need)) > 0 and len(rest) - end >= first:
        cuts.append(end)
        start, need = end, growth * (end - start)
    return cuts


def window_frames(durations: torch.Tensor, first: int, end: int) -> tuple[int, int]:
    """Frames ``[start, stop)`` of phonemes ``[first, end)`` of a reading whose tokens last
    ``durations`` (boundary tokens first and last); a window at an end takes its boundary token."""
    ends = durations.cumsum(0)
    start = 0 if first == 0 else int(ends[first])
    stop = int(ends[-1]) if end == len(durations) - 2 else int(ends[end])
    return start, stop


def decode_window(
    fast: BatchedKokoro, enc: Encoded, source: torch.Tensor, start: int, stop: int, context: int,
    tails: dict[int, torch.Tensor],
) -> torch.Tensor:  # fmt: skip
    """Frames ``[start, stop)`` of a reading (a batch of one) decoded alone with ``context`` frames
    either side; fades in from ``tails[start]`` (what the window before decoded past its end) and
    leaves its own in ``tails[stop]``."""
    frames = int(enc.frames[0])
    lo, hi = max(0, start - context), min(frames, stop + context)
    part = Encoded(
        asr=enc.asr[..., lo:hi], f0=enc.f0[:, 2 * lo : 2 * hi], noise=enc.noise[:, 2 * lo : 2 * hi],
        style=enc.style, seeds=enc.seeds, frames=enc.frames.new_tensor([hi - lo]), durations=enc.durations,
        token_lengths=enc.token_lengths,
    )  # fmt: skip
    audio = fast.decode(part, source[:, lo * SAMPLES_PER_FRAME : hi * SAMPLES_PER_FRAME])[0]
    first, end = (start - lo) * SAMPLES_PER_FRAME, (stop - lo) * SAMPLES_PER_FRAME
    tails[stop] = audio[end : end + FADE_SAMPLES]
    out = audio[first:end].clone()
    tail = tails.get(start)
    if tail is not None and len(tail):
        n = min(len(tail), len(out))
        ramp = 0.5 - 0.5 * torch.cos(torch.linspace(0, torch.pi, n + 2)[1:-1])
        out[:n] = tail[:n] * (1 - ramp) + out[:n] * ramp
    return out


def mel_filters(n_fft: int = 1024, n_mels: int = 80) -> torch.Tensor:
    """[n_fft / 2 + 1, n_mels] triangular mel filters (HTK scale) up to 12 kHz."""
    mel = np.linspace(0, 2595 * np.log10(1 + SAMPLE_RATE / 2 / 700), n_mels + 2)
    hz = 700 * (10 ** (mel / 2595) - 1)
    bins = np.fft.rfftfreq(n_fft, 1 / SAMPLE_RATE)
    filters = np.zeros((len(bins), n_mels))
    for i in range(n_mels):
        low, centre, high = hz[i : i + 3]
        filters[:, i] = np.clip(np.minimum((bins - low) / (centre - low), (high - bins) / (high - centre)), 0, None)
    return torch.tensor(filters, dtype=torch.float32)


MEL = mel_filters()


def log_mel_distance(audio: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean |difference| in dB of 80-band log-mel spectra, over the reference's frames within 40 dB
    of its loudest (speech, not silence)."""

    def log_mel(x: torch.Tensor) -> torch.Tensor:
        power = torch.stft(x.float(), 1024, 256, window=torch.hann_window(1024), return_complex=True).abs() ** 2
        return 10 * torch.log10(power.T @ MEL + 1e-10)

    a, r = log_mel(audio), log_mel(reference)
    loudest = r.max(dim=1).values
    speech = loudest > loudest.max() - 40
    return round(float((a[speech] - r[speech]).abs().mean()), 2)


def transcriber() -> Callable[[np.ndarray], str] | None:
    """pocketsphinx (as bench.weights_intelligibility runs it), or None without it."""
    try:
        return Transcriber()
    except ImportError:
        print("pocketsphinx or jiwer is not installed: no word error rates")
        return None


def read_alone(engine: Any, voice: str, pieces: list[Chunk], seed: int) -> np.ndarray:
    """``pieces`` each read alone, trimmed where they meet as the gateway trims pieces, joined."""
    waves = []
    for k, piece in enumerate(pieces):
        (out,) = engine.synthesize([engine.prepare(SynthesisRequest(piece.phonemes.strip(), voice, seed=seed + k))])
        result = Synthesized(out.audio.numpy(), out.durations.numpy())
        tail = KEEP_TAIL_FRAMES["piece"] if k < len(pieces) - 1 else None
        waves.append(trim_silence(result, k > 0, tail).waveform)
    return np.concatenate(waves)


def max_step_ratio(rows: list[dict[str, Any]], context: int) -> float:
    """The largest step at a cut over the whole decode's largest step near it (floor 1e-4)."""
    ratios = [
        step / max(whole, 1e-4)
        for r in rows
        for step, whole in zip(r["by_context"][context]["step_at_cut"], r["by_context"][context]["whole_step_near_cut"],
                               strict=True)
    ]  # fmt: skip
    return round(max(ratios), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--context", default="4,8", help="context frames to try, comma-separated")
    parser.add_argument("--seeds", default="1,2,3,4", help="noise seeds of the ASR comparison, comma-separated")
    args = parser.parse_args()
    weights, kind, voice = resolve_weights(args.weights)
    engine = warm_engine(weights)
    fast = engine.batched
    eager = load_kmodel(weights)
    fold_weight_norm(eager)
    reference = BatchedKokoro(eager)  # float32 eager: the fidelity guard's reference
    phonemizer = Phonemizer(json.loads((weights / "config.json").read_text()).get("vocab"))
    texts = [("100-word request", corpus.request_100_words())]
    texts += [(f"c=16 sentence, {s.words} words", s.text) for s in corpus.mixed(16)]
    contexts = sorted(int(c) for c in args.context.split(","))
    asr = transcriber()
    rows: list[dict[str, Any]] = []
    for label, text in texts:
        first = phonemizer.chunks(text)[0]
        spans = tuple(Word(w.word, w.start, w.end) for w in first.words) or phoneme_words(first.phonemes)
        chunk = Chunk(first.text, first.phonemes, spans)
        cut = _cut_at(chunk, _LEAD_END, LEAD_MIN_PHONEMES)
        if cut is None:
            continue
        lead, rest_chunk = cut
        rest = rest_chunk.phonemes
        bounds_ph = [0, *window_cuts(rest, len(lead.phonemes)), len(rest)]
        if len(bounds_ph) < 3:
            continue  # the rest is one window: its whole decode
        item = engine.prepare(SynthesisRequest(rest, voice, seed=1))
        with torch.no_grad():
            encoded = fast.encode_frames(fast.encode_tokens([item]))
            source = fast.source(encoded)
            frames = int(encoded.frames[0])
            start = time.perf_counter()
            whole = fast.decode(encoded, source)[0][: frames * 600]
            whole_s = time.perf_counter() - start
            eager_whole = reference.decode(encoded, source)[0][: frames * 600]
            durations = encoded.durations[0, : int(encoded.token_lengths[0])]
            bounds = [window_frames(durations, a, b) for a, b in zip(bounds_ph, bounds_ph[1:], strict=False)]
            row: dict[str, Any] = {
                "text": label, "windows": [b - a for a, b in zip(bounds_ph, bounds_ph[1:], strict=False)],
                "frames": frames, "reference": " ".join(w.word for w in rest_chunk.words),
                "fast_vs_eager_snr_db": round(snr_db(eager_whole, whole), 1),
                "fast_vs_eager_log_mel_db": log_mel_distance(whole, eager_whole),
                "whole_decode_s": round(whole_s, 3), "by_context": {},
            }  # fmt: skip
            for context in contexts:
                tails: dict[int, torch.Tensor] = {}
                start = time.perf_counter()
                audio = torch.cat([decode_window(fast, encoded, source, a, b, context, tails) for a, b in bounds])
                windows_s = time.perf_counter() - start
                cuts = [a * 600 for a, _ in bounds[1:]]
                row["by_context"][context] = {
                    "snr_db": round(snr_db(whole, audio), 1),
                    "log_mel_db": log_mel_distance(audio, whole),
                    "step_at_cut": [round(float(abs(audio[k] - audio[k - 1])), 4) for k in cuts],
                    "whole_step_near_cut": [round(float(whole[k - 120 : k + 120].diff().abs().max()), 4) for k in cuts],
                    "windows_decode_s": round(windows_s, 3),
                }
            if asr is not None:  # the largest context; pieces: the gateway's rule
                row["transcripts"] = {}
                for seed in (int(x) for x in args.seeds.split(",")):
                    item = engine.prepare(SynthesisRequest(rest, voice, seed=seed))
                    encoded = fast.encode_frames(fast.encode_tokens([item]))
                    source = fast.source(encoded)
                    tails = {}
                    row["transcripts"][seed] = {
                        "whole": asr(fast.decode(encoded, source)[0][: frames * 600].numpy()),
                        "windows": asr(torch.cat([
                            decode_window(fast, encoded, source, a, b, contexts[-1], tails) for a, b in bounds
                        ]).numpy()),
                        "pieces": asr(read_alone(engine, voice, split_lead(chunk)[1:], seed)),
                    }  # fmt: skip
        rows.append(row)
        print(json.dumps(row), flush=True)

    summary = {
        "fast_vs_eager": {
            "snr_db": float(np.median([r["fast_vs_eager_snr_db"] for r in rows])),
            "log_mel_db": float(np.median([r["fast_vs_eager_log_mel_db"] for r in rows])),
        },
        **{
            f"windows, context {c}": {
                "snr_db": float(np.median([r["by_context"][c]["snr_db"] for r in rows])),
                "log_mel_db": float(np.median([r["by_context"][c]["log_mel_db"] for r in rows])),
                "max_step_over_whole": max_step_ratio(rows, c),
                "decode_s_vs_whole": round(sum(r["by_context"][c]["windows_decode_s"] for r in rows)
                                           / sum(r["whole_decode_s"] for r in rows), 3),
            }
            for c in contexts
        },
    }  # fmt: skip
    if asr is not None:
        import jiwer

        said = [said_words(r["reference"]) for r in rows]
        by_seed = {
            system: [
                round(100 * float(jiwer.wer(said, [said_words(r["transcripts"][seed][system]) for r in rows])), 1)
                for seed in rows[0]["transcripts"]
            ]
            for system in ("whole", "windows", "pieces")
        }
        summary["word error rate %"] = {"seeds": list(rows[0]["transcripts"]), **by_seed}
        print("word error rate %, pocketsphinx, per seed:", summary["word error rate %"])
    print(f"\n{'':24s} {'SNR dB':>7s} {'log-mel dB':>10s} {'max step / near':>16s} {'decode vs whole':>15s}")
    for name, s in summary.items():
        if name == "word error rate %":
            continue
        print(f"{name:24s} {s['snr_db']:7.1f} {s['log_mel_db']:10.2f} {s.get('max_step_over_whole', '-')!s:>16s} "
              f"{s.get('decode_s_vs_whole', '-')!s:>15s}")  # fmt: skip
    results = {"date": dt.date.today().isoformat(), "weights": kind, "voice": voice,
               "threads": torch.get_num_threads(), "rows": rows, "summary": summary}  # fmt: skip
    out = RESULTS / f"windows-{results['date']}.json"
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

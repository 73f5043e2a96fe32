"""Kokoro on a GPU, in-process: what batching gains, and what the fast path gains, per batch size.

The kokoro Triton model's work (``KokoroEngine.synthesize`` on a batch, outputs copied back to the
CPU) over a fixed mixed-length workload of corpus sentences, cut into batches of 1, 2, 4, ... 32,
for eager float32, eager bfloat16 autocast and compiled bfloat16: each batch in one pass, each
batch in passes over groups of similar length (less padding, more passes), and (for comparison)
the decoder one item at a time. Prints a table of audio seconds per wall second, milliseconds per
batch, peak GPU memory and fidelity against eager float32 one item at a time (the first variant and
batch size given: median and worst waveform SNR over the items, and how many kept their length), and
writes ``bench/results/gpu-<date>.json`` (or ``--out``).

The corpus phonemes come from a committed file, so the GPU machine needs no G2P:

    .venv/bin/python -m bench.gpu --write-phonemes        # here: corpus -> bench/corpus/phonemes.json
    python -m bench.gpu --weights DIR                     # on the GPU machine

Without ``--weights`` it uses full-size random weights with realistic durations.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pattern_tts.synthesis.batched import BatchItem, similar_length_groups  # noqa: E402
from pattern_tts.synthesis.engine import KokoroEngine, SynthesisRequest  # noqa: E402
from pattern_tts.weights.parity import snr_db  # noqa: E402

PHONEMES = Path(__file__).resolve().parent / "corpus" / "phonemes.json"
RESULTS = Path(__file__).resolve().parent / "results"
BATCH_SIZES = (1, 2, 4, 8, 16, 32)
# batched: each batch in one pass; grouped: each batch in passes over groups of similar length;
# per-item: the text side batched, the decoder one item at a time
DECODERS = ("batched", "grouped", "per-item")
GROUP_PADDING = 1.5  # grouped: a pass's padded size is at most this times its items' total length
T = TypeVar("T")
VARIANTS: dict[str, dict] = {
    "eager-fp32": {"compile": False, "precision": "fp32"},
    "eager-bf16": {"compile": False, "precision": "bf16"},
    "compiled-bf16": {"compile": True, "precision": "bf16"},
}


def write_phonemes(path: Path) -> None:
    """Phonemise every corpus sentence (up to Kokoro's 510 phonemes) with the project's G2P."""
    from bench.corpus import sentences
    from pattern_tts.text import Phonemizer
    from pattern_tts.weights.architecture import kokoro_vocab

    phonemizer = Phonemizer(kokoro_vocab())
    rows = []
    for s in sentences():
        phonemes = phonemizer.phonemize(s.text)
        if 0 < len(phonemes) <= 510:
            rows.append({"words": s.words, "text": s.text, "phonemes": phonemes})
    path.write_text(json.dumps(rows, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(rows)} sentences to {path}")


def workload(n: int) -> list[str]:
    """``n`` phoneme strings, short and long interleaved (as concurrent requests would arrive)."""
    rows = sorted(json.loads(PHONEMES.read_text(encoding="utf-8")), key=lambda r: len(r["phonemes"]))
    picked = [rows[round(i * (len(rows) - 1) / max(n - 1, 1))]["phonemes"] for i in range(n)]
    return [p for pair in zip(picked[: n // 2], reversed(picked[n // 2 :]), strict=False) for p in pair] + (
        [picked[n // 2]] if n % 2 else []
    )


def gpu_groups(batch: list[BatchItem]) -> list[list[int]]:
    """The batch's items in groups of similar length, without the CPU path's cap on item length."""
    return similar_length_groups([len(it.input_ids) for it in batch], max_padding=GROUP_PADDING, max_tokens=512)


def fidelity(reference: list[torch.Tensor], audio: list[torch.Tensor]) -> dict:
    """Median and worst SNR against the reference audio, and how many items kept their length."""
    snrs = [snr_db(r, a) for r, a in zip(reference, audio, strict=True)]
    return {
        "snr_db_median": round(statistics.median(snrs), 1),
        "snr_db_min": round(min(snrs), 1),
        "same_length": f"{sum(len(r) == len(a) for r, a in zip(reference, audio, strict=True))}/{len(audio)}",
    }


def timed(fn: Callable[[], T], device: torch.device) -> tuple[float, T]:
    """(wall seconds, value returned) with the device synchronised on both ends."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    value = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-phonemes", action="store_true", help="write bench/corpus/phonemes.json and exit")
    parser.add_argument("--weights", type=Path, help="weights directory (default: full-size random)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--items", type=int, default=64, help="requests in the workload")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--batch-sizes", default=",".join(map(str, BATCH_SIZES)))
    parser.add_argument("--decoders", default=",".join(DECODERS), help=f"comma list of {', '.join(DECODERS)}")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.write_phonemes:
        write_phonemes(PHONEMES)
        return

    device = torch.device(args.device)
    weights, kind = args.weights, "given"
    if weights is None:
        from pattern_tts.synthesis.random_weights import write_random_kokoro

        weights = write_random_kokoro(Path(tempfile.mkdtemp()), size="full")
        kind = "random full-size, realistic durations"
    phonemes = workload(args.items)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    rows: list[dict] = []
    info = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "weights_kind": kind,
        "items": len(phonemes),
        "phonemes_per_item": {"min": min(map(len, phonemes)), "max": max(map(len, phonemes))},
    }
    print(json.dumps(info), flush=True)
    out = args.out or RESULTS / f"gpu-{dt.date.today().isoformat()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    reference: list[torch.Tensor] = []  # the first variant's audio at the first batch size
    for variant in args.variants.split(","):
        start = time.perf_counter()
        engine = KokoroEngine(weights, device=args.device, batch_decoder=True, **VARIANTS[variant])
        voice = engine.voices.names()[0]
        items = [engine.prepare(SynthesisRequest(p, voice, seed=i)) for i, p in enumerate(phonemes)]
        audio_s = 0.0
        for decoder in args.decoders.split(","):
            engine.batch_decoder = decoder != "per-item"
            for size in batch_sizes if decoder == "batched" else [b for b in batch_sizes if b >= 4]:
                batches = [list(range(i, min(i + size, len(items)))) for i in range(0, len(items), size)]
                if decoder == "grouped":
                    batches = [[b[k] for k in g] for b in batches for g in gpu_groups([items[i] for i in b])]

                def run(
                    batches: list[list[int]] = batches, engine: KokoroEngine = engine, items: list = items
                ) -> list[torch.Tensor]:
                    audio = {i: o.audio.float().cpu() for b in batches
                             for i, o in zip(b, engine.synthesize([items[i] for i in b]), strict=True)}  # fmt: skip
                    return [audio[i] for i in range(len(items))]

                first_s, audio = timed(run, device)  # warm-up: compiles new shapes, fills caches
                audio_s = sum(map(len, audio)) / 24000
                reference = reference or audio
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                walls = [timed(run, device)[0] for _ in range(2)]
                wall = statistics.median(walls)
                row = {
                    "variant": variant,
                    "decoder": decoder,
                    "batch": size,
                    "audio_s": round(audio_s, 2),
                    "first_pass_s": round(first_s, 2),
                    "wall_s": round(wall, 3),
                    "audio_s_per_s": round(audio_s / wall, 1),
                    "ms_per_batch": round(1000 * wall * size / len(items), 1),
                    "peak_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
                    if device.type == "cuda"
                    else None,
                    **fidelity(reference, audio),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
                out.write_text(json.dumps({**info, "rows": rows}, indent=2) + "\n")  # partial results survive
        print(json.dumps({"variant": variant, "seconds": round(time.perf_counter() - start, 1)}), flush=True)
        del engine
        if device.type == "cuda":
            torch.cuda.empty_cache()

    base = {r["variant"]: r["audio_s_per_s"] for r in rows if r["batch"] == 1}
    print(f"\n{info['device']}, {kind}, {len(phonemes)} requests of {info['phonemes_per_item']} phonemes")
    print(
        f"{'variant':15s} {'decoder':9s} {'batch':>5s} {'audio s/s':>10s} {'x batch 1':>9s} "
        f"{'ms/batch':>9s} {'peak GiB':>8s} {'SNR dB med':>10s} {'SNR dB min':>10s} {'same len':>8s}"
    )
    for r in rows:
        gain = r["audio_s_per_s"] / base[r["variant"]] if r["variant"] in base else float("nan")
        print(
            f"{r['variant']:15s} {r['decoder']:9s} {r['batch']:5d} {r['audio_s_per_s']:10.1f} {gain:9.2f} "
            f"{r['ms_per_batch']:9.1f} {r['peak_gib'] if r['peak_gib'] is not None else '':>8} "
            f"{r['snr_db_median']:10.1f} {r['snr_db_min']:10.1f} {r['same_length']:>8s}"
        )
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()

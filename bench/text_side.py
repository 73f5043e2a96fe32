"""The kokoro model's text side on CPU: one padded batch, groups of similar length, or one by one.

The text side (ALBERT, prosody, durations, text encoder) runs on token lengths padded to the
longest item of its batch. This script times it, in-process with the engine as the kokoro model
loads it (fast path, warmed up):
* batches of equal lengths (4 and 8 items of 16 to 256 tokens): batched vs one by one;
* a corpus mix of 16 sentences: one padded batch, ``similar_length_groups`` (what the per-item
  decoder path does), and one by one;
* the whole per-item-decoder pipeline on that mix, with the text side as one batch vs in groups.

    flock /tmp/pattern-tts-bench.lock .venv/bin/python -m bench.text_side [--weights DIR]

Prints tables and writes ``bench/results/text-side-<date>.json``. Without ``--weights`` it uses the
weights ``bench.run`` resolves (real converted weights when the packaged model is installed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from pattern_tts.synthesis.batched import MAX_TEXT_PADDING, BatchItem, similar_length_groups
from pattern_tts.synthesis.engine import SynthesisRequest

RESULTS = Path(__file__).resolve().parent / "results"
CORPUS_PHONEMES = Path(__file__).resolve().parent / "corpus" / "phonemes.json"


def best_of(fn: Callable[[], object], repeats: int) -> float:
    """The fastest of ``repeats`` runs, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    from bench.workload import resolve_weights, warm_engine

    weights, kind, voice = resolve_weights(args.weights)
    engine = warm_engine(weights)
    batched = engine.batched

    def items_of(phonemes: Sequence[str]) -> list[BatchItem]:
        return [engine.prepare(SynthesisRequest(p, voice)) for p in phonemes]

    def as_one_batch(items: list[BatchItem]) -> Callable[[], object]:
        return lambda: batched.encode_tokens(items)

    def one_by_one(items: list[BatchItem]) -> Callable[[], object]:
        return lambda: [batched.encode_tokens([it]) for it in items]

    rows = [r["phonemes"] for r in json.loads(CORPUS_PHONEMES.read_text(encoding="utf-8"))]
    results: dict[str, Any] = {"date": dt.date.today().isoformat(), "weights": kind, "voice": voice,
                               "threads": torch.get_num_threads(), "max_text_padding": MAX_TEXT_PADDING}  # fmt: skip

    text = " ".join(rows)
    equal = []
    with torch.no_grad():
        for length in (16, 32, 64, 128, 256):
            for size in (4, 8):
                items = items_of([text[i * length : (i + 1) * length].strip() for i in range(size)])
                together = best_of(as_one_batch(items), args.repeats)
                alone = best_of(one_by_one(items), args.repeats)
                equal.append({"tokens": length, "items": size, "batched_s": round(together, 3),
                              "one_by_one_s": round(alone, 3), "ratio": round(together / alone, 2)})  # fmt: skip
        results["equal_lengths"] = equal

        mix = random.Random(0).sample(rows, 16)
        items = items_of(mix)
        groups = similar_length_groups([len(it.input_ids) for it in items])
        results["mix"] = {
            "phonemes": [len(p) for p in mix],
            "groups": [len(g) for g in groups],
            "one_batch_s": round(best_of(as_one_batch(items), args.repeats), 3),
            "groups_s": round(best_of(lambda: [batched.encode_tokens([items[i] for i in g]) for g in groups],
                                      args.repeats), 3),  # fmt: skip
            "one_by_one_s": round(best_of(one_by_one(items), args.repeats), 3),
        }

        def pipeline(text_side: Callable[[], list[list[int]]]) -> Callable[[], object]:
            """The per-item-decoder pipeline with the text side grouped as ``text_side`` says."""

            def run() -> None:
                for group in text_side():
                    tokens = batched.encode_tokens([items[i] for i in group])
                    for k in range(len(group)):
                        batched.decode(batched.encode_frames(tokens.select(k)))

            return run

        results["pipeline"] = {
            "one_batch_s": round(best_of(pipeline(lambda: [list(range(len(items)))]), 1), 2),
            "groups_s": round(best_of(pipeline(lambda: groups), 1), 2),
        }

    print(f"\ntext side, equal lengths ({kind}, {results['threads']} threads)")
    print(f"{'tokens':>7} {'items':>6} {'batched s':>10} {'one by one s':>13} {'ratio':>6}")
    for r in equal:
        print(f"{r['tokens']:>7} {r['items']:>6} {r['batched_s']:>10} {r['one_by_one_s']:>13} {r['ratio']:>6}")
    m = results["mix"]
    print(f"\ncorpus mix of 16 ({min(m['phonemes'])}-{max(m['phonemes'])} phonemes), groups {m['groups']}")
    print(f"text side: one batch {m['one_batch_s']} s, groups {m['groups_s']} s, one by one {m['one_by_one_s']} s")
    p = results["pipeline"]
    print(f"whole per-item-decoder pipeline: text side as one batch {p['one_batch_s']} s, in groups {p['groups_s']} s")
    out = args.out or RESULTS / f"text-side-{results['date']}.json"
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

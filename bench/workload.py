"""What a benchmark measures: the weights and voice, the requests (corpus sentences with their
phoneme chunks) and how many of them (full or quick)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import corpus
from bench.corpus import Sentence

if TYPE_CHECKING:
    from pattern_tts.synthesis.engine import KokoroEngine

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the benchmark never downloads
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pattern-tts-bench"


@dataclass
class Plan:
    """How much to measure: ``quick`` for development, full for the committed numbers."""

    quick: bool
    c1_sentences: int = 6
    c1_max_words: int = 40
    levels: tuple[int, ...] = (1, 16)
    level_requests: dict[int, int] = field(default_factory=lambda: {16: 16})
    perf_levels: tuple[int, ...] = (1, 2, 4, 8, 16)
    overhead_pairs: int = 24
    ab_rounds: int = 5  # batching on vs off, the two stacks alternating: rounds at each perf level
    # The 100-word request, non-streamed and streamed, each sent this many times (median): one
    # sample of its first byte moved by 0.1 s between runs.
    request_100_repeats: int = 3

    def __post_init__(self) -> None:
        if self.quick:
            self.c1_sentences = 3
            self.c1_max_words = 20
            self.levels = (1, 4)
            self.level_requests = {4: 4}
            self.perf_levels = (1, 4)
            self.overhead_pairs = 3
            self.ab_rounds = 1
            self.request_100_repeats = 1

    @staticmethod
    def perf_requests(concurrency: int, entries: int) -> int:
        """Two passes over the input data, and at least two requests per concurrent client: with
        one, the on/off ratios of levels below c=8 moved by about 15 % between runs."""
        return 2 * max(concurrency, entries)


@dataclass
class Workload:
    """The requests of a run, with their phoneme chunks (made once with pattern-tts's offline G2P)."""

    voice: str
    c1: list[Sentence]
    levels: dict[int, list[Sentence]]
    text_100: str
    phonemes: dict[str, list[str]]
    short: list[Sentence]

    def body(self, text: str, response_format: str = "pcm", **extra: Any) -> dict[str, Any]:
        return {
            "model": "kokoro",
            "input": text,
            "voice": self.voice,
            "response_format": response_format,
            "lang": "a",
            **extra,
        }

    def bodies(self, items: list[Sentence]) -> list[tuple[dict[str, Any], int]]:
        return [(self.body(s.text), s.words) for s in items]

    def perf_entries(self) -> list[str]:
        return [p for s in self.c1 for p in self.phonemes[s.text]]


def resolve_weights(explicit: Path | None) -> tuple[Path, str, str]:
    """(weights dir, kind, voice): real converted weights when the packaged model is installed."""
    if explicit is not None:
        voices = sorted(p.stem for p in (explicit / "voices").glob("*.pt"))
        return explicit, f"given directory {explicit}", "jf_alpha" if "jf_alpha" in voices else voices[0]
    from pattern_tts.weights.packaged import packaged_available

    if packaged_available():
        from pattern_tts.weights import prepare_weights

        dest = prepare_weights("packaged", CACHE / "weights-packaged", progress=False)
        return dest, "real: Kokoro v1.0 (packaged int8 ONNX, dequantized to fp32 KModel weights)", "jf_alpha"
    from pattern_tts.synthesis.random_weights import write_random_kokoro

    dest = CACHE / "weights-random-full"
    if not (dest / "kokoro-v1_0.pth").is_file():
        write_random_kokoro(dest, size="full")
    return dest, "random: full-size Kokoro architecture, random weights with realistic durations", "af_heart"


def warm_engine(weights: Path) -> KokoroEngine:
    """The engine in this process as the kokoro model sets itself up on CPU: torch threads from the
    CPU quota, the fast path where the CPU has it (compile cache under the benchmark's cache dir),
    warmed up."""
    import torch

    from pattern_tts.cpu import cpu_quota
    from pattern_tts.synthesis.engine import KokoroEngine

    torch.set_num_threads(cpu_quota())
    engine = KokoroEngine.as_served(weights, CACHE / "compile")
    engine.warmup()
    return engine


def make_workload(plan: Plan, weights: Path, voice: str) -> Workload:
    from pattern_tts.text.g2p import Phonemizer

    config = json.loads((weights / "config.json").read_text())
    phonemizer = Phonemizer(config.get("vocab"))
    c1 = corpus.mixed(plan.c1_sentences, max_words=plan.c1_max_words)
    limit = plan.c1_max_words if plan.quick else corpus.MAX_WORDS
    levels = {c: corpus.mixed(n, max_words=limit) for c, n in plan.level_requests.items()}
    shortest = sorted(corpus.sentences(), key=lambda s: (s.words, len(s.text)))[:4]
    short = [shortest[i % len(shortest)] for i in range(plan.overhead_pairs)]
    texts = {s.text for s in [*c1, *short, *(s for v in levels.values() for s in v)]}
    phonemes = {t: [c.phonemes for c in phonemizer.chunks(t)] for t in texts}
    return Workload(voice, c1, levels, corpus.request_100_words(), phonemes, short)

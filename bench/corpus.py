"""The benchmark's text corpus: sentences of public-domain paragraphs, and the workloads drawn from them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

CORPUS_DIR = Path(__file__).resolve().parent / "corpus"
MIN_WORDS, MAX_WORDS = 3, 80
# A sentence ends at . ! ? (optionally followed by a closing quote) before whitespace; "Mr." does not.
_SENTENCE_END = re.compile(r"(?<!\bMr)(?<!\bMrs)(?<!\bDr)[.!?][\"”’)]*(?=\s+[\"“A-Z])")


@dataclass(frozen=True)
class Sentence:
    """One corpus sentence and where it comes from."""

    text: str
    source: str

    @property
    def words(self) -> int:
        return len(self.text.split())


def paragraphs(path: Path = CORPUS_DIR / "paragraphs.txt") -> list[tuple[str, str]]:
    """(source, paragraph) pairs of the corpus file."""
    out: list[tuple[str, str]] = []
    source = "?"
    block: list[str] = []
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        if line.startswith("## "):
            source = line[3:].strip()
        elif line.startswith("#"):
            continue
        elif line.strip():
            block.append(line.strip())
        elif block:
            out.append((source, " ".join(block)))
            block = []
    return out


def split_sentences(paragraph: str) -> list[str]:
    """Sentences of one paragraph."""
    out, start = [], 0
    for m in _SENTENCE_END.finditer(paragraph):
        out.append(paragraph[start : m.end()].strip())
        start = m.end()
    tail = paragraph[start:].strip()
    if tail:
        out.append(tail)
    return out


def sentences() -> list[Sentence]:
    """All corpus sentences of 3 to 80 words, in corpus order."""
    return [
        Sentence(s, source)
        for source, para in paragraphs()
        for s in split_sentences(para)
        if MIN_WORDS <= len(s.split()) <= MAX_WORDS
    ]


def request_100_words() -> str:
    """The 100-word request text."""
    return (CORPUS_DIR / "request_100_words.txt").read_text(encoding="utf-8").strip()


def spread(items: list[Sentence], n: int) -> list[Sentence]:
    """``n`` sentences spread evenly over the length distribution (shortest to longest), in a fixed
    interleaved order (short and long alternate, so every concurrency window sees mixed lengths)."""
    ranked = sorted(items, key=lambda s: (s.words, s.text))
    step = (len(ranked) - 1) / max(n - 1, 1)
    picked = ranked if n >= len(ranked) else [ranked[round(i * step)] for i in range(n)]
    order: list[Sentence] = []
    lo, hi = 0, len(picked) - 1
    while lo <= hi:
        order.append(picked[lo])
        if hi != lo:
            order.append(picked[hi])
        lo, hi = lo + 1, hi - 1
    return order


def mixed(n: int, max_words: int = MAX_WORDS) -> list[Sentence]:
    """A mixed-length workload of ``n`` requests (sentences reused in order when ``n`` exceeds the corpus)."""
    pool = spread([s for s in sentences() if s.words <= max_words], 10_000)
    return [pool[(i * 7) % len(pool)] for i in range(n)] if n > len(pool) else spread(pool, n)


if __name__ == "__main__":
    all_sentences = sentences()
    lengths = sorted(s.words for s in all_sentences)
    print(
        f"{len(all_sentences)} sentences, words min {lengths[0]} median {lengths[len(lengths) // 2]} max {lengths[-1]}"
    )
    for s in all_sentences:
        print(f"{s.words:3d}  {s.text[:100]}")
    print("100-word request:", len(request_100_words().split()), "words")

"""Kokoro's phoneme vocabulary: load it from the weights' ``config.json`` and keep phonemes inside it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

# Symbols misaki or espeak-ng may produce that Kokoro spells differently; anything else outside the
# vocabulary is dropped.
REPLACEMENTS = {
    "g": "ɡ",  # ASCII g -> IPA script g
    "ɝ": "ɜɹ",
    "ɫ": "l",
    "ɬ": "l",
    "ʍ": "w",
    "ɘ": "ə",
    "ɵ": "ə",
    "–": "—",
    "\t": " ",
    "\n": " ",
}


def load_vocab(path: str | Path) -> dict[str, int]:
    """The ``vocab`` of a Kokoro ``config.json`` (``path`` is the file or the weights directory)."""
    path = Path(path)
    if path.is_dir():
        path = path / "config.json"
    vocab = json.loads(path.read_text(encoding="utf-8"))["vocab"]
    if not isinstance(vocab, dict) or not all(isinstance(k, str) and len(k) == 1 for k in vocab):
        raise ValueError(f"{path}: 'vocab' must map single characters to ids")
    return {k: int(v) for k, v in vocab.items()}


class VocabFilter:
    """Maps phoneme strings into a vocabulary: known symbols kept, :data:`REPLACEMENTS` applied, rest dropped.

    >>> VocabFilter({"h": 1, "ɛ": 2, "ɡ": 3, " ": 4})("hɛg x")
    'hɛɡ '
    """

    def __init__(self, vocab: Mapping[str, int] | None) -> None:
        self.vocab = frozenset(vocab) if vocab is not None else None
        self._cache: dict[str, str] = {}

    def symbol(self, char: str) -> str:
        """What ``char`` becomes (possibly several symbols, possibly none)."""
        if self.vocab is None or char in self.vocab:
            return char
        cached = self._cache.get(char)
        if cached is None:
            cached = "".join(c for c in REPLACEMENTS.get(char, "") if c in self.vocab)
            self._cache[char] = cached
        return cached

    def __call__(self, phonemes: str) -> str:
        if self.vocab is None or all(c in self.vocab for c in phonemes):
            return phonemes
        return "".join(self.symbol(c) for c in phonemes)

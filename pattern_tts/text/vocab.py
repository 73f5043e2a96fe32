"""Kokoro's phoneme vocabulary: keep phonemes inside it (``load_vocab`` reads it from the weights'
``config.json``)."""

from __future__ import annotations

from collections.abc import Mapping

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

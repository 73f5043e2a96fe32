"""Chunk G2P tokens the way Kokoro's ``KPipeline.en_tokenize`` does, keeping word positions.

A chunk's phonemes are at most ``limit`` (510) symbols: tokens are packed in order; when the next
token would overflow, the chunk is cut after the last sentence end (``!.?…``) that leaves room, else
the last clause break (``:;``), else the last comma or dash (``,—``), else before the token
(KPipeline's ``waterfall_last``). Unlike KPipeline, a single token longer than the limit is split
(at spaces inside its phonemes where possible) instead of truncated, so no text is ever dropped.

Words: a word is a token that has letters or digits or is spoken (``&``); punctuation tokens are not
words, their phonemes sit between words. ``start``/``end`` index the chunk's ``phonemes``
(half-open); a word with no phonemes (unknown to misaki and espeak-ng) has ``start == end``. Tokens
from one source word (``$5.50`` read as four words) are reported once, as the source word.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace

PHONEME_LIMIT = 510
# KPipeline.waterfall_last: cut after these, most preferred first; a closing bracket or quote
# right after the cut stays with the left part.
WATERFALL = (frozenset("!.?…"), frozenset(":;"), frozenset(",—"))
BUMPS = (")", "”")
PUNCTUATION = frozenset(";:,.!?—…\"“”()[]{}«»'‘’-–/\\*_~`")


@dataclass
class Token:
    """One G2P token: its phonemes, whether whitespace follows, and its span in the source text."""

    phonemes: str
    whitespace: bool
    start: int
    end: int
    is_word: bool


@dataclass
class Word:
    """A source word and the half-open span of its phonemes in the chunk's ``phonemes``."""

    word: str
    start: int
    end: int


@dataclass
class Chunk:
    """Text and phonemes for one Kokoro inference (at most 510 phonemes), with word positions.

    ``continues_paragraph``: the chunk before ended where the 510-phoneme limit cut this paragraph
    (at a sentence end where possible), not at a paragraph break.
    """

    text: str
    phonemes: str
    words: list[Word] = field(default_factory=list)
    continues_paragraph: bool = False

    def to_dict(self) -> dict[str, object]:
        """JSON-ready ``{"text", "phonemes", "words": [{"word", "start", "end"}], "continues_paragraph"}``."""
        return asdict(self)


def is_spoken(text: str, phonemes: str) -> bool:
    """Whether a token counts as a word (not bare punctuation)."""
    return any(c.isalnum() for c in text) or any(c not in PUNCTUATION and not c.isspace() for c in phonemes)


def _ps(tokens: Sequence[Token]) -> str:
    """KPipeline.tokens_to_ps."""
    return "".join(t.phonemes + (" " if t.whitespace else "") for t in tokens).strip()


def _waterfall_last(tokens: Sequence[Token], next_count: int, limit: int) -> int:
    """KPipeline.waterfall_last."""
    for marks in WATERFALL:
        z = next((i for i in range(len(tokens) - 1, -1, -1) if tokens[i].phonemes in marks), None)
        if z is None:
            continue
        z += 1
        if z < len(tokens) and tokens[z].phonemes in BUMPS:
            z += 1
        if next_count - len(_ps(tokens[:z])) <= limit:
            return z
    return len(tokens)


def split_long_token(token: Token, limit: int = PHONEME_LIMIT) -> list[Token]:
    """``token`` as pieces of at most ``limit`` phonemes, cut at its inner spaces where possible."""
    if len(token.phonemes) <= limit:
        return [token]
    pieces: list[Token] = []
    rest = token.phonemes
    while len(rest) > limit:
        cut = rest.rfind(" ", 1, limit + 1)
        if cut > 0:  # the space becomes the piece's trailing whitespace
            pieces.append(replace(token, phonemes=rest[:cut], whitespace=True))
            rest = rest[cut + 1 :]
        else:
            pieces.append(replace(token, phonemes=rest[:limit], whitespace=False))
            rest = rest[limit:]
    pieces.append(replace(token, phonemes=rest))
    return pieces


def group_tokens(tokens: Sequence[Token], limit: int = PHONEME_LIMIT) -> Iterator[list[Token]]:
    """KPipeline.en_tokenize over ``tokens`` (any token longer than ``limit`` split first)."""
    tks: list[Token] = []
    pcount = 0
    for token in tokens:
        for t in split_long_token(token, limit):
            next_ps = t.phonemes + (" " if t.whitespace else "")
            next_pcount = pcount + len(next_ps.rstrip())
            if next_pcount > limit:
                z = _waterfall_last(tks, next_pcount, limit)
                if z:
                    yield tks[:z]
                tks = tks[z:]
                pcount = len(_ps(tks))
                if not tks:
                    next_ps = next_ps.lstrip()
            tks.append(t)
            pcount += len(next_ps)
    if tks:
        yield tks


def make_chunk(tokens: Sequence[Token], source: str) -> Chunk:
    """The chunk of ``tokens`` (spans into ``source``): phonemes as KPipeline joins them, plus words."""
    parts: list[str] = []
    spans: list[tuple[Token, int, int]] = []
    length = 0
    for t in tokens:
        if t.is_word:
            spans.append((t, length, length + len(t.phonemes)))
        parts.append(t.phonemes)
        length += len(t.phonemes)
        if t.whitespace:
            parts.append(" ")
            length += 1
    raw = "".join(parts)
    phonemes = raw.strip()
    lead = len(raw) - len(raw.lstrip())

    words: list[Word] = []
    last: tuple[int, int] | None = None  # source span of the previous word
    for t, s, e in spans:
        s = min(max(s - lead, 0), len(phonemes))
        e = min(max(e - lead, s), len(phonemes))
        if last is not None and t.start < last[1]:  # same source word (one rewrite, several tokens)
            last = (last[0], max(last[1], t.end))
            words[-1] = Word(source[last[0] : last[1]], words[-1].start, max(words[-1].end, e))
            continue
        last = (t.start, t.end)
        words.append(Word(source[t.start : t.end], s, e))
    text = source[tokens[0].start : max(t.end for t in tokens)] if tokens else ""
    return Chunk(text=text.strip(), phonemes=phonemes, words=words)


def chunk_tokens(tokens: Sequence[Token], source: str, limit: int = PHONEME_LIMIT) -> list[Chunk]:
    """Chunks of at most ``limit`` phonemes of one paragraph; chunks without phonemes are left out (as
    KPipeline does). Every chunk but the first continues the paragraph."""
    chunks = [c for c in (make_chunk(group, source) for group in group_tokens(tokens, limit)) if c.phonemes]
    return [replace(c, continues_paragraph=True) if i else c for i, c in enumerate(chunks)]


_RAW_TOKEN = re.compile(r"([;:,.!?—…]|[^\s;:,.!?—…]+)(\s*)")


def split_phonemes(phonemes: str, limit: int = PHONEME_LIMIT) -> list[str]:
    """Split user-supplied phonemes into pieces of at most ``limit`` symbols, KPipeline-style.

    Cuts at sentence ends, then clause breaks, then commas, then spaces; a run without spaces longer
    than ``limit`` is cut hard. Whitespace runs become single spaces.

    >>> split_phonemes("hˈɛlO. wˈɜɹld, ðɛɹ", limit=12)
    ['hˈɛlO.', 'wˈɜɹld, ðɛɹ']
    """
    tokens = [
        Token(m.group(1), bool(m.group(2)), m.start(), m.end(), False) for m in _RAW_TOKEN.finditer(phonemes)
    ]
    return [p for p in (_ps(group) for group in group_tokens(tokens, limit)) if p]

"""Text -> Kokoro phoneme chunks with word positions: normalise, misaki G2P, vocabulary filter, chunk.

Languages: ``a``/``b`` (American/British English: misaki's English G2P with spaCy and espeak-ng) and
``j`` (Japanese: misaki's cutlet G2P on fugashi + unidic-lite, loaded on first use).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping

from misaki.en import LINK_REGEX

from .chunking import PHONEME_LIMIT, Chunk, Token, chunk_tokens, is_spoken
from .japanese import japanese_g2p
from .normalization import normalize
from .offline_spacy import english_g2p
from .spans import Edit, OffsetMap
from .vocab import VocabFilter

SUPPORTED_LANGS = ("a", "b", "j")  # American and British English, Japanese (Kokoro's lang codes)
LANG_ALIASES = {"en-us": "a", "en-gb": "b", "en": "a", "ja": "j", "ja-jp": "j", "jp": "j"}
_PARAGRAPH = re.compile(r"[^\n]+")  # KPipeline splits its input at r"\n+"

_locks = {lang: threading.Lock() for lang in SUPPORTED_LANGS}


def resolve_lang(lang: str | None) -> str:
    """Kokoro language code for ``lang`` (``a`` when empty); ValueError when not supported."""
    code = (lang or "a").strip().lower()
    code = LANG_ALIASES.get(code, code)
    if code not in SUPPORTED_LANGS:
        raise ValueError(f"unsupported lang {lang!r}; supported: {', '.join(SUPPORTED_LANGS)}")
    return code


def _strip_links(text: str) -> OffsetMap:
    """misaki's preprocessing of ``[word](/phonemes/)`` markup (the text its tokens come from)."""
    edits = []
    for m in LINK_REGEX.finditer(text):
        edits += [Edit(m.start(), m.start(1), ""), Edit(m.end(1), m.end(), "")]
    return OffsetMap.apply(text, edits)


def locate(text: str, token: str, cursor: int) -> tuple[int, int]:
    """Span of misaki token text ``token`` in ``text`` at or after ``cursor``.

    misaki's token text is the source text except for quote marks it may drop (``pm-3'a`` becomes
    ``pm-3a``), so ``token`` is matched as a subsequence that may skip non-alphanumeric characters.
    A token that cannot be placed gets an empty span at ``cursor``.
    """
    wanted = "".join(token.split())
    if not wanted:
        return cursor, cursor
    i, j, start = cursor, 0, -1
    while i < len(text) and j < len(wanted):
        if text[i] == wanted[j]:
            start = i if start < 0 else start
            j += 1
        elif text[i].isalnum():
            break
        i += 1
    if j == len(wanted):
        return start, i
    found = text.find(token, cursor)
    return (found, found + len(token)) if found >= 0 else (cursor, cursor)


class Phonemizer:
    """Text to Kokoro phoneme chunks, the way Kokoro's KPipeline phonemizes and chunks English text.

    ``vocab`` is the weights' ``config.json`` vocabulary; symbols outside it are replaced or dropped.
    ``None`` keeps misaki's symbols as they are. The misaki G2P is built once per language and shared
    by all instances. Japanese (``j``) is chunked the same way: paragraphs, then at most ``limit``
    phonemes cut after a sentence end (``。！？`` read as ``.!?``) where possible.
    ``JapaneseUnavailable`` (an ImportError) when ``lang`` is ``j`` and its packages are missing.
    """

    def __init__(self, vocab: Mapping[str, int] | None = None, lang: str = "a", limit: int = PHONEME_LIMIT):
        self.lang = resolve_lang(lang)
        self.british = self.lang == "b"
        self.limit = limit
        self.filter = VocabFilter(vocab)
        if self.lang == "j":
            self._japanese = japanese_g2p()
        else:
            self._g2p = english_g2p(self.british)

    def tokens(self, text: str, offset: int = 0) -> list[Token]:
        """G2P tokens of one paragraph, with spans into the caller's text (``text`` starts at ``offset``)."""
        if self.lang == "j":
            with _locks[self.lang]:
                return self._japanese.tokens(text, self.filter.symbol, offset)
        normalized = normalize(text, british=self.british)
        plain = _strip_links(normalized.text)
        with _locks[self.lang]:
            _, mtokens = self._g2p(normalized.text)
        tokens: list[Token] = []
        cursor = 0
        for mt in mtokens:
            start, end = locate(plain.text, mt.text, cursor)
            cursor = end
            start, end = normalized.source_span(*plain.source_span(start, end))
            phonemes = self.filter(mt.phonemes or "")
            tokens.append(Token(phonemes, bool(mt.whitespace), offset + start, offset + end, False))
            tokens[-1].is_word = is_spoken(mt.text, phonemes)
        # A silent prefix glued to a word ("$" of "$5") belongs to that word.
        for prev, token in zip(tokens, tokens[1:], strict=False):
            if token.is_word and not prev.is_word and not prev.phonemes and not prev.whitespace:
                token.start = min(token.start, prev.start)
        return tokens

    def chunks(self, text: str) -> list[Chunk]:
        """Chunks of at most 510 phonemes covering all of ``text``; each paragraph starts a new chunk."""
        chunks: list[Chunk] = []
        for m in _PARAGRAPH.finditer(text):
            paragraph = m.group(0)
            stripped = paragraph.strip()
            if not stripped:
                continue
            start = m.start() + paragraph.index(stripped)
            chunks += chunk_tokens(self.tokens(stripped, start), text, self.limit)
        return chunks

    def phonemize(self, text: str) -> str:
        """All of ``text`` as one phoneme string (chunks joined by a space)."""
        return " ".join(c.phonemes for c in self.chunks(text))

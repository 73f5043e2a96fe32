"""Japanese text -> Kokoro phoneme tokens with spans: misaki's cutlet G2P on fugashi + unidic-lite.

Kokoro v1.0's Japanese voices were trained on the phonemes of misaki's ``Cutlet`` (MeCab with the
UniDic dictionary, readings romanised to IPA-like symbols). This module runs the same steps -
normalise (NFKC, full/half width, numbers read out as kana), tag, group words found in misaki's
``ja_words.txt``, romanise, join and tidy the spacing - and keeps each word's span in the source
text, so ``"".join`` of the tokens' phonemes equals ``Cutlet()(text)`` exactly (tested).

The dictionary is ``unidic-lite`` (PyPI, offline). Imports happen on first use, so English-only
users do not load MeCab.
"""

from __future__ import annotations

import os
import re
import threading
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from itertools import groupby
from typing import Any

from .chunking import Token, is_spoken
from .spans import Edit, OffsetMap

# A base character and the (half-width) sound marks or combining marks that compose with it.
_CLUSTER = re.compile(r".[\u0300-\u036f\u3099\u309a\uff9e\uff9f]*", re.DOTALL)
_WAVE_DASH = frozenset("〜～")
_DIGITS = re.compile(r"[0-9]+")
# misaki's Convert reads at most 9 digits (up to 億); longer numbers are read here, four digits to a
# unit (万 10^4, 億 10^8, 兆 10^12, 京 10^16), with the sound changes before 兆 and 京.
_LONGEST_CONVERTED = 9
_UNITS = ("", "まん", "おく", "ちょう", "けい")
_GEMINATE = {  # unit -> reading endings that become a small tsu before it (一兆 いっちょう)
    "ちょう": ("いち", "はち", "じゅう"),
    "けい": ("いち", "ろく", "はち", "じゅう", "ひゃく"),
}
# A thousands separator ("1,000"): dropped, or misaki reads "1,000" as "one, zero".
_THOUSANDS = re.compile(r"(?<=[0-9０-９])[,，](?=[0-9０-９]{3}(?![0-9０-９]))")
_SPACES = re.compile(r"\s+")
# misaki: no space before or after a sokuon (ʔ) that sits at a word boundary.
_SOKUON_SPACE = re.compile(r'(?<![!",.:;?»—…”]) (?=ʔ)|(?<=ʔ) (?!["«“])')


class JapaneseUnavailable(ImportError):
    """The Japanese G2P's packages (fugashi, unidic-lite, mojimoji) are not installed."""


@dataclass
class _Word:
    """A romanised word group: misaki's ``Token`` plus its span in the tagged text."""

    surface: str
    roma: str
    space: bool
    start: int
    end: int


Labelled = list[tuple[str, int]]  # (character, index of the word it belongs to)


def _sub(chars: Labelled, pattern: re.Pattern[str], repl: str) -> Labelled:
    """``pattern.sub(repl, text)`` on labelled characters (replacement labelled like the match)."""
    text = "".join(c for c, _ in chars)
    out: Labelled = []
    pos = 0
    for m in pattern.finditer(text):
        out += chars[pos : m.start()]
        if m.end() > m.start():
            out += [(c, chars[m.start()][1]) for c in repl]
        pos = m.end()
    return out + chars[pos:]


def _strip(chars: Labelled) -> Labelled:
    start = next((i for i, (c, _) in enumerate(chars) if not c.isspace()), len(chars))
    end = next((i + 1 for i in range(len(chars) - 1, -1, -1) if not chars[i][0].isspace()), start)
    return chars[start:end]


class JapaneseG2P:
    """misaki's Japanese G2P (``misaki.cutlet.Cutlet``), token by token with source spans.

    Not thread-safe (MeCab's tagger); callers serialise calls.
    """

    def __init__(self) -> None:
        try:
            import fugashi
            import mojimoji
            import unidic_lite
            from misaki import cutlet
        except ImportError as exc:
            raise JapaneseUnavailable(
                f"Japanese G2P needs fugashi, unidic-lite and mojimoji ({exc}); "
                'install them: pip install "fugashi==1.5.2" "unidic-lite==1.0.8" "mojimoji==0.0.13"'
            ) from exc
        self._cutlet_module = cutlet
        self._mojimoji = mojimoji
        dicdir = unidic_lite.DICDIR
        self.tagger = fugashi.Tagger(f'-d "{dicdir}" -r "{os.path.join(dicdir, "mecabrc")}"')
        self.cutlet = cutlet.Cutlet.__new__(cutlet.Cutlet)  # its __init__ would pick any dictionary
        self.cutlet.tagger = self.tagger
        self.cutlet.table = dict(cutlet.HEPBURN)
        self.cutlet.exceptions = {}
        self._longest = max(map(len, cutlet.JA_WORDS))

    # -- normalisation -------------------------------------------------------------------------
    def _normalize_piece(self, piece: str, next_char: str) -> str:
        """``Cutlet._normalize_text`` (numbers aside) for one character cluster."""
        if piece in _WAVE_DASH and next_char.isdigit():
            return "から"
        for k, v in self._cutlet_module.Katakana_Phonetic_Extensions.items():
            piece = piece.replace(k, v)
        piece = unicodedata.normalize("NFKC", piece)
        if len(piece) == 1 and not piece.isascii() and unicodedata.decimal(piece, None) is not None:
            piece = str(unicodedata.decimal(piece))  # ٣ -> 3 (cutlet fails on digits outside ASCII)
        piece = self._mojimoji.zen_to_han(piece, kana=False)
        return self._mojimoji.han_to_zen(piece, digit=False, ascii=False)

    def normalize(self, text: str) -> tuple[OffsetMap, OffsetMap]:
        """``text`` normalised (first map) and with numbers read out as kana (second map).

        Deliberate differences from misaki, where misaki fails: thousands separators are dropped
        first, digits outside ASCII (٣) are read as their ASCII digit, and numbers past 9 digits are
        read by :meth:`read_number`.
        """
        edits = [Edit(m.start(), m.end(), "") for m in _THOUSANDS.finditer(text)]
        separators = {e.start for e in edits}
        for m in _CLUSTER.finditer(text):
            if m.start() in separators:
                continue
            piece = m.group(0)
            new = self._normalize_piece(piece, text[m.end() : m.end() + 1])
            if new != piece:
                edits.append(Edit(m.start(), m.end(), new))
        normalized = OffsetMap.apply(text, edits)
        numbers = [
            Edit(m.start(), m.end(), " " + self.read_number(m.group(0)))
            for m in _DIGITS.finditer(normalized.text)
        ]
        return normalized, OffsetMap.apply(normalized.text, numbers)

    def read_number(self, digits: str) -> str:
        """Kana for a run of ASCII digits: misaki's ``Convert`` up to 9 digits (its limit; past it,
        it returns an English error message). Longer numbers by 万, 億, 兆 and 京; a longer one that
        starts with 0 (a phone number) or one past 京 (20 digits), digit by digit."""
        convert: Callable[[str], str] = self._cutlet_module.Convert
        if len(digits) <= _LONGEST_CONVERTED:
            return convert(digits)
        if digits.startswith("0") or len(digits) > 4 * len(_UNITS):
            return " ".join(convert(d) for d in digits)
        groups = [digits[max(0, end - 4) : end] for end in range(len(digits), 0, -4)]  # lowest first
        words = []
        for group, unit in zip(groups, _UNITS, strict=False):
            if int(group) == 0:
                continue
            reading = convert(group)
            for ending in _GEMINATE.get(unit, ()):
                if reading.endswith(ending):
                    reading = reading[: -len(ending)] + ending[:-1] + "っ"
                    break
            words.append(reading + unit)
        return "".join(reversed(words))

    # -- tagging and romanisation --------------------------------------------------------------
    def _tagged(self, text: str) -> tuple[list[Any], list[tuple[int, int]]]:
        """misaki's ``Word`` per MeCab node, and each node's span in ``text``."""
        cutlet = self._cutlet_module
        import jaconv

        words, spans = [], []
        cursor = 0
        for node in self.tagger(text):
            surface = node.surface
            start = cursor + len(node.white_space)
            if text[start : start + len(surface)] != surface:
                found = text.find(surface, cursor)
                start = found if found >= 0 else cursor
            cursor = start + len(surface)
            feature = node.feature
            hira = jaconv.kata2hira(feature.pron or feature.kana or surface)
            char_type = 6 if node.char_type == 7 or not node.is_unk else node.char_type
            words.append(cutlet.Word(surface, hira, char_type))
            spans.append((start, cursor))
        return words, spans

    def _romanised(self, text: str) -> list[_Word]:
        """``Cutlet._romaji_tokens`` keeping spans."""
        cutlet = self._cutlet_module
        words, spans = self._tagged(text)
        groups: list[tuple[int, int]] = []  # [i, j) ranges of words
        i = 0
        while i < len(words):
            # misaki tries every run words[i:j] of one character type, longest first; runs longer
            # than the longest dictionary word cannot match, so they are skipped (same result).
            z, length = i + 1, len(words[i].surface)
            while z < len(words) and words[z].char_type == words[i].char_type:
                length += len(words[z].surface)
                if length > self._longest:
                    break
                z += 1
            j = next(
                (j for j in range(z, i, -1) if "".join(w.surface for w in words[i:j]) in cutlet.JA_WORDS),
                None,
            )
            j = i + 1 if j is None else j
            groups.append((i, j))
            i = j
        out: list[_Word] = []
        for i, j in groups:
            group = words[i:j]
            word = cutlet.Word(
                "".join(w.surface for w in group), "".join(w.hira for w in group), group[0].char_type
            )
            roma = self.cutlet._romaji_word(word)
            tok = _Word(word.surface, roma, False, spans[i][0], spans[j - 1][1])
            prev = out[-1] if out else None
            if word.surface in "「『«" or roma in "([":
                if prev:
                    prev.space = True
            elif word.surface in "」』»" or roma in "]).,?!:":
                if prev:
                    prev.space = False
                tok.space = True
            else:
                tok.space = roma != " "
            out.append(tok)
        for tok in out:
            tok.roma = tok.roma.replace("っ", "")
        return out

    # -- public --------------------------------------------------------------------------------
    def phonemes(self, text: str) -> str:
        """The phoneme string, as ``misaki.cutlet.Cutlet()(text)[0]``."""
        return "".join(c for c, _ in self._labelled(self._romanised(self.normalize(text)[1].text)))

    @staticmethod
    def _labelled(words: list[_Word]) -> Labelled:
        """The joined, tidied phoneme string, each character labelled with its word's index."""
        chars: Labelled = [(c, k) for k, w in enumerate(words) for c in w.roma + (" " if w.space else "")]
        chars = _sub(_strip(chars), _SPACES, " ")
        chars = [({"(": "«", ")": "»"}.get(c, c), k) for c, k in chars]
        return _sub(chars, _SOKUON_SPACE, "")

    def tokens(self, text: str, symbol: Callable[[str], str] = lambda c: c, offset: int = 0) -> list[Token]:
        """Tokens of ``text`` with spans into the caller's text (``text`` starts at ``offset``).

        ``symbol`` maps each phoneme character into the model's vocabulary (possibly to nothing).
        Joined the KPipeline way (phonemes, plus a space where ``whitespace``), the tokens give
        :meth:`phonemes` (mapped by ``symbol``). Words without phonemes keep an empty token.
        """
        normalized, numbered = self.normalize(text)
        words = self._romanised(numbered.text)
        chars = [(s, k) for c, k in self._labelled(words) for s in symbol(c)]
        phonemes: dict[int, str] = {
            k: "".join(c for c, _ in g) for k, g in groupby(chars, key=lambda x: x[1])
        }
        tokens: list[Token] = []
        for k, word in enumerate(words):
            ps = phonemes.get(k, "")
            if ps.startswith(" ") and tokens:
                tokens[-1].whitespace = True
            core = ps.strip(" ")
            start, end = normalized.source_span(*numbered.source_span(word.start, word.end))
            tokens.append(Token(core, ps.endswith(" ") and bool(core), offset + start, offset + end, False))
            tokens[-1].is_word = is_spoken(word.surface, core)
        return tokens


_lock = threading.Lock()


@lru_cache(maxsize=1)
def japanese_g2p() -> JapaneseG2P:
    """The shared Japanese G2P (built on first use; JapaneseUnavailable when not installed)."""
    with _lock:
        return JapaneseG2P()

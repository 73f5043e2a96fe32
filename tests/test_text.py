"""Unit tests of pattern_tts.text (offline misaki G2P, normalisation, chunking); no Triton needed."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import doctest
import importlib
import json
import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from pattern_tts.text import (
    PHONEME_LIMIT,
    SUPPORTED_LANGS,
    Phonemizer,
    VocabFilter,
    load_vocab,
    normalize_text,
    resolve_lang,
    split_phonemes,
)
from pattern_tts.text.chunking import Token, chunk_tokens
from pattern_tts.text.spans import Edit, OffsetMap

# hexgrad/Kokoro-82M config.json "vocab" (v1.0).
KOKORO_VOCAB = {
    ";": 1, ":": 2, ",": 3, ".": 4, "!": 5, "?": 6, "—": 9, "…": 10, '"': 11, "(": 12, ")": 13,
    "“": 14, "”": 15, " ": 16, "\u0303": 17, "ʣ": 18, "ʥ": 19, "ʦ": 20, "ʨ": 21, "ᵝ": 22,
    "\uab67": 23, "A": 24, "I": 25, "O": 31, "Q": 33, "S": 35, "T": 36, "W": 39, "Y": 41, "ᵊ": 42,
    "a": 43, "b": 44, "c": 45, "d": 46, "e": 47, "f": 48, "h": 50, "i": 51, "j": 52, "k": 53,
    "l": 54, "m": 55, "n": 56, "o": 57, "p": 58, "q": 59, "r": 60, "s": 61, "t": 62, "u": 63,
    "v": 64, "w": 65, "x": 66, "y": 67, "z": 68, "ɑ": 69, "ɐ": 70, "ɒ": 71, "æ": 72, "β": 75,
    "ɔ": 76, "ɕ": 77, "ç": 78, "ɖ": 80, "ð": 81, "ʤ": 82, "ə": 83, "ɚ": 85, "ɛ": 86, "ɜ": 87,
    "ɟ": 90, "ɡ": 92, "ɥ": 99, "ɨ": 101, "ɪ": 102, "ʝ": 103, "ɯ": 110, "ɰ": 111, "ŋ": 112,
    "ɳ": 113, "ɲ": 114, "ɴ": 115, "ø": 116, "ɸ": 118, "θ": 119, "œ": 120, "ɹ": 123, "ɾ": 125,
    "ɻ": 126, "ʁ": 128, "ɽ": 129, "ʂ": 130, "ʃ": 131, "ʈ": 132, "ʧ": 133, "ʊ": 135, "ʋ": 136,
    "ʌ": 138, "ɣ": 139, "ɤ": 140, "χ": 142, "ʎ": 143, "ʒ": 147, "ʔ": 148, "ˈ": 156, "ˌ": 157,
    "ː": 158, "ʰ": 162, "ʲ": 164, "↓": 169, "→": 171, "↗": 172, "↘": 173, "ᵻ": 177,
}  # fmt: skip

THREE_PARAGRAPHS = """The committee met on Tuesday to review the budget. Dr. Smith said it was "acceptable,"
but Mr. Jones wasn't convinced; he wanted to see the numbers first.

Tickets cost $5.50 each, or $12 for a family. Doors open at 3:30 pm on 1/15/2024 — don't be late!
Questions? Write to tickets@example.com or visit example.com/events for the 2nd showing.

In 1999, about 1,234 people lived on Main St. near St. Louis. Xyzzyqwert flibbertigibbet, e.g. nonsense.
"""


@pytest.fixture(autouse=True, scope="module")
def no_network() -> Iterator[None]:
    """Fail any attempt to open a network connection (misaki must not download spaCy)."""
    original = socket.socket.connect

    def refuse(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise AssertionError(f"network access attempted: {address}")
        return original(self, address)

    setattr(socket.socket, "connect", refuse)  # noqa: B010 (mypy: socket.socket is _socket.socket there)
    yield
    setattr(socket.socket, "connect", original)  # noqa: B010


@pytest.fixture(scope="module")
def us() -> Phonemizer:
    return Phonemizer(KOKORO_VOCAB, "a")


@pytest.fixture(scope="module")
def raw_us() -> Phonemizer:
    return Phonemizer(None, "a")


def spoken_words(text: str) -> list[str]:
    return re.findall(r"\w+", text)


def check_chunks(chunks: list, vocab: dict[str, int] | None = KOKORO_VOCAB) -> None:
    """Every chunk fits, uses only vocab symbols, and has ordered word spans inside its phonemes."""
    for c in chunks:
        assert 0 < len(c.phonemes) <= PHONEME_LIMIT
        assert c.phonemes == c.phonemes.strip()
        if vocab is not None:
            assert set(c.phonemes) <= set(vocab), set(c.phonemes) - set(vocab)
        last_end = 0
        for w in c.words:
            assert last_end <= w.start <= w.end <= len(c.phonemes), (w, c.phonemes)
            assert c.phonemes[w.start : w.end] == c.phonemes[w.start : w.end].strip()
            last_end = w.end


# --- offline misaki ---------------------------------------------------------------------------


def test_g2p_offline_matches_misaki_constructor(monkeypatch: pytest.MonkeyPatch) -> None:
    """OfflineG2P sets what misaki's own __init__ sets and phonemizes the same."""
    import spacy
    from misaki import en

    from pattern_tts.text.offline_spacy import english_g2p, load_spacy_pipeline

    nlp = load_spacy_pipeline()
    assert nlp.pipe_names == ["tok2vec", "tagger"]
    monkeypatch.setattr(spacy.util, "is_package", lambda name: True)
    monkeypatch.setattr(spacy, "load", lambda name, **kwargs: nlp)
    reference = en.G2P(british=False, fallback=english_g2p(False).fallback, unk="")
    ours = english_g2p(False)
    assert set(vars(reference)) == set(vars(ours))
    text = "The quick brown fox can't jump over 3 lazy dogs."
    assert ours(text)[0] == reference(text)[0]
    assert english_g2p(False) is ours  # cached


def test_espeak_fallback_for_unknown_words(raw_us: Phonemizer) -> None:
    (chunk,) = raw_us.chunks("Xyzzyqwert.")
    assert chunk.words[0].word == "Xyzzyqwert"
    assert chunk.words[0].end - chunk.words[0].start > 3


def test_langs_and_aliases() -> None:
    assert SUPPORTED_LANGS == ("a", "b", "j")
    assert resolve_lang(None) == "a" and resolve_lang("en-GB") == "b" and resolve_lang(" B ") == "b"
    assert resolve_lang("ja") == "j"
    with pytest.raises(ValueError, match="unsupported lang"):
        resolve_lang("z")
    us, gb = Phonemizer(KOKORO_VOCAB, "a"), Phonemizer(KOKORO_VOCAB, "b")
    assert us.phonemize("I can't dance, tomato.") != gb.phonemize("I can't dance, tomato.")


# --- normalisation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("at 3:30 pm", "at three thirty PM"),
        ("at 3:30pm", "at three thirty PM"),
        ("at 7:05 AM", "at seven oh five AM"),
        ("at 12:00", "at twelve o'clock"),
        ("at 14:30", "at fourteen thirty"),
        ("on 1/15/2024", "on January 15th, 2024"),
        ("on 2024-01-15", "on January 15th, 2024"),
        ("on Jan. 5, 2024", "on January 5th, 2024"),
        ("on January 15, 2024", "on January 15th, 2024"),
        ("15 January 2024", "the 15th of January 2024"),
        ("in March 2024", "in March 2024"),
        ("visit example.com.", "visit example dot com."),
        (
            "see https://www.example.com/a_b?x=1",
            "see WWW dot example dot com slash a underscore b question mark x equals 1",
        ),
        ("mail john.doe@example.com", "mail john dot doe at example dot com"),
        ("call 555-123-4567", "call five five five, one two three, four five six seven"),
        ("e.g. this, i.e. that", "for example this, that is that"),
        ("A vs. B", "A versus B"),
        ("12 Main St. near St. Louis", "12 Main Street near Saint Louis"),
        ("I live on Main St.", "I live on Main Street."),
        ("John Smith Jr. said", "John Smith Junior said"),
        ("Gen. Lee and Mt. Everest", "General Lee and Mount Everest"),
        ("Dr. Smith", "Dr. Smith"),  # misaki reads "doctor"
        ("1/2 cup and 3/4 and 1 1/2", "one half cup and three quarters and 1 and one half"),
        ("It is 25°C", "It is 25 degrees Celsius"),
        ("He said -3, not 10-20", "He said minus 3, not 10-20"),
        ("a  b\tc", "a b c"),
        ("[Kokoro](/kˈOkəɹO/)", "[Kokoro](/kˈOkəɹO/)"),
        ("pick 1,2,3 or 10,20", "pick 1, 2, 3 or 10, 20"),
        ("card 4111111111111111.", "card four one one one, one one one one, one one one one, one one one one."),
        (
            "id A12345678901234567",
            "id A one two three four, five six seven eight, nine zero one two, three four five six, seven",
        ),
        ("$" + "9" * 16 + ".05", "nine nine nine nine, " * 3 + "nine nine nine nine point zero five dollars"),
        ("1," + "000," * 10 + "000", "one, " + "zero zero zero, " * 10 + "zero zero zero"),  # past octillion
        ("1,000,000,000,000,000,000,000,000,000 and 10,00,000 and 999999999999999", None),
        # misaki reads these well already: left alone
        ("$5.50, 2nd, 100%, 1,000,000, the 1990s", "$5.50, 2nd, 100%, 1,000,000, the 1990s"),
    ],
)
def test_normalize(text: str, expected: str | None) -> None:
    assert normalize_text(text) == (text if expected is None else expected)


@pytest.mark.parametrize("text", ["1" * 400, "1" * 350 + ",000", "1," * 400 + "000", "$" + "1" * 400, "1" * 40 + ".5"])
def test_numbers_num2words_cannot_name_are_spoken(us: Phonemizer, text: str) -> None:
    """misaki hands these to num2words, which raises OverflowError past 10**303: read digit by digit."""
    phonemes = us.phonemize(text)
    assert phonemes.count("wˈʌn") >= 40


def test_normalize_british_dates() -> None:
    assert normalize_text("on 5/1/2024", british=True) == "on the 5th of January 2024"
    assert normalize_text("on 5/1/2024") == "on May 1st, 2024"


@pytest.mark.parametrize(
    ("text", "word", "phonemes"),
    [
        ("It costs $5.50 today.", "$5.50", "fˈIv dˈɑləɹz ænd fˈɪfti sˈɛnts"),
        ("Meet at 3:30 pm today.", "3:30 pm", "θɹˈi θˈɜɹTi pˌiˈɛm"),
        ("The 2nd one.", "2nd", "sˈɛkənd"),
        ("Go to example.com now.", "example.com", "ɪɡzˈæmpəl dˈɑt kˈɑm"),
        ("Ask Dr. Smith.", "Dr.", "dˈɑktəɹ"),
    ],
)
def test_rewritten_words_report_source_text(us: Phonemizer, text: str, word: str, phonemes: str) -> None:
    (chunk,) = us.chunks(text)
    found = {w.word: chunk.phonemes[w.start : w.end] for w in chunk.words}
    assert found[word] == phonemes
    assert chunk.text == text


def test_offset_map() -> None:
    m = OffsetMap.apply("ab 12 cd", [Edit(3, 5, "twelve")])
    assert m.text == "ab twelve cd"
    assert m.source_span(0, 2) == (0, 2)
    assert m.source_span(3, 9) == (3, 5)
    assert m.source_span(5, 7) == (3, 5)
    assert m.source_span(10, 12) == (6, 8)
    with pytest.raises(ValueError):
        OffsetMap.apply("abc", [Edit(0, 2, "x"), Edit(1, 3, "y")])


@pytest.mark.parametrize("module", ["normalization", "spans", "chunking", "vocab"])
def test_doctests(module: str) -> None:
    result = doctest.testmod(importlib.import_module(f"pattern_tts.text.{module}"))
    assert result.failed == 0 and result.attempted > 0


# --- words, vocab, chunks ---------------------------------------------------------------------


def test_three_paragraphs_all_words_in_order(us: Phonemizer) -> None:
    chunks = us.chunks(THREE_PARAGRAPHS)
    check_chunks(chunks)
    assert len(chunks) >= 3  # KPipeline never joins paragraphs
    reported = [tok for c in chunks for w in c.words for tok in spoken_words(w.word)]
    assert reported == spoken_words(THREE_PARAGRAPHS)
    for c in chunks:
        assert c.text in THREE_PARAGRAPHS and "\n" not in c.text


def test_chunk_json_shape(us: Phonemizer) -> None:
    data = json.loads(json.dumps([c.to_dict() for c in us.chunks("Hello, world!")]))
    assert data == [
        {
            "text": "Hello, world!",
            "phonemes": "həlˈO, wˈɜɹld!",
            "words": [{"word": "Hello", "start": 0, "end": 5}, {"word": "world", "start": 7, "end": 13}],
            "continues_paragraph": False,
        }
    ]


def test_chunks_say_whether_they_continue_a_paragraph(us: Phonemizer) -> None:
    """A paragraph too long for one chunk continues in the next; a new paragraph starts anew."""
    paragraph = " ".join([THREE_PARAGRAPHS.replace("\n", " ")] * 2)  # about 1,300 phonemes
    chunks = us.chunks(f"Hello there.\n{paragraph}\nGoodbye.")  # a line is a paragraph, as in KPipeline
    flags = [c.continues_paragraph for c in chunks]
    assert len(flags) >= 4
    assert flags == [False, False] + [True] * (len(flags) - 3) + [False]


def test_vocab_filter_keeps_word_indexes(raw_us: Phonemizer) -> None:
    """Dropping symbols (here the stress marks) shifts word spans consistently."""
    no_stress = {k: v for k, v in KOKORO_VOCAB.items() if k not in "ˈˌ"}
    text = "Tomorrow, the photographer will photograph Alexander's extraordinary elephants."
    (full,) = raw_us.chunks(text)
    (filtered,) = Phonemizer(no_stress, "a").chunks(text)
    check_chunks([filtered], no_stress)
    assert filtered.phonemes == full.phonemes.replace("ˈ", "").replace("ˌ", "")
    assert [w.word for w in filtered.words] == [w.word for w in full.words]
    for a, b in zip(full.words, filtered.words, strict=True):
        unstressed = full.phonemes[a.start : a.end].replace("ˈ", "").replace("ˌ", "")
        assert unstressed == filtered.phonemes[b.start : b.end]


def test_vocab_replacements_and_loading(tmp_path: object) -> None:
    f = VocabFilter(KOKORO_VOCAB)
    assert f("gɝ–x\u0329") == "ɡɜɹ—x"
    path = tmp_path / "config.json"  # type: ignore[operator]
    path.write_text(json.dumps({"n_token": 178, "vocab": KOKORO_VOCAB}), encoding="utf-8")
    assert load_vocab(tmp_path) == KOKORO_VOCAB  # type: ignore[arg-type]
    assert load_vocab(path) == KOKORO_VOCAB


def test_chunking_matches_kpipeline(raw_us: Phonemizer) -> None:
    """Same cut points as kokoro 0.9.4's KPipeline.en_tokenize on a long paragraph."""
    kpipeline = pytest.importorskip("kokoro.pipeline").KPipeline
    from pattern_tts.text.offline_spacy import english_g2p

    sentence = (
        "The river ran past the old mill, and the miller watched it: slowly, patiently; "
        "then he went home. Did anyone see him? Nobody knows… "
    )
    text = " ".join(sentence for _ in range(12)).strip() + " and then, finally, they all went to sleep"
    _, tokens = english_g2p(False)(text)
    expected = [ps for _, ps, _ in kpipeline.en_tokenize(None, tokens) if ps]
    got = [c.phonemes for c in raw_us.chunks(text)]
    assert len(expected) > 2
    assert got == expected


def test_no_text_is_dropped(us: Phonemizer) -> None:
    """A single huge word, numbers and run-on text without punctuation are split, never cut off."""
    giant = "Supercalifragilistic" * 60
    chunks = us.chunks(f"Start {giant} end")
    check_chunks(chunks)
    assert len(chunks) >= 2
    assert [w.word for c in chunks for w in c.words if w.word != giant] == ["Start", "end"]
    assert sum(len(c.phonemes) for c in chunks) > 2 * PHONEME_LIMIT
    assert all(giant in [w.word for w in c.words] for c in chunks)
    run_on = " ".join(["word"] * 400)
    chunks = us.chunks(run_on)
    check_chunks(chunks)
    assert sum(len(c.words) for c in chunks) == 400


def test_chunk_tokens_splits_giant_token_without_spaces() -> None:
    source = "x" * 10
    tokens = [Token("a" * 1200, False, 0, 10, True)]
    chunks = chunk_tokens(tokens, source, limit=510)
    assert [len(c.phonemes) for c in chunks] == [510, 510, 180]
    assert [c.continues_paragraph for c in chunks] == [False, True, True]
    assert all(c.words[0].word == source and c.words[0].end == len(c.phonemes) for c in chunks)


def test_empty_and_blank_input(us: Phonemizer) -> None:
    assert us.chunks("") == []
    assert us.chunks(" \n\n \t") == []
    assert us.phonemize("...") in ("", "...")


def test_split_phonemes() -> None:
    text = " ".join(["ðə kwˈɪk bɹˈWn fˈɑks."] * 40) + " " + "a" * 1100
    pieces = split_phonemes(text)
    assert all(0 < len(p) <= PHONEME_LIMIT for p in pieces)
    assert "".join(pieces).replace(" ", "") == text.replace(" ", "")
    assert pieces[0].endswith(".")  # cut at a sentence end
    assert split_phonemes("  hˈɛlO  \n wˈɜɹld ") == ["hˈɛlO wˈɜɹld"]
    assert split_phonemes("") == []


def test_20k_characters_fast_enough(us: Phonemizer) -> None:
    paragraph = THREE_PARAGRAPHS.replace("\n\n", " ")
    text = "\n\n".join([paragraph] * 40)[:20_000]
    start = time.perf_counter()
    chunks = us.chunks(text)
    elapsed = time.perf_counter() - start
    check_chunks(chunks)
    assert [t for c in chunks for w in c.words for t in spoken_words(w.word)] == spoken_words(text)
    assert elapsed < 15, f"{elapsed:.1f} s for 20k characters"

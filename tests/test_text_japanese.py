"""Japanese G2P (lang ``j``): misaki's cutlet phonemes, word spans, chunking; offline, no Triton."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import json
import re
import time

import pytest

from pattern_tts.text import PHONEME_LIMIT, Phonemizer, resolve_lang
from pattern_tts.text.chunking import _ps
from pattern_tts.text.japanese import JapaneseG2P, japanese_g2p
from tests.test_text import KOKORO_VOCAB, check_chunks, no_network  # noqa: F401  (autouse: offline)

SENTENCES = [
    "こんにちは。今日の説明を始めます。",
    "東京タワーは333メートルです！",
    "ｶﾞｷﾞ　ちょっと待って、「本当？」",
    "私はAppleのiPhoneを使っています。",
    "3〜5人で来てください。",
    "がっこう、きって、ラーメン。",
    "（注）ＡＢＣ１２３は・テスト…です",
    "  先生は「はい」と言った。 ",
    "吾輩は猫である。名前はまだ無い。",
    "ㇰㇱと々ゝ。",
]
# Kokoro's vocabulary has no « » (misaki's brackets); everything else misaki writes is in it.
NOT_IN_VOCAB = frozenset("«»")


@pytest.fixture(scope="module")
def ja() -> Phonemizer:
    return Phonemizer(KOKORO_VOCAB, "j")


@pytest.fixture(scope="module")
def raw_ja() -> Phonemizer:
    return Phonemizer(None, "ja")


def test_lang_codes() -> None:
    assert resolve_lang("j") == resolve_lang("ja") == resolve_lang("JA-JP") == "j"
    assert japanese_g2p() is japanese_g2p()  # built once


@pytest.mark.parametrize("text", SENTENCES)
def test_same_phonemes_as_misaki(text: str) -> None:
    """Token by token, the phonemes are exactly misaki's ``Cutlet`` (Kokoro v1.0's Japanese G2P)."""
    from misaki.cutlet import Cutlet

    expected, _ = Cutlet()(text)
    g2p = japanese_g2p()
    assert g2p.phonemes(text) == expected
    assert _ps(g2p.tokens(text)) == expected


def test_words_and_spans(raw_ja: Phonemizer) -> None:
    text = "東京タワーは333メートルです！ ちょっと待って、「本当？」"
    (chunk,) = raw_ja.chunks(text)
    check_chunks([chunk], None)
    assert chunk.text == text
    words = [w.word for w in chunk.words]
    assert words[:2] == ["東京", "タワー"]
    assert "333" in "".join(words) and "本当" in words and "、" not in words
    spans = {w.word: chunk.phonemes[w.start : w.end] for w in chunk.words}
    assert spans["東京"] == "toːkʲoː" and spans["本当"] == "hontoː"
    # Half-width kana and full-width letters keep their source spelling.
    (chunk,) = raw_ja.chunks("ｶﾞｷﾞとＡＢＣ")
    assert [w.word for w in chunk.words][:2] == ["ｶﾞ", "ｷﾞ"] and "ＡＢＣ" in [w.word for w in chunk.words]


def test_thousands_separator_is_read_as_one_number(raw_ja: Phonemizer) -> None:
    (chunk,) = raw_ja.chunks("これは1,000円です。")
    assert "," not in chunk.phonemes and "seɴ" in chunk.phonemes
    assert any("1,000" in w.word for w in chunk.words)


@pytest.mark.parametrize(
    ("digits", "kana"),
    [
        ("123456789", "いちおくにせんさんびゃくよんじゅうごまんろくせんななひゃくはちじゅうきゅう"),  # misaki's
        ("1234567890", "じゅうにおくさんぜんよんひゃくごじゅうろくまんななせんはっぴゃくきゅうじゅう"),
        ("100000000000", "せんおく"),
        ("1000000000000", "いっちょう"),
        ("80000000000000000", "はっけい"),
        ("10000000000000000", "いっけい"),
        ("09012345678", "ゼロ きゅう ゼロ いち に さん よん ご ろく なな はち"),  # a phone number
        ("1" * 21, " ".join(["いち"] * 21)),  # past 京
    ],
)
def test_long_numbers_are_read(digits: str, kana: str) -> None:
    """misaki's Convert stops at 9 digits (it returns an English error message, then cutlet fails on
    its digits): longer numbers are read by 万, 億, 兆 and 京, phone numbers digit by digit."""
    assert japanese_g2p().read_number(digits) == kana


def test_numbers_misaki_fails_on_are_spoken(raw_ja: Phonemizer) -> None:
    (chunk,) = raw_ja.chunks("電話は09012345678です。")
    assert chunk.phonemes.count("ʣeɾo") == 2 and chunk.phonemes.endswith("desɨ.")
    assert "09012345678" in [w.word for w in chunk.words]
    for text in ["1" * 10, "1" * 400, "٣ apples", "۱۲۳円"]:  # cutlet asserts on digits outside ASCII
        chunks = raw_ja.chunks(text)
        assert chunks and all(c.phonemes.strip() for c in chunks)
    assert raw_ja.phonemize("۱۲۳円") == raw_ja.phonemize("123円")


def test_vocab_and_json_shape(ja: Phonemizer) -> None:
    chunks = ja.chunks("\n".join(SENTENCES))
    check_chunks(chunks)
    assert len(chunks) == len([s for s in SENTENCES if s.strip()])  # one chunk per paragraph at least
    data = json.loads(json.dumps([c.to_dict() for c in chunks], ensure_ascii=False))
    assert set(data[0]) == {"text", "phonemes", "words", "continues_paragraph"}
    raw = Phonemizer(None, "j").phonemize("（注）「はい」")
    assert ja.phonemize("（注）「はい」") == "".join(c for c in raw if c not in NOT_IN_VOCAB)


def test_chunks_cut_at_sentence_ends(ja: Phonemizer) -> None:
    sentences = ["今日はいい天気ですね。", "明日も晴れるでしょう！", "週末は雨が降るかもしれません？"]
    text = "".join(sentences * 30)
    chunks = ja.chunks(text)
    check_chunks(chunks)
    assert len(chunks) > 1
    assert all(c.phonemes[-1] in ".!?" for c in chunks)
    assert "".join(c.text for c in chunks) == text  # no text dropped, cut between sentences
    small = Phonemizer(KOKORO_VOCAB, "j", limit=40).chunks("".join(sentences))
    assert [c.text for c in small] == sentences
    assert all(len(c.phonemes) <= 40 for c in small)


def test_no_text_is_dropped_without_punctuation(ja: Phonemizer) -> None:
    text = "東京" * 400
    chunks = ja.chunks(text)
    check_chunks(chunks)
    assert sum(len(c.words) for c in chunks) == 400
    assert sum(len(c.phonemes) for c in chunks) > 2 * PHONEME_LIMIT


def test_empty_and_english_text(ja: Phonemizer) -> None:
    assert ja.chunks("") == [] and ja.chunks(" \n ") == []
    # English text with lang j passes through as letters (use lang a for English, any voice).
    (chunk,) = ja.chunks("Hello world.")
    assert [w.word for w in chunk.words] == ["Hello", "world"]


def test_long_text_fast_enough(ja: Phonemizer) -> None:
    text = "".join(SENTENCES) * 60
    start = time.perf_counter()
    chunks = ja.chunks(text)
    assert time.perf_counter() - start < 5
    check_chunks(chunks)
    assert len(chunks) >= 10


def test_missing_packages_raise_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_fugashi(name: str, *args: object, **kwargs: object) -> object:
        if name == "fugashi":
            raise ImportError("No module named 'fugashi'")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_fugashi)
    with pytest.raises(ImportError, match=re.escape("unidic-lite")):
        JapaneseG2P()

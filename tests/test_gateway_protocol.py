"""Request schemas and error mapping (no server needed)."""

from __future__ import annotations

import asyncio
import json
import re
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import pytest
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from gateway.errors import APIError, validation_error
from gateway.protocol import PhonemizeRequest, SpeechRequest
from gateway.serving import (
    FRAME_SAMPLES,
    KEEP_LEAD_FRAMES,
    KEEP_TAIL_FRAMES,
    Block,
    Prepared,
    SpeechService,
    halve_long,
    phoneme_words,
    split_blocks,
    split_lead,
    split_phonemes,
    trim_silence,
    word_timestamps,
)
from gateway.triton import Chunk, Synthesized, TritonClient, Word, parse_chunks
from gateway.voices import VoiceCatalogue
from pattern_tts.settings import Settings


def _req(**kw: Any) -> SpeechRequest:
    return SpeechRequest.model_validate({"input": "Hi.", "voice": "af_heart", **kw})


def test_defaults() -> None:
    r = _req()
    assert r.model == "kokoro"
    assert r.response_format == "mp3"
    assert r.speed == 1.0
    assert r.stream_format == "audio"
    assert r.input_type == "text"
    assert r.lang is None
    assert r.instructions is None
    assert r.model_extra == {}


@pytest.mark.parametrize("model", ["kokoro", "tts-1", "tts-1-hd", "gpt-4o-mini-tts", "TTS-1"])
def test_models_accepted(model: str) -> None:
    assert _req(model=model).model == model.lower()


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "wav", "pcm", "WAV"])
def test_formats_accepted(fmt: str) -> None:
    assert _req(response_format=fmt).response_format == fmt.lower()


@pytest.mark.parametrize(
    ("voice", "expected"),
    [("af_heart", "af_heart"), ("  alloy\n", "alloy"), ({"id": " am_adam "}, "am_adam")],
)
def test_voice_string_or_object(voice: Any, expected: str) -> None:
    assert _req(voice=voice).voice == expected


def test_extensions_and_unknown_fields_kept_aside() -> None:
    r = _req(lang="en-gb", input_type="phonemes", seed=7, backend="openai", instructions="cheerful")
    assert (r.lang, r.input_type, r.seed, r.instructions) == ("b", "phonemes", 7, "cheerful")
    assert r.model_extra == {"backend": "openai"}


def _error(**kw: Any) -> dict[str, Any]:
    body = {"input": "Hi.", "voice": "af_heart", **kw}
    body = {k: v for k, v in body.items() if v is not None}
    with pytest.raises(ValidationError) as err:
        SpeechRequest.model_validate(body)
    errors = [{**e, "loc": ("body", *e["loc"])} for e in err.value.errors()]
    api = validation_error(RequestValidationError(errors))
    assert api.status_code == 400
    return api.body()["error"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("response_format", "ogg"),
        ("speed", 0.1),
        ("speed", 4.5),
        ("speed", "fast"),
        ("model", "whisper-1"),
        ("voice", ""),
        ("voice", {"name": "x"}),
        ("voice", 3),
        ("stream_format", "chunks"),
        ("lang", "xx"),
        ("input_type", "ssml"),
        ("seed", -1),
    ],
)
def test_bad_values_name_their_param(field: str, value: Any) -> None:
    err = _error(**{field: value})
    assert err["param"] == field
    assert err["type"] == "invalid_request_error"
    assert field in err["message"]


def test_speed_that_is_not_a_number_says_so() -> None:
    """JSON has no NaN, but Python's json and pydantic read "NaN": it is not "above 4"."""
    for value in ("NaN", float("nan"), "inf"):
        err = _error(speed=value)
        assert err["param"] == "speed" and "finite number" in err["message"], err


def test_missing_input_is_named() -> None:
    with pytest.raises(ValidationError) as err:
        SpeechRequest.model_validate({"voice": "alloy"})
    errors = [{**e, "loc": ("body", *e["loc"])} for e in err.value.errors()]
    body = validation_error(RequestValidationError(errors)).body()["error"]
    assert body["param"] == "input"
    assert body["message"] == "Missing required parameter: 'input'."


def test_phonemize_request() -> None:
    r = PhonemizeRequest.model_validate({"input": "Hello", "lang": "b"})
    assert r.lang == "b"
    assert PhonemizeRequest.model_validate({"input": "x"}).lang == "a"
    for lang in ("j", "ja", "JA-JP", "japanese"):
        assert PhonemizeRequest.model_validate({"input": "x", "lang": lang}).lang == "j"
        assert _req(lang=lang).lang == "j"


def test_split_phonemes_respects_limit_and_keeps_everything() -> None:
    sentence = "həlˈoʊ wˈɜːld, ðɪs ɪz ɐ tˈɛst. "
    text = sentence * 60
    chunks = split_phonemes(text, limit=510)
    assert all(0 < len(c) <= 510 for c in chunks)
    assert " ".join(chunks).split() == text.split()
    assert all(c.endswith(".") for c in chunks[:-1])  # cut at sentence ends when possible
    assert split_phonemes("  a  b ") == ["a b"]
    assert split_phonemes("x" * 1200, limit=500) == ["x" * 500, "x" * 500, "x" * 200]


def test_split_lead_cuts_after_first_long_enough_sentence() -> None:
    ph = "hˈaɪ. ðɪs ɪz ðə fˈɜːst sˈɛntəns. ænd ðɪs ɪz ðə sˈɛkənd."
    words = tuple(Word(m.group(), m.start(), m.end()) for m in re.finditer(r"[^\s.]+", ph))
    lead, rest = split_lead(Chunk("text", ph, words), min_phonemes=10)
    assert lead.phonemes == "hˈaɪ. ðɪs ɪz ðə fˈɜːst sˈɛntəns."
    assert rest.phonemes == "ænd ðɪs ɪz ðə sˈɛkənd."
    assert [lead.phonemes[w.start : w.end] for w in lead.words] == [w.word for w in lead.words]
    assert [rest.phonemes[w.start : w.end] for w in rest.words] == [w.word for w in rest.words]
    assert len(lead.words) + len(rest.words) == len(words)
    one = Chunk("t", "wˈʌn sˈɛntəns ˈoʊnli.", ())
    assert split_lead(one, min_phonemes=5) == [one]
    # A long first sentence is cut at its first clause end past the minimum.
    clause = Chunk("t", "kˈɔl mˌi ˈɪʃmeɪl. sˌʌm jˈɪɹz əɡˈO, nˈɛvəɹ mˈInd hˌW lˈɔŋ, hˈævɪŋ nˈO mˈʌni.", ())
    lead, rest = split_lead(clause, min_phonemes=24)
    assert lead.phonemes == "kˈɔl mˌi ˈɪʃmeɪl. sˌʌm jˈɪɹz əɡˈO,"
    assert rest.phonemes == "nˈɛvəɹ mˈInd hˌW lˈɔŋ, hˈævɪŋ nˈO mˈʌni."


def test_split_lead_pieces_grow_so_each_is_ready_before_the_one_before_has_played() -> None:
    sentences = [" ".join(["wˈʌn"] * n) + "." for n in (3, 2, 4, 9, 30, 5, 40)]
    ph = " ".join(sentences)
    words = tuple(Word(m.group(), m.start(), m.end()) for m in re.finditer(r"[^\s.]+", ph))
    pieces = split_lead(Chunk("text", ph, words), min_phonemes=12, growth=3)
    assert " ".join(p.phonemes for p in pieces) == ph  # nothing lost, order kept
    assert sum(len(p.words) for p in pieces) == len(words)
    for p in pieces:
        assert [p.phonemes[w.start : w.end] for w in p.words] == [w.word for w in p.words]
    sizes = [len(p.phonemes) for p in pieces]
    assert sizes[0] >= 12 and len(pieces) >= 3
    for before, after in zip(sizes[:-2], sizes[1:-1], strict=True):  # the last piece is what is left
        assert after >= 3 * before


def _piece(durations: list[int], silent_lead: int, quiet_lead: int = 0, silent_tail: int = 0) -> Synthesized:
    """A piece's audio: digital silence, a quiet onset (-100 dBFS), speech (a 200 Hz tone), then
    `silent_tail` frames of silence; frames as the durations count them."""
    n = sum(durations) * FRAME_SAMPLES
    wave = 0.3 * np.sin(2 * np.pi * 200 * np.arange(n) / 24_000).astype(np.float32)
    wave[: silent_lead * FRAME_SAMPLES] = 0.0
    wave[silent_lead * FRAME_SAMPLES : (silent_lead + quiet_lead) * FRAME_SAMPLES] = 1e-5
    wave[n - silent_tail * FRAME_SAMPLES :] = 0.0
    return Synthesized(wave, np.array(durations, np.int64))


def _aligned(result: Synthesized) -> bool:
    return len(result.waveform) == int(result.durations.sum()) * FRAME_SAMPLES


def test_trim_silence_keeps_a_short_pause_where_two_chunks_meet() -> None:
    piece = _piece([13, 20, 10, 7, 1], silent_lead=8, quiet_lead=2, silent_tail=24)
    keep = KEEP_TAIL_FRAMES["piece"]
    lead_cut = 10 - KEEP_LEAD_FRAMES  # audible from frame 10
    tail_cut = 24 - keep  # silent for the last 24 frames: the last 3 tokens' 18 frames and 6 more
    trimmed = trim_silence(piece, lead=True, tail_frames=keep)
    assert trimmed.durations.tolist() == [13 - lead_cut, 20, 10 - (tail_cut - 8), 0, 0]
    assert np.array_equal(trimmed.waveform, piece.waveform[lead_cut * FRAME_SAMPLES : -tail_cut * FRAME_SAMPLES])
    assert _aligned(trimmed)  # word timestamps stay where the words are
    only_lead = trim_silence(piece, lead=True, tail_frames=None)
    assert only_lead.durations.tolist() == [13 - lead_cut, 20, 10, 7, 1] and _aligned(only_lead)
    longer_pause = trim_silence(piece, lead=False, tail_frames=KEEP_TAIL_FRAMES["chunk"])
    assert len(longer_pause.waveform) == len(piece.waveform) - (24 - KEEP_TAIL_FRAMES["chunk"]) * FRAME_SAMPLES
    assert _aligned(longer_pause)
    assert trim_silence(piece, lead=False, tail_frames=None) is piece


def test_trim_silence_never_cuts_past_the_boundary_token_or_into_sound() -> None:
    silent_lead = _piece([13, 5, 1], silent_lead=16)  # silent past the boundary token
    assert trim_silence(silent_lead, lead=True, tail_frames=None).durations.tolist() == [2, 5, 1]
    loud = _piece([13, 5, 1], silent_lead=0)
    assert trim_silence(loud, lead=True, tail_frames=0) is loud
    silent = Synthesized(np.zeros(19 * FRAME_SAMPLES, np.float32), np.array([13, 5, 1]))
    assert trim_silence(silent, lead=True, tail_frames=0) is silent
    empty = Synthesized(np.zeros(0, np.float32), np.zeros(0, np.int64))
    assert trim_silence(empty, lead=True, tail_frames=0) is empty


def test_word_timestamps_from_durations() -> None:
    # phonemes "ab cd": tokens [bos, a, b, ' ', c, d, eos]
    chunk = Chunk("ab cd", "ab cd", (Word("ab", 0, 2), Word("cd", 3, 5)))
    durations = np.array([2, 3, 3, 1, 4, 4, 2])
    result = Synthesized(np.zeros(int(durations.sum()) * 600, np.float32), durations)
    words = word_timestamps(chunk, result, offset=24_000)
    frame = 600 / 24_000
    assert [w.word for w in words] == ["ab", "cd"]
    assert words[0].start == pytest.approx(1 + 2 * frame)
    assert words[0].end == pytest.approx(1 + 8 * frame)
    assert words[1].start == pytest.approx(1 + 9 * frame)
    assert words[1].end == pytest.approx(1 + 17 * frame)


def silent_tail(result: Synthesized) -> int:
    """Whole frames after the last non-zero sample."""
    return len(result.waveform) // FRAME_SAMPLES - (int(np.flatnonzero(result.waveform)[-1]) // FRAME_SAMPLES + 1)


def idle_triton(in_flight: int = 0) -> TritonClient:
    """Stands in for the client where `prepare` needs no call (phoneme input): its load only."""
    return cast(TritonClient, SimpleNamespace(kokoro_in_flight=in_flight))


def test_prepare_cuts_pieces_only_while_the_model_has_little_else_to_do() -> None:
    phonemes = "wˈʌn tˈu θɹˈi fˈɔɹ, fˈIv sˈɪks sˈɛvən ˈAt, nˈIn tˈɛn ɪlˈɛvən twˈɛlv."
    request = _req(input=phonemes, input_type="phonemes")

    def chunks(in_flight: int, limit: int) -> int:
        service = SpeechService(Settings(lead_split_max_in_flight=limit), idle_triton(in_flight), VoiceCatalogue(None))
        return len(asyncio.run(service.prepare(request, {})).chunks)

    assert chunks(in_flight=0, limit=0) >= 2  # idle: pieces, the first audio comes early
    assert chunks(in_flight=1, limit=0) == 1  # busy: one chunk, no edge silences to synthesise and trim
    assert chunks(in_flight=3, limit=3) >= 2


def test_prepare_checks_every_chunks_phonemes_before_any_is_sent() -> None:
    symbols = frozenset("wˈʌn tuθɹiˈfɔ.")
    service = SpeechService(Settings(), idle_triton(), VoiceCatalogue(None), phoneme_symbols=symbols)
    good = " ".join(["wˈʌn tˈu θɹˈi fˈɔɹ."] * 40)  # two chunks of at most 510 symbols
    assert len(asyncio.run(service.prepare(_req(input=good, input_type="phonemes"), {})).chunks) >= 2
    with pytest.raises(APIError) as err:  # a bad symbol in the second chunk only
        asyncio.run(service.prepare(_req(input=good + " ʒ", input_type="phonemes"), {}))
    assert (err.value.status_code, err.value.param) == (400, "input")
    assert "'ʒ'" in err.value.message


def test_requests_whose_g2p_returns_together_do_not_all_read_the_model_as_idle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only the first of two requests prepared in the same event-loop turn is cut into pieces: its
    calls count as in flight from the moment they are started, before their tasks have run."""
    phonemes = "wˈʌn tˈu θɹˈi fˈɔɹ, fˈIv sˈɪks sˈɛvən ˈAt, nˈIn tˈɛn ɪlˈɛvən twˈɛlv."

    async def g2p(self: TritonClient, text: str, lang: str = "a") -> list[Chunk]:
        return [Chunk(text, phonemes, phoneme_words(phonemes))]

    async def synthesize(self: TritonClient, job: object) -> Synthesized:
        await asyncio.sleep(0.01)
        return Synthesized(np.zeros(FRAME_SAMPLES, np.float32), np.ones(3, np.int64))

    monkeypatch.setattr(TritonClient, "g2p", g2p)
    monkeypatch.setattr(TritonClient, "synthesize", synthesize)

    async def two_requests() -> tuple[list[int], int]:
        triton = TritonClient("127.0.0.1:1", "127.0.0.1:1")
        service = SpeechService(Settings(lead_split_max_in_flight=0), triton, VoiceCatalogue(None))
        infos: list[dict[str, Any]] = [{}, {}]
        responses = await asyncio.gather(*(service.speech(_req(input="x"), info) for info in infos))
        for response in responses:  # play both to the end
            async for _ in response.body_iterator:
                pass
        await triton.close()
        return [info["chunks"] for info in infos], triton.kokoro_in_flight

    (first, second), left = asyncio.run(two_requests())
    assert first >= 2  # the model was idle: growing pieces, early first audio
    assert second == 1  # the first request's calls were already counted
    assert left == 0


@pytest.mark.parametrize(
    ("text", "limit", "blocks"),
    [
        ("One two. Three four.", 0, [("One two. Three four.", False)]),
        ("One two. Three four.", 20, [("One two. Three four.", False)]),
        ("One two.\nThree. Four five six.", 21, [("One two.\n", False), ("Three. Four five six.", False)]),
        ("One two. Three four. Five.", 22, [("One two. Three four. ", False), ("Five.", True)]),
        ("One two three four five", 12, [("One two ", False), ("three four ", True), ("five", True)]),
        ("x" * 25, 10, [("x" * 10, False), ("x" * 10, True), ("x" * 5, True)]),
        ("今日は晴れ。明日は雨。あさって", 8, [("今日は晴れ。", False), ("明日は雨。", True), ("あさって", True)]),
    ],
)
def test_split_blocks(text: str, limit: int, blocks: list[tuple[str, bool]]) -> None:
    """A long input's blocks for G2P: cut after a paragraph break, else a sentence end, else a space;
    `continues_paragraph` unless cut at a line break; nothing lost."""
    got = split_blocks(text, limit)
    assert [(b.text, b.continues_paragraph) for b in got] == blocks
    assert "".join(b.text for b in got) == text


def test_long_input_streams_after_its_first_blocks_g2p(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the first block's G2P is waited for; the others run one at a time while it is
    synthesised, and their chunks follow in order (each block here: one chunk of one word)."""
    g2p_calls: list[str] = []

    async def g2p(self: TritonClient, text: str, lang: str = "a") -> list[Chunk]:
        g2p_calls.append(text)
        await asyncio.sleep(0.05)
        return [Chunk(text, "wˈʌn", phoneme_words("wˈʌn"))]

    async def synthesize(self: TritonClient, job: object) -> Synthesized:
        await asyncio.sleep(0.01)
        return Synthesized(np.full(4 * FRAME_SAMPLES, 0.5, np.float32), np.array([1, 2, 1], np.int64))

    monkeypatch.setattr(TritonClient, "g2p", g2p)
    monkeypatch.setattr(TritonClient, "synthesize", synthesize)
    text = " ".join(f"Word{i}." for i in range(10))  # 10 blocks of at most 8 characters

    async def speak() -> tuple[int, bytes, dict[str, Any]]:
        triton = TritonClient("127.0.0.1:1", "127.0.0.1:1")
        service = SpeechService(Settings(g2p_block_chars=8), triton, VoiceCatalogue(None))
        info: dict[str, Any] = {}
        response = await service.speech(_req(input=text, response_format="pcm"), info)
        calls_when_answered = len(g2p_calls)
        body = b"".join([chunk async for chunk in response.body_iterator if isinstance(chunk, bytes)])
        await triton.close()
        return calls_when_answered, body, info

    calls_when_answered, body, info = asyncio.run(speak())
    assert calls_when_answered <= 2  # the first block's, and perhaps the second's started
    assert g2p_calls == [f"Word{i}. " for i in range(9)] + ["Word9."]
    assert info["chunks"] == 10
    assert len(body) == 10 * 4 * FRAME_SAMPLES * 2  # every chunk, in full (loud: nothing trimmed)


def test_the_chunk_before_a_pending_block_is_trimmed_as_its_join_says() -> None:
    """Before the next block's chunks are known, the last chunk's tail is trimmed as the block
    joins: `chunk` inside a paragraph, `paragraph` (nothing trimmed) after a line break."""
    wave = np.concatenate([np.zeros(5 * FRAME_SAMPLES), np.full(4 * FRAME_SAMPLES, 0.5), np.zeros(30 * FRAME_SAMPLES)])
    result = Synthesized(wave.astype(np.float32), np.array([5, 4, 30], np.int64))
    chunk = Chunk("a", "a")

    def trimmed_frames(rest: list[Block]) -> int:
        prep = Prepared(_req(), cast(Any, None), [chunk], [], ["paragraph"], rest)
        return len(prep.trim(0, result).waveform) // FRAME_SAMPLES

    assert trimmed_frames([Block("b", True)]) == 5 + 4 + KEEP_TAIL_FRAMES["chunk"]
    assert trimmed_frames([Block("b", False)]) == trimmed_frames([]) == 39


def test_halve_long_cuts_a_long_chunk_once_past_its_middle() -> None:
    ph = ", ".join(["wˈʌn tˈu θɹˈi"] * 20) + "."  # 20 clauses, 279 symbols
    words = phoneme_words(ph)
    first, second = halve_long(Chunk("text", ph, words))
    assert len(ph) // 2 <= len(first.phonemes) < len(ph) // 2 + 16
    assert f"{first.phonemes} {second.phonemes}" == ph
    assert [w.word for w in (*first.words, *second.words)] == [w.word for w in words]
    short = Chunk("text", ph[:150], phoneme_words(ph[:150]))
    assert halve_long(short) == [short]


def test_prepare_says_how_each_chunk_follows_the_one_before() -> None:
    """split_lead's pieces, then the chunks the 510-phoneme limit cut; trimmed where they meet."""
    service = SpeechService(Settings(), idle_triton(), VoiceCatalogue(None))  # phonemes: no G2P call
    phonemes = " ".join(["wˈʌn tˈu θɹˈi fˈɔɹ."] * 40)  # 760 symbols: two chunks of at most 510
    prep = asyncio.run(service.prepare(_req(input=phonemes, input_type="phonemes"), {}))
    pieces = len(prep.chunks) - 1  # the first chunk's pieces, then the second chunk
    assert pieces >= 3
    assert prep.joins == ["paragraph"] + ["piece"] * (pieces - 1) + ["chunk"]
    assert " ".join(c.phonemes for c in prep.chunks) == phonemes
    audio = _piece([13, 20, 10, 7, 1], silent_lead=8, quiet_lead=2, silent_tail=24)
    first, middle, last, second_chunk = (prep.trim(i, audio) for i in (0, 1, pieces - 1, pieces))
    assert first.durations[0] == 13 and silent_tail(first) == KEEP_TAIL_FRAMES["piece"]  # the request's start kept
    assert middle.durations[0] < 13 and silent_tail(middle) == KEEP_TAIL_FRAMES["piece"]
    assert last.durations[0] < 13 and silent_tail(last) == KEEP_TAIL_FRAMES["chunk"]  # the next chunk: a longer pause
    assert second_chunk.durations[0] < 13 and silent_tail(second_chunk) == 24  # the request's end kept


def test_parse_chunks_reads_whether_a_chunk_continues_its_paragraph() -> None:
    raw = json.dumps(
        [
            {"text": "A.", "phonemes": "ˈA.", "words": [{"word": "A", "start": 0, "end": 2}]},
            {"text": "B.", "phonemes": "bˈi.", "words": [], "continues_paragraph": True},
        ]
    )
    first, second = parse_chunks(raw)
    assert (first.continues_paragraph, second.continues_paragraph) == (False, True)
    assert first.words == (Word("A", 0, 2),)

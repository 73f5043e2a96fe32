"""The engine around the batched pass: seeds, request validation, voice blends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from kokoro import KModel

from pattern_tts.synthesis.batched import BatchedKokoro, BatchItem, similar_length_groups, token_ids
from pattern_tts.synthesis.engine import KokoroEngine, RequestError, SynthesisRequest, load_kmodel
from pattern_tts.weights.parity import snr_db


@pytest.fixture(scope="module")
def kmodel(tiny_weights_dir: Path) -> KModel:
    torch.set_num_threads(2)
    return load_kmodel(tiny_weights_dir)


def test_seed_changes_only_the_noise(kmodel: KModel, tiny_weights_dir: Path) -> None:
    voice = torch.load(tiny_weights_dir / "voices" / "af_sky.pt", weights_only=True)
    ids = token_ids(kmodel, "hˈɛlO wˈɜɹld")
    batched = BatchedKokoro(kmodel)
    a, b, c = batched([BatchItem(ids, voice[11, 0], seed=s) for s in (1, 1, 2)])
    # The same seed at another place in the batch: equal up to float32 rounding (bit-equal on some
    # CPUs; on AVX2-only ones the threads split the batch's rows differently, measured 120 dB).
    assert snr_db(a.audio, b.audio) >= 80
    assert torch.equal(a.durations, c.durations)
    assert snr_db(a.audio, c.audio) < 20  # another seed: another noise, audibly different audio


def test_an_item_decoded_in_a_batch_is_what_it_is_alone(tiny_weights_dir: Path) -> None:
    """The batched decoder (the GPU default) gives each item the audio it gets alone, to float rounding.
    Before the harmonic source was mixed item by item, rounding flipped phases in the first frame of
    its STFT between +pi and -pi, and some items came out at 29 to 45 dB."""
    engine = KokoroEngine(tiny_weights_dir, batch_decoder=True)
    requests = [
        SynthesisRequest("hˈI", "af_heart", seed=100),
        SynthesisRequest("ðə kwˈɪk bɹˈWn fˈɑks.", "am_adam", seed=101),
        SynthesisRequest("ɪt wʌz ðə bˈɛst ʌv tˈImz.", "af_sky", seed=104),
        SynthesisRequest("jˈɛs.", "af_nova", seed=106),
        SynthesisRequest("kˈɔl mˌi ˈɪʃmeɪl. sˌʌm jˈɪɹz əɡˈO, nˈɛvəɹ mˈIndhWlˈɔŋ pɹəsˈIsli.", "bm_george", seed=107),
    ]
    items = [engine.prepare(r) for r in requests]
    together = engine.synthesize(items)
    for item, batched in zip(items, together, strict=True):
        alone = engine.synthesize([item])[0]
        assert torch.equal(alone.durations, batched.durations)
        assert snr_db(alone.audio, batched.audio) >= 90


def test_engine_rejects_bad_requests_one_by_one(tiny_weights_dir: Path) -> None:
    engine = KokoroEngine(tiny_weights_dir)
    good = engine.prepare(SynthesisRequest("hˈɛlO", "af_heart"))
    assert good.input_ids.tolist()[0] == 0 and good.input_ids.tolist()[-1] == 0
    cases = {
        "unknown voice 'nobody'": SynthesisRequest("hˈɛlO", "nobody"),
        "phonemes are empty": SynthesisRequest("", "af_heart"),
        "more than the limit of 510": SynthesisRequest("a" * 511, "af_heart"),
        "speed must be between": SynthesisRequest("hˈɛlO", "af_heart", speed=9.0),
        "not in Kokoro's vocabulary": SynthesisRequest("hello#", "af_heart"),
        "weight of 'af_sky' must be a positive": SynthesisRequest("hˈɛlO", "af_heart+af_sky(-1)"),
    }
    for message, request in cases.items():
        with pytest.raises(RequestError, match=message):
            engine.prepare(request)


def test_voice_blend_is_the_weighted_mean(tiny_weights_dir: Path) -> None:
    engine = KokoroEngine(tiny_weights_dir)
    bella, sky = engine.voices.pack("af_bella"), engine.voices.pack("af_sky")
    blend = engine.voices.pack("af_bella(3)+af_sky(1)")
    assert torch.allclose(blend, 0.75 * bella + 0.25 * sky)


@pytest.mark.parametrize(
    "lengths",
    [[], [7], [10, 300, 11, 12, 290, 50], [100] * 5, [1, 2, 3, 4, 5, 6, 7, 8], [400, 20, 400, 21, 399]],
)
def test_similar_length_groups_cover_every_item_once_with_bounded_padding(lengths: list[int]) -> None:
    groups = similar_length_groups(lengths, max_padding=1.25, max_tokens=128)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    longest = [max(lengths[i] for i in g) for g in groups]
    assert longest == sorted(longest)  # shortest group first
    for group in groups:
        assert len(group) * max(lengths[i] for i in group) <= 1.25 * sum(lengths[i] for i in group)
        assert len(group) == 1 or max(lengths[i] for i in group) <= 128


def test_similar_lengths_share_a_batch_and_different_ones_do_not() -> None:
    assert similar_length_groups([100] * 5) == [[0, 1, 2, 3, 4]]
    assert similar_length_groups([10, 300, 11, 12, 290, 50, 55]) == [[0, 2, 3], [5, 6], [4], [1]]
    assert similar_length_groups([200] * 3, max_tokens=128) == [[0], [1], [2]]  # long ones alone


def test_per_item_decoder_runs_the_text_side_on_groups_of_similar_length(
    tiny_weights_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = KokoroEngine(tiny_weights_dir, batch_decoder=False)
    phonemes = ["hˈɛlO", "wˈɜɹld", "ðə kwˈɪk bɹˈWn fˈɑks ʤˈʌmps ˌOvəɹ ðə lˈAzi dˈɔɡ. " * 3, "hˈI"]
    items = [engine.prepare(SynthesisRequest(p, "af_heart", seed=i)) for i, p in enumerate(phonemes)]
    one_batch = engine.batched.encode_tokens(items)  # the text side as one padded batch

    batch_sizes: list[int] = []
    encode_tokens = engine.batched.encode_tokens

    def recording(batch: list[BatchItem]) -> object:
        batch_sizes.append(len(batch))
        return encode_tokens(batch)

    monkeypatch.setattr(engine.batched, "encode_tokens", recording)
    outputs = list(engine.synthesize_each(items))
    assert batch_sizes == [3, 1]  # the three short items together, the long one (146 tokens) alone
    assert outputs[-1][0] == 2  # and answered last
    for i, out in outputs:
        assert torch.equal(out.durations, one_batch.durations[i, : len(items[i].input_ids)])


def test_per_item_decoder_skips_items_no_longer_wanted(tiny_weights_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A request cancelled while its batch runs (its client went away) is not synthesised: the
    kokoro model asks before each item's text side and again before its decoder."""
    engine = KokoroEngine(tiny_weights_dir, batch_decoder=False)
    phonemes = ["hˈI", "hˈɛlO", "wˈɜɹld", "ðə kwˈɪk bɹˈWn fˈɑks ʤˈʌmps ˌOvəɹ ðə lˈAzi dˈɔɡ. " * 3]
    items = [engine.prepare(SynthesisRequest(p, "af_heart", seed=i)) for i, p in enumerate(phonemes)]
    decoded: list[int] = []
    decode = engine.batched.decode

    def counting(encoded: Any) -> Any:
        decoded.append(1)
        return decode(encoded)

    monkeypatch.setattr(engine.batched, "decode", counting)

    # Item 1 cancelled before the batch's text side: it is left out of its group.
    assert sorted(i for i, _ in engine.synthesize_each(items, wanted=lambda i: i != 1)) == [0, 2, 3]
    assert len(decoded) == 3

    # Everything cancelled once the first item is out (a client that left mid-batch).
    decoded.clear()
    yielded: list[int] = []
    for i, _ in engine.synthesize_each(items, wanted=lambda i: not yielded):
        yielded.append(i)
    assert len(yielded) == 1 and len(decoded) == 1


def test_batched_decoder_leaves_out_items_no_longer_wanted(
    tiny_weights_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the batched decoder (the GPU default) a request cancelled before its batch's text side is
    left out of it, and one cancelled during the text side leaves the batch before its decoder: the
    decoder's batch holds the items still wanted, padded to the longest of them, and their audio is
    what they get alone."""
    engine = KokoroEngine(tiny_weights_dir, batch_decoder=True)
    long = "ðə kwˈɪk bɹˈWn fˈɑks ʤˈʌmps ˌOvəɹ ðə lˈAzi dˈɔɡ. " * 3
    phonemes = ["hˈI", long, "hˈɛlO", "wˈɜɹld"]
    items = [engine.prepare(SynthesisRequest(p, "af_heart", seed=i)) for i, p in enumerate(phonemes)]
    text_side: list[int] = []
    decoded: list[tuple[int, int]] = []  # (batch size, padded frames) of each decoder call
    encode_tokens, decode = engine.batched.encode_tokens, engine.batched.decode

    def recording_text_side(batch: list[BatchItem]) -> Any:
        text_side.append(len(batch))
        return encode_tokens(batch)

    def recording_decoder(encoded: Any) -> Any:
        decoded.append(tuple(encoded.asr.shape[::2]))
        return decode(encoded)

    monkeypatch.setattr(engine.batched, "encode_tokens", recording_text_side)
    monkeypatch.setattr(engine.batched, "decode", recording_decoder)

    # Item 3 cancelled before the text side; the long item 1 while it runs (asked a second time).
    asked: list[int] = []

    def wanted(i: int) -> bool:
        asked.append(i)
        return i != 3 and not (i == 1 and asked.count(1) > 1)

    outputs = dict(engine.synthesize_each(items, wanted=wanted))
    assert sorted(outputs) == [0, 2]
    assert text_side == [3]
    frames = [int(out.durations.sum()) for out in outputs.values()]
    assert decoded == [(2, max(frames))]  # not padded to the long item that left
    for i, out in outputs.items():
        alone = engine.synthesize([items[i]])[0]
        assert torch.equal(alone.durations, out.durations)
        assert snr_db(alone.audio, out.audio) >= 90

    # Nobody left to answer: no text side and no decoder at all.
    text_side.clear()
    decoded.clear()
    assert list(engine.synthesize_each(items, wanted=lambda i: False)) == []
    assert text_side == [] and decoded == []

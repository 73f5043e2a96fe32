"""The engine around the batched pass: seeds, request validation, voice blends."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from kokoro import KModel

from pattern_tts.synthesis.batched import BatchedKokoro, BatchItem, token_ids
from pattern_tts.synthesis.engine import KokoroEngine, RequestError, SynthesisRequest, load_kmodel


@pytest.fixture(scope="module")
def kmodel(tiny_weights_dir: Path) -> KModel:
    torch.set_num_threads(2)
    return load_kmodel(tiny_weights_dir)


def test_seed_changes_only_the_noise(kmodel: KModel, tiny_weights_dir: Path) -> None:
    voice = torch.load(tiny_weights_dir / "voices" / "af_sky.pt", weights_only=True)
    ids = token_ids(kmodel, "hˈɛlO wˈɜɹld")
    batched = BatchedKokoro(kmodel)
    a, b, c = batched([BatchItem(ids, voice[11, 0], seed=s) for s in (1, 1, 2)])
    assert torch.equal(a.audio, b.audio)
    assert torch.equal(a.durations, c.durations)
    assert not torch.equal(a.audio, c.audio)


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

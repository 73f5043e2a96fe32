"""The batched forward pass gives every item what Kokoro's own batch-1 forward gives it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from kokoro import KModel

from pattern_tts.synthesis.batched import BatchedKokoro, BatchItem, token_ids
from pattern_tts.synthesis.engine import KokoroEngine, RequestError, SynthesisRequest

PARITY_SNR_DB = 40.0
# The parity check runs both sides in float64: it then measures the algorithm alone. In float32,
# Kokoro's own output moves by more than 40 dB between two FFT/convolution plans on the same input
# (the phase of near-silent STFT bins is ill-conditioned, and random weights amplify it), so a
# float32 comparison would measure rounding, not correctness. The float32 path is compared with
# batch-1 through Triton in test_triton_kokoro.py.


def snr_db(reference: torch.Tensor, other: torch.Tensor) -> float:
    error = (reference - other).pow(2).sum().clamp(min=1e-20)
    return float(10 * torch.log10(reference.pow(2).sum() / error))


def random_phonemes(model: KModel, length: int, generator: torch.Generator) -> str:
    symbols = [s for s in model.vocab if s.strip()]
    picks = torch.randint(0, len(symbols), (length,), generator=generator)
    return "".join(symbols[int(i)] for i in picks)


@pytest.fixture(scope="module")
def kmodel(tiny_weights_dir: Path) -> KModel:
    torch.set_num_threads(2)
    return KModel(
        repo_id="hexgrad/Kokoro-82M",
        config=str(tiny_weights_dir / "config.json"),
        model=str(tiny_weights_dir / "kokoro-v1_0.pth"),
    ).eval()


@pytest.fixture
def kmodel64(tiny_weights_dir: Path) -> Iterator[KModel]:
    """The tiny model in float64, with float64 as the default dtype (Kokoro makes float tensors
    with ``torch.zeros`` inside its forward pass)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield KModel(
            repo_id="hexgrad/Kokoro-82M",
            config=str(tiny_weights_dir / "config.json"),
            model=str(tiny_weights_dir / "kokoro-v1_0.pth"),
        ).eval()
    finally:
        torch.set_default_dtype(previous)


@pytest.mark.parametrize("batch_decoder", [True, False], ids=["batched-decoder", "per-item-decoder"])
def test_batch_matches_kokoro_batch1(kmodel64: KModel, tiny_weights_dir: Path, batch_decoder: bool) -> None:
    kmodel = kmodel64
    generator = torch.Generator().manual_seed(7)
    voice = torch.load(tiny_weights_dir / "voices" / "af_heart.pt", weights_only=True)
    items = []
    for i, length in enumerate([3, 40, 150, 400]):
        phonemes = random_phonemes(kmodel, length, generator)
        items.append(
            BatchItem(
                input_ids=token_ids(kmodel, phonemes),
                ref_s=voice[length - 1, 0].double(),
                speed=[1.0, 1.3, 0.8, 1.0][i],
                seed=1000 + i,
            )
        )

    outputs = BatchedKokoro(kmodel)(items, batch_decoder=batch_decoder)

    for item, out in zip(items, outputs, strict=True):
        torch.manual_seed(item.seed)  # Kokoro draws its noise from the global generator
        audio, durations = kmodel.forward_with_tokens(item.input_ids[None], item.ref_s[None], item.speed)
        assert torch.equal(out.durations, durations.reshape(-1)), len(item.input_ids)
        assert out.audio.shape == audio.shape
        assert snr_db(audio, out.audio) >= PARITY_SNR_DB, (len(item.input_ids), snr_db(audio, out.audio))


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


@pytest.mark.slow
def test_full_size_batch_matches_kokoro_batch1(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The same parity on the full-size architecture (random weights): `pytest -m slow`."""
    from pattern_tts.synthesis.random_weights import write_random_kokoro

    weights = write_random_kokoro(tmp_path_factory.mktemp("full-kokoro"), size="full")
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        model = KModel(
            repo_id="hexgrad/Kokoro-82M",
            config=str(weights / "config.json"),
            model=str(weights / "kokoro-v1_0.pth"),
        ).eval()
        generator = torch.Generator().manual_seed(3)
        voice = torch.load(weights / "voices" / "af_heart.pt", weights_only=True)
        items = [
            BatchItem(token_ids(model, random_phonemes(model, n, generator)), voice[n - 1, 0].double(), 1.0, n)
            for n in (3, 40, 150, 400)
        ]
        for item, out in zip(items, BatchedKokoro(model)(items, batch_decoder=True), strict=True):
            torch.manual_seed(item.seed)
            audio, durations = model.forward_with_tokens(item.input_ids[None], item.ref_s[None], item.speed)
            assert torch.equal(out.durations, durations.reshape(-1))
            assert snr_db(audio, out.audio) >= PARITY_SNR_DB
    finally:
        torch.set_default_dtype(previous)

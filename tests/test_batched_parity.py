"""The batched forward pass gives every item what Kokoro's own batch-1 forward gives it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from kokoro import KModel

from pattern_tts.synthesis.batched import BatchedKokoro, BatchItem, token_ids
from pattern_tts.synthesis.engine import load_kmodel
from tests.conftest import float64_default_dtype

PARITY_SNR_DB = 40.0
# CI runs this on the CPU; on a GPU machine, PATTERN_TTS_TEST_DEVICE=cuda runs the same checks there
# (Kokoro's batch-1 then draws its noise from the CUDA generator, and so does the batched pass).
DEVICE = torch.device(os.environ.get("PATTERN_TTS_TEST_DEVICE", "cpu"))
# The parity check runs both sides in float64: it then measures the algorithm alone. In float32,
# Kokoro's own output moves by more than 40 dB between two FFT/convolution plans on the same input.
# One cause, measured between a batch and an item alone: the first frame of the harmonic source's
# STFT is real in exact arithmetic, so rounding picks +pi or -pi as the phase of its negative bins,
# and random weights amplify the step (see BatchedKokoro._source). A float32
# comparison would measure rounding, not correctness. The float32 path is compared with batch-1 in
# test_engine.py and through Triton in test_triton_kokoro.py.


def snr_db(reference: torch.Tensor, other: torch.Tensor) -> float:
    error = (reference - other).pow(2).sum().clamp(min=1e-20)
    return float(10 * torch.log10(reference.pow(2).sum() / error))


def random_phonemes(model: KModel, length: int, generator: torch.Generator) -> str:
    symbols = [s for s in model.vocab if s.strip()]
    picks = torch.randint(0, len(symbols), (length,), generator=generator)
    return "".join(symbols[int(i)] for i in picks)


@pytest.fixture(scope="module")
def float64_default() -> Iterator[None]:
    with float64_default_dtype():
        yield


def random_items(
    model: KModel, weights: Path, lengths: tuple[int, ...], speeds: tuple[float, ...], seeds: tuple[int, ...], seed: int
) -> list[BatchItem]:
    """Items of random phonemes of the given lengths, with af_heart's style row for each length."""
    generator = torch.Generator().manual_seed(seed)
    voice = torch.load(weights / "voices" / "af_heart.pt", weights_only=True)
    return [
        BatchItem(
            input_ids=token_ids(model, random_phonemes(model, n, generator)).to(DEVICE),
            ref_s=voice[n - 1, 0].double().to(DEVICE),
            speed=speed,
            seed=item_seed,
        )
        for n, speed, item_seed in zip(lengths, speeds, seeds, strict=True)
    ]


@pytest.fixture(scope="module")
def kmodel64(tiny_weights_dir: Path, float64_default: None) -> KModel:
    return load_kmodel(tiny_weights_dir).to(DEVICE)  # in the current default dtype


@pytest.fixture(scope="module")
def parity_items(kmodel64: KModel, tiny_weights_dir: Path) -> list[BatchItem]:
    """Items of very different lengths (3 to 400 phonemes), speeds and seeds."""
    lengths = (3, 40, 150, 400)
    return random_items(
        kmodel64, tiny_weights_dir, lengths, (1.0, 1.3, 1.6, 2.0), tuple(1000 + n for n in lengths), seed=7
    )


@pytest.fixture(scope="module")
def batch1_outputs(kmodel64: KModel, parity_items: list[BatchItem]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Kokoro's own ``forward_with_tokens``, one item at a time, with each item's noise."""
    outputs = []
    for item in parity_items:
        torch.manual_seed(item.seed)  # Kokoro draws its noise from the global generator
        audio, durations = kmodel64.forward_with_tokens(item.input_ids[None], item.ref_s[None], item.speed)
        outputs.append((audio.cpu(), durations.reshape(-1).cpu()))
    return outputs


@pytest.mark.parametrize("batch_decoder", [True, False], ids=["batched-decoder", "per-item-decoder"])
def test_batch_matches_kokoro_batch1(
    kmodel64: KModel,
    parity_items: list[BatchItem],
    batch1_outputs: list[tuple[torch.Tensor, torch.Tensor]],
    batch_decoder: bool,
) -> None:
    # The per-item decoder is the same code on batches of one: the three shorter items cover it.
    items = parity_items if batch_decoder else parity_items[:3]
    outputs = BatchedKokoro(kmodel64)(items, batch_decoder=batch_decoder)
    for item, out, (audio, durations) in zip(items, outputs, batch1_outputs, strict=False):
        out_audio = out.audio.cpu()
        assert torch.equal(out.durations.cpu(), durations), len(item.input_ids)
        assert out_audio.shape == audio.shape
        assert snr_db(audio, out_audio) >= PARITY_SNR_DB, (len(item.input_ids), snr_db(audio, out_audio))


@pytest.mark.slow
@pytest.mark.timeout(1800)  # 631 s on an AVX2-only 2-core CPU, over the suite's 600 s
def test_full_size_batch_matches_kokoro_batch1(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The same parity on the full-size architecture (random weights): `pytest -m slow`."""
    from pattern_tts.synthesis.random_weights import write_random_kokoro

    weights = write_random_kokoro(tmp_path_factory.mktemp("full-kokoro"), size="full")
    with float64_default_dtype():
        model = load_kmodel(weights).to(DEVICE)
        lengths = (3, 40, 150, 400)
        items = random_items(model, weights, lengths, (1.0,) * 4, lengths, seed=3)
        for item, out in zip(items, BatchedKokoro(model)(items, batch_decoder=True), strict=True):
            torch.manual_seed(item.seed)
            audio, durations = model.forward_with_tokens(item.input_ids[None], item.ref_s[None], item.speed)
            assert torch.equal(out.durations.cpu(), durations.reshape(-1).cpu())
            assert snr_db(audio.cpu(), out.audio.cpu()) >= PARITY_SNR_DB

"""The fast path (fused/compiled element-wise chains, reduced precision) keeps the audio.

Fast tests use the tiny model and compile only the small fused functions; the whole engine with
compilation is ``slow`` (its warm-up compiles several graphs: minutes on 2 cores).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from pattern_tts.synthesis.batched import BatchedKokoro, BatchItem, token_ids
from pattern_tts.synthesis.engine import KokoroEngine, SynthesisRequest, load_kmodel
from pattern_tts.synthesis.fastpath import autocast_dtype, configure_compile_cache, cpu_has_fast_bf16
from pattern_tts.synthesis.fused import Fused, adain, adain_snake, masked_add
from tests.conftest import float64_default_dtype

FIDELITY_SNR_DB = 25.0
PHONEMES = ("hˈɛlO wˈɜɹld.", "ðə kwˈɪk bɹˈWn fˈɑks ʤˈʌmps ˈOvəɹ ðə lˈAzi dˈɔɡ.")


def snr_db(reference: torch.Tensor, other: torch.Tensor) -> float:
    error = (reference.double() - other.double()).pow(2).sum().clamp(min=1e-20)
    return float(10 * torch.log10(reference.double().pow(2).sum() / error))


def reference_adain_snake(x, mask, weight, bias, gamma, beta, eps, alpha):  # type: ignore[no-untyped-def]
    """The straightforward formulation the fused one replaces."""
    count = mask.sum(dim=-1, keepdim=True).clamp(min=1)
    mean = (x * mask).sum(dim=-1, keepdim=True) / count
    centered = (x - mean) * mask
    var = (centered * centered).sum(dim=-1, keepdim=True) / count
    y = centered * torch.rsqrt(var + eps) * weight[None, :, None] + bias[None, :, None]
    y = ((1 + gamma) * y + beta) * mask
    return y + (1 / alpha) * torch.sin(alpha * y) ** 2


def inputs(batch: int, channels: int, length: int, dtype: torch.dtype = torch.float64) -> tuple:
    g = torch.Generator().manual_seed(batch * 1000 + length)
    lengths = torch.randint(length // 2, length + 1, (batch,), generator=g)
    lengths[0] = length
    mask = (torch.arange(length)[None, :] < lengths[:, None]).unsqueeze(1).to(dtype)
    x = torch.randn(batch, channels, length, generator=g, dtype=dtype) * 3 + 1
    weight, bias = torch.randn(channels, generator=g, dtype=dtype), torch.randn(channels, generator=g, dtype=dtype)
    gamma = torch.randn(batch, channels, 1, generator=g, dtype=dtype) * 0.1
    beta = torch.randn(batch, channels, 1, generator=g, dtype=dtype) * 0.1
    alpha = torch.rand(1, channels, 1, generator=g, dtype=dtype) + 0.5
    return x, mask, weight, bias, gamma, beta, 1e-5, alpha


def test_fused_functions_match_the_reference() -> None:
    x, mask, weight, bias, gamma, beta, eps, alpha = inputs(3, 8, 50)
    expected = reference_adain_snake(x, mask, weight, bias, gamma, beta, eps, alpha)
    torch.testing.assert_close(adain_snake(x, mask, weight, bias, gamma, beta, eps, alpha), expected)
    out = adain(x, mask, weight, bias, gamma, beta, eps)
    assert torch.all(out * (1 - mask) == 0), "padded frames must be zero"


def test_compiled_functions_handle_new_sizes_without_recompiling() -> None:
    torch._dynamo.reset()
    fused = Fused(compile=True)
    counter = torch._dynamo.utils.counters
    counter.clear()
    for batch, channels, length in ((2, 16, 40), (3, 16, 97), (2, 8, 61), (4, 8, 30)):
        args = inputs(batch, channels, length, torch.float32)
        torch.testing.assert_close(fused.adain_snake(*args), adain_snake(*args), rtol=1e-4, atol=1e-4)
    frames = counter["stats"]["unique_graphs"]
    assert frames <= 2, f"{frames} graphs compiled for 4 sizes (dynamic shapes expected)"


def test_generator_steps_fused_in_one_pass_give_the_same_bits() -> None:
    """The fused residual add and cast to the convolution's dtype change no bit."""
    x, mask, weight, bias, gamma, beta, eps, alpha = inputs(2, 8, 64, torch.float32)
    y = torch.randn_like(x).to(torch.bfloat16)  # a convolution's output under autocast
    assert torch.equal(masked_add(x, y, mask), x + y * mask)

    snake = adain_snake(x, mask, weight, bias, gamma, beta, eps, alpha, torch.bfloat16)
    assert snake.dtype == torch.bfloat16
    assert torch.equal(snake, adain_snake(x, mask, weight, bias, gamma, beta, eps, alpha).to(torch.bfloat16))
    # Autocast casts a float32 input to the same bits before the convolution: same output.
    conv = torch.nn.Conv1d(8, 8, 3, padding=1).to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(conv(snake), conv(adain_snake(x, mask, weight, bias, gamma, beta, eps, alpha)))

    torch._dynamo.reset()
    fused = Fused(compile=True)
    torch.testing.assert_close(fused.masked_add(x, y, mask), masked_add(x, y, mask), rtol=0, atol=0)
    compiled = fused.adain_snake(x, mask, weight, bias, gamma, beta, eps, alpha, torch.bfloat16)
    assert compiled.dtype == torch.bfloat16
    torch.testing.assert_close(compiled.float(), snake.float(), rtol=1e-2, atol=1e-2)


def test_autocast_dtype_choice() -> None:
    cpu = torch.device("cpu")
    assert autocast_dtype("fp32", cpu) is None
    assert autocast_dtype("bf16", cpu) is torch.bfloat16
    assert autocast_dtype("auto", cpu) is (torch.bfloat16 if cpu_has_fast_bf16() else None)


def test_compile_cache_goes_to_the_configured_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.delenv("TRITON_CACHE_DIR", raising=False)
    monkeypatch.delenv("TORCHINDUCTOR_COMPILE_THREADS", raising=False)
    configure_compile_cache(tmp_path / "compile")
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "compile" / "inductor")
    assert (tmp_path / "compile").is_dir()


def _synthesize(engine: KokoroEngine) -> list:
    items = [engine.prepare(SynthesisRequest(p, "af_heart", seed=i)) for i, p in enumerate(PHONEMES)]
    return engine.synthesize(items)


@pytest.fixture(scope="module")
def eager_outputs(tiny_weights_dir: Path) -> list:
    torch.set_num_threads(2)
    return _synthesize(KokoroEngine(tiny_weights_dir))


def test_bf16_keeps_durations_and_audio(tiny_weights_dir: Path, eager_outputs: list) -> None:
    fast = _synthesize(KokoroEngine(tiny_weights_dir, precision="bf16"))
    for ref, out in zip(eager_outputs, fast, strict=True):
        assert torch.equal(ref.durations, out.durations)
        assert snr_db(ref.audio, out.audio) >= FIDELITY_SNR_DB


def test_time_major_resblocks_keep_the_audio(tiny_weights_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On CPU the generator's resblock convolutions run on time-major (channels-last) memory; only the
    order of their sums changes. Checked in float64 (exact but for that order), on the model as loaded
    (weight norm as shipped, so the convolutions' weights come from their hooks), from the first call."""
    with float64_default_dtype():
        model = load_kmodel(tiny_weights_dir)
        voice = torch.load(tiny_weights_dir / "voices" / "af_heart.pt", weights_only=True).double()
        items = [BatchItem(token_ids(model, p), voice[len(p), 0], seed=i) for i, p in enumerate(PHONEMES)]
        time_major = BatchedKokoro(model)
        assert time_major.time_major
        layouts: list[bool] = []
        conv = time_major._conv

        def recording_conv(c: torch.nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
            layouts.append(x.stride(1) == 1)
            return conv(c, x)

        monkeypatch.setattr(time_major, "_conv", recording_conv)
        first = time_major(items, batch_decoder=False)
        assert layouts and all(layouts), "every resblock convolution should get time-major input"
        channels_first = BatchedKokoro(model)
        channels_first.time_major = False
        for a, b in zip(first, channels_first(items, batch_decoder=False), strict=True):
            assert torch.equal(a.durations, b.durations)
            assert snr_db(b.audio, a.audio) >= 100


def test_spectral_resblock_convs_keep_the_audio(tiny_weights_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``spectral_convs`` the resblock convolutions of 7 taps or more (the tiny model's noise
    resblocks: 7 and 11) run in the frequency domain, the 3-tap ones on oneDNN; the audio is the same but
    for rounding. Checked in float64 on the model as loaded (weight norm as shipped, so the convolutions'
    weights come from their hooks)."""
    from pattern_tts.synthesis import batched as batched_module

    kernels: list[int] = []
    spectral = batched_module.spectral_conv1d

    def recording(x: torch.Tensor, weight: torch.Tensor, *args: object) -> torch.Tensor:
        kernels.append(weight.shape[-1])
        return spectral(x, weight, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(batched_module, "spectral_conv1d", recording)
    with float64_default_dtype():
        model = load_kmodel(tiny_weights_dir)
        voice = torch.load(tiny_weights_dir / "voices" / "af_heart.pt", weights_only=True).double()
        items = [BatchItem(token_ids(model, p), voice[len(p), 0], seed=i) for i, p in enumerate(PHONEMES)]
        direct = BatchedKokoro(model)(items, batch_decoder=False)
        assert not kernels, "off by default"
        out = BatchedKokoro(model, spectral_convs=True)(items, batch_decoder=False)
    assert sorted(set(kernels)) == [7, 11]
    for a, b in zip(direct, out, strict=True):
        assert torch.equal(a.durations, b.durations)
        assert snr_db(a.audio, b.audio) >= 150


def test_engine_runs_spectral_convs_on_cpu_in_float32_only(tiny_weights_dir: Path) -> None:
    assert not KokoroEngine(tiny_weights_dir).batched.spectral_convs  # the plain float32 path
    auto = KokoroEngine(tiny_weights_dir, spectral_convs=None)
    assert auto.batched.spectral_convs
    reduced = KokoroEngine(tiny_weights_dir, precision="bf16", spectral_convs=None)
    assert not reduced.batched.spectral_convs
    # Forced on under autocast, the convolutions still stay on oneDNN: the DFTs would round in bfloat16.
    forced = KokoroEngine(tiny_weights_dir, precision="bf16", spectral_convs=True)
    conv = forced.model.decoder.generator.noise_res[0].convs1[0]
    assert not forced.batched._spectral(conv, torch.zeros(1, conv.in_channels, 10, dtype=torch.bfloat16))
    # In float32 the fast path's audio stays within rounding of the plain path's.
    for plain, fast in zip(_synthesize(KokoroEngine(tiny_weights_dir)), _synthesize(auto), strict=True):
        assert torch.equal(plain.durations, fast.durations)
        assert snr_db(plain.audio, fast.audio) >= 60


def test_engine_as_served_takes_every_fast_path_choice_on_auto(
    tiny_weights_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch._inductor.config as inductor_config

    # Compile settings it sets for the process go back after the test (nothing compiles here).
    monkeypatch.setenv("TORCHINDUCTOR_COMPILE_THREADS", "2")
    monkeypatch.setattr(inductor_config, "compile_threads", inductor_config.compile_threads)
    engine = KokoroEngine.as_served(tiny_weights_dir)
    assert engine.compile
    assert engine.autocast_dtype == autocast_dtype("auto", torch.device("cpu"))
    assert engine.batched.spectral_convs == (engine.autocast_dtype is None)
    assert not engine.batch_decoder  # per-item decoder on CPU


def test_reduced_precision_engine_stores_decoder_convs_in_it_with_the_same_audio(
    tiny_weights_dir: Path,
) -> None:
    engine = KokoroEngine(tiny_weights_dir, precision="bf16")
    decoder = engine.model.decoder
    convs = [m for m in decoder.modules() if isinstance(m, torch.nn.Conv1d | torch.nn.ConvTranspose1d)]
    stored = {m.weight.dtype for m in convs if m is not decoder.generator.conv_post}
    assert stored == {torch.bfloat16}
    assert decoder.generator.conv_post.weight.dtype == torch.float32  # phase stays full precision
    assert all(m.weight.dtype == torch.float32 for m in decoder.modules() if isinstance(m, torch.nn.Linear))
    # The same model with float32 weights under the same autocast: autocast casts per call what
    # the engine stored once, so the audio is identical.
    float_weights = KokoroEngine(tiny_weights_dir)
    float_weights.batched = BatchedKokoro(float_weights.model, autocast_dtype=torch.bfloat16)
    for ref, out in zip(_synthesize(float_weights), _synthesize(engine), strict=True):
        assert torch.equal(ref.durations, out.durations)
        assert torch.equal(ref.audio, out.audio)


@pytest.mark.slow
def test_compiled_engine_keeps_durations_and_audio(
    tiny_weights_dir: Path, eager_outputs: list, tmp_path: Path
) -> None:
    engine = KokoroEngine(tiny_weights_dir, compile=True, precision="auto", compile_cache_dir=tmp_path)
    engine.warmup()
    for ref, out in zip(eager_outputs, _synthesize(engine), strict=True):
        assert torch.equal(ref.durations, out.durations)
        assert snr_db(ref.audio, out.audio) >= FIDELITY_SNR_DB

"""The generator's long resblock convolutions in the frequency domain: the same result as conv1d."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pattern_tts.synthesis import spectral_conv
from pattern_tts.synthesis.spectral_conv import spectral_conv1d


def time_major(x: torch.Tensor) -> torch.Tensor:
    return x.transpose(1, 2).contiguous().transpose(1, 2)


def case(
    batch: int, in_channels: int, out_channels: int, kernel: int, length: int, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(batch * 10_000 + kernel * 1_000 + length)
    x = torch.randn(batch, in_channels, length, generator=g, dtype=dtype)
    weight = torch.randn(out_channels, in_channels, kernel, generator=g, dtype=dtype) / (in_channels * kernel) ** 0.5
    bias = torch.randn(out_channels, generator=g, dtype=dtype)
    return x, weight, bias


@pytest.mark.parametrize(
    ("batch", "in_channels", "out_channels", "kernel", "dilation", "length"),
    [
        (1, 8, 8, 11, 5, 1000),  # the last stage's dilated kernel, many blocks
        (1, 8, 8, 7, 1, 58),  # exactly one block of valid outputs
        (3, 6, 5, 11, 3, 257),  # a batch, channels in != out, a length no block size divides
        (2, 4, 4, 7, 5, 1),  # one frame: every tap but the middle one reads padding
        (1, 4, 4, 3, 1, 53),  # short kernels work too (BatchedKokoro keeps them on oneDNN)
        (1, 4, 4, 11, 1, 5),  # shorter than the kernel
    ],
)
def test_equals_conv1d_in_float64(
    batch: int, in_channels: int, out_channels: int, kernel: int, dilation: int, length: int
) -> None:
    x, weight, bias = case(batch, in_channels, out_channels, kernel, length, torch.float64)
    expected = F.conv1d(x, weight, bias, padding=dilation * (kernel - 1) // 2, dilation=dilation)
    out = spectral_conv1d(time_major(x), weight, bias, dilation)
    assert out.shape == expected.shape
    assert out.transpose(1, 2).is_contiguous(), "answers a contiguous time-major tensor"
    torch.testing.assert_close(out, expected, rtol=1e-9, atol=1e-9)


def test_slices_of_blocks_and_no_bias_give_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    x, weight, _ = case(2, 4, 4, 11, 700, torch.float64)
    expected = F.conv1d(x, weight, None, padding=15, dilation=3)
    monkeypatch.setattr(spectral_conv, "SLICE_BYTES", 1)  # one block per slice
    torch.testing.assert_close(spectral_conv1d(time_major(x), weight, None, 3), expected, rtol=1e-9, atol=1e-9)


def test_float32_error_is_rounding_only() -> None:
    x, weight, bias = case(1, 32, 32, 11, 4000, torch.float32)
    expected = F.conv1d(x.double(), weight.double(), bias.double(), padding=25, dilation=5)
    out = spectral_conv1d(time_major(x), weight, bias, 5).double()
    assert ((out - expected).norm() / expected.norm()).item() < 1e-5


@pytest.mark.parametrize(("kernel", "block"), [(4, 64), (33, 64), (11, 16)])
def test_rejects_even_kernels_and_kernels_too_long_for_the_block(kernel: int, block: int) -> None:
    x, weight, bias = case(1, 2, 2, kernel, 100, torch.float32)
    with pytest.raises(ValueError, match="odd kernels"):
        spectral_conv1d(time_major(x), weight, bias, 1, block)

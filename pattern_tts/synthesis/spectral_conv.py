"""A stride-1 1-D convolution computed in the frequency domain: fewer multiplications for long kernels.

The generator's resblock convolutions (kernels 3, 7 and 11, dilations 1, 3 and 5) are most of the
kokoro model's time on CPU, and oneDNN already runs them near the CPU's float32 matrix-product rate
(``python -m bench.profile``). What is left is doing fewer multiplications. A convolution with a
k-tap kernel costs ``2 k C_in`` multiply-adds per output value; the same convolution by blocks in
the frequency domain (overlap-save) costs one complex ``C_in x C_out`` product per frequency bin,
about ``4 (M / 2 + 1) / (M - k + 1)`` per output value and input channel for blocks of ``M`` samples:
for k = 11 and M = 64 that is 4.9 against 22, plus the transforms.

Every step is a matrix product, so it runs at the same rate as the convolution it replaces:

1. a dilated convolution is ``dilation`` undilated ones, one per phase of the input
   (``x[j::dilation]``), so the kernel's taps are always adjacent;
2. each phase is cut into overlapping blocks of ``M`` samples, ``M - k + 1`` apart;
3. the blocks' real DFT is one matrix product with a ``[M + 2, M]`` cosine/sine matrix;
4. each frequency bin mixes channels with the kernel's spectrum (computed from the weight in the
   same way, on every call: it would cost more memory than the weights themselves to keep);
5. an inverse DFT matrix product keeps each block's ``M - k + 1`` valid outputs (overlap-save).

The result equals ``conv1d`` up to float32 rounding (relative error about 1e-6). It takes and returns
time-major tensors ([B, C, T] with strides (T*C, 1, C)), the layout the resblocks keep on CPU, and works
on the blocks in slices so that its temporary tensors stay small for long items.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

BLOCK = 64  # samples per block (M): 32 and 64 measured alike, 64 ahead for 128 channels at 11 taps
SLICE_BYTES = 8 << 20  # the blocks of one slice: bounds the temporary tensors (8 and 16 MB ran alike)


@lru_cache(maxsize=8)
def dft_matrices(block: int, valid: int, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """The real DFT of ``block`` samples as a [2 bins, block] matrix (cosine rows, then minus-sine
    rows; bins = block / 2 + 1), and the inverse for the first ``valid`` samples as [valid, 2 bins]."""
    bins = block // 2 + 1
    freq = torch.arange(bins, dtype=torch.float64)
    angle = 2 * math.pi * freq[:, None] * torch.arange(block, dtype=torch.float64)[None, :] / block
    forward = torch.cat([torch.cos(angle), -torch.sin(angle)])
    weight = torch.full((bins,), 2.0, dtype=torch.float64)  # each bin stands for itself and its mirror,
    weight[0] = weight[-1] = 1.0  # except DC and Nyquist
    angle = 2 * math.pi * torch.arange(valid, dtype=torch.float64)[:, None] * freq[None, :] / block
    inverse = torch.cat([weight * torch.cos(angle), -weight * torch.sin(angle)], dim=1) / block
    return forward.to(device, dtype), inverse.to(device, dtype)


def spectral_conv1d(
    x: Tensor, weight: Tensor, bias: Tensor | None, dilation: int = 1, block: int = BLOCK
) -> Tensor:
    """``F.conv1d(x, weight, bias, padding=dilation * (k - 1) // 2, dilation=dilation)`` ("same"
    length, odd k) for time-major ``x`` [B, C_in, T] in float32 or float64; answers time-major
    [B, C_out, T]."""
    batch, channels, length = x.shape
    out_channels, _, kernel = weight.shape
    if kernel % 2 == 0 or block < 2 * kernel:
        raise ValueError(f"spectral_conv1d takes odd kernels up to block / 2 = {block // 2} taps, not {kernel}")
    valid = block - kernel + 1  # outputs per block
    bins = block // 2 + 1
    forward, inverse = dft_matrices(block, valid, x.device, x.dtype)

    # The kernel's spectrum, conjugated (conv1d correlates): [2, bins, C_in, C_out], real and imaginary.
    taps = weight.permute(2, 1, 0).reshape(kernel, channels * out_channels)
    spectrum = (forward[:, :kernel] @ taps).view(2, bins, channels, out_channels)
    real, minus_imag = spectrum[0], spectrum[1]  # forward's second half is minus-sine: conj for free

    # Each phase of the dilated input is cut into blocks that overlap by k - 1 samples (overlap-save);
    # a block's valid outputs cover `span` frames of the output, every phase interleaved.
    per_phase = -(-length // dilation)
    blocks = -(-per_phase // valid)
    span = valid * dilation
    pad = (kernel - 1) // 2 * dilation  # conv1d's own zero padding, on each side
    frames = x.transpose(1, 2)  # [B, T, C]
    out = x.new_empty(batch, length, out_channels)
    step = max(1, SLICE_BYTES // (x.element_size() * block * batch * dilation * channels))
    for start in range(0, blocks, step):
        stop = min(blocks, start + step)
        n = batch * dilation * (stop - start)
        # The input frames these blocks read, zero-padded where they fall outside x.
        lo, hi = start * span - pad, (stop * valid + kernel - 1) * dilation - pad
        piece = F.pad(frames[:, max(lo, 0) : min(hi, length)], (0, 0, max(0, -lo), max(0, hi - length))).contiguous()
        windows = piece.as_strided(  # [block, B, phase, block index, C]
            (block, batch, dilation, stop - start, channels),
            (dilation * channels, piece.stride(0), channels, span * channels, 1),
        )
        # Each temporary is dropped as soon as the next step has read it, so that a slice holds at most
        # two of them at a time (the longest items' convolutions are the kokoro process's peak memory).
        spec = (forward @ windows.reshape(block, -1)).view(2, bins, n, channels)
        del piece, windows
        mixed = x.new_empty(2, bins, n, out_channels)
        # (a + ib)(c + ie) with spectrum = (c, -e): real ac - be, imaginary ae + bc.
        torch.bmm(spec[0], real, out=mixed[0]).baddbmm_(spec[1], minus_imag)
        torch.bmm(spec[0], minus_imag, out=mixed[1]).baddbmm_(spec[1], real, beta=-1)
        del spec
        if bias is not None:
            mixed[0, 0] += bias * block  # a constant added to every sample is DC only
        samples = (inverse @ mixed.view(2 * bins, n * out_channels)).view(valid, batch, dilation, -1, out_channels)
        del mixed
        samples = samples.permute(1, 3, 0, 2, 4)  # [B, block index, valid, phase, C_out]: time order
        # Blocks whose outputs all fall inside x's length, then at most one that runs past its end.
        first = start * span
        whole = min(stop - start, (length - first) // span)
        out[:, first : first + whole * span].view(batch, whole, valid, dilation, out_channels).copy_(samples[:, :whole])
        if whole < stop - start:
            tail = out[:, first + whole * span :]
            tail.copy_(samples[:, whole].reshape(batch, -1, out_channels)[:, : tail.shape[1]])
        del samples
    return out.transpose(1, 2)


__all__ = ["BLOCK", "spectral_conv1d"]

"""The decoder's element-wise chains as plain tensor functions: masked AdaIN, AdaIN + Snake, and the
generator's masked residual add.

They take tensors only (no modules), so one ``torch.compile`` of each serves every block of the
decoder and generator, whatever its channel count, batch size or length (dynamic shapes): a few
small graphs that compile in seconds, instead of one large graph of the whole decoder that took
minutes. Eager, they already make fewer passes over memory than the straightforward formulation.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def adain(
    x: Tensor, mask: Tensor, weight: Tensor, bias: Tensor, gamma: Tensor, beta: Tensor, eps: float
) -> Tensor:
    """Masked AdaIN: instance norm over each item's valid frames, affine, then style.

    x [B, C, T], mask [B, 1, T] (1 inside the item), weight/bias [C], gamma/beta [B, C, 1].
    Padded frames of the output are zero.
    """
    count = mask.sum(dim=-1, keepdim=True).clamp(min=1)
    mean = (x * mask).sum(dim=-1, keepdim=True) / count
    centered = (x - mean) * mask
    var = (centered * centered).sum(dim=-1, keepdim=True) / count
    scale = (1 + gamma) * weight[None, :, None] * torch.rsqrt(var + eps)
    shift = ((1 + gamma) * bias[None, :, None] + beta) * mask
    return centered * scale + shift


def adain_snake(
    x: Tensor,
    mask: Tensor,
    weight: Tensor,
    bias: Tensor,
    gamma: Tensor,
    beta: Tensor,
    eps: float,
    alpha: Tensor,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Masked AdaIN followed by the Snake activation ``y + sin(alpha y)^2 / alpha``, cast to ``dtype``
    when given: the next convolution's autocast dtype, so that its input is not cast in a pass of its own
    (the same rounding, so the same bits)."""
    y = adain(x, mask, weight, bias, gamma, beta, eps)
    y = y + torch.sin(alpha * y) ** 2 / alpha
    return y if dtype is None else y.to(dtype)


def masked_add(x: Tensor, y: Tensor, mask: Tensor) -> Tensor:
    """``x + y * mask`` in one pass: a residual add that keeps padded frames of ``y`` out."""
    return x + y * mask


class Fused:
    """The element-wise functions, eager or compiled (Inductor, dynamic shapes)."""

    def __init__(self, compile: bool = False) -> None:
        self.compiled = compile
        wrap: Callable[[Callable[..., Tensor]], Callable[..., Tensor]] = (
            (lambda fn: torch.compile(fn, dynamic=True, fullgraph=True)) if compile else (lambda fn: fn)
        )
        self.adain = wrap(adain)
        self.adain_snake = wrap(adain_snake)
        self.masked_add = wrap(masked_add)


__all__ = ["Fused", "adain", "adain_snake", "masked_add"]

"""bench.int8_convs' fake quantisation: int8 rounding with one scale per slice."""

from __future__ import annotations

import torch

from bench.int8_convs import fake_int8


def test_fake_int8_rounds_within_half_a_step_of_each_slice() -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 4, 100) * torch.tensor([1.0, 10.0, 100.0, 0.0])[None, :, None]
    per_channel = fake_int8(x, (0, 2))
    steps = x.abs().amax(dim=(0, 2), keepdim=True).clamp(min=1e-12) / 127
    assert torch.all((per_channel - x).abs() <= steps / 2 + 1e-6)
    assert torch.equal(per_channel[:, 3], x[:, 3])  # an all-zero slice stays zero, no NaN
    assert len(torch.unique(per_channel[:, 0] / steps[:, 0])) <= 255
    per_tensor = fake_int8(x, (0, 1, 2))
    assert (per_tensor[:, 0] - x[:, 0]).abs().max() > (per_channel[:, 0] - x[:, 0]).abs().max()

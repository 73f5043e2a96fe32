"""The GPU benchmark's pure parts: fidelity figures, similar-length groups and the report section."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from bench.gpu import fidelity, gpu_groups
from bench.report import gpu_markdown


def test_fidelity_reports_median_worst_and_lengths() -> None:
    torch.manual_seed(0)
    reference = [torch.randn(2400), torch.randn(4800), torch.randn(1200)]
    audio = [reference[0].clone(), reference[1] + 0.01 * torch.randn(4800), reference[2][:600]]
    figures = fidelity(reference, audio)
    assert figures["snr_db_min"] < 50 < figures["snr_db_median"]  # noise at -40 dB; identical is ~200 dB
    assert figures["same_length"] == "2/3"


def test_gpu_groups_keep_short_and_long_items_apart() -> None:
    items: Any = [SimpleNamespace(input_ids=[0] * n) for n in (14, 400, 20, 410)]
    assert gpu_groups(items) == [[0, 2], [1, 3]]


def row(decoder: str, batch: int, **extra: Any) -> dict[str, Any]:
    return {"variant": "compiled-bf16", "decoder": decoder, "batch": batch, "audio_s_per_s": 100.0 * batch,
            "ms_per_batch": 50.0, "peak_gib": 1.0, **extra}  # fmt: skip


def run(date: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"date": date, "device": "GPU", "torch": "2", "weights_kind": "random", "items": 8,
            "phonemes_per_item": {"min": 14, "max": 413}, "rows": rows}  # fmt: skip


def test_gpu_section_lists_every_run_newest_first_with_fidelity_where_measured(tmp_path: Path) -> None:
    old = run("2026-01-01", [row("batched", 1), row("per-item", 4)])
    snr = {"snr_db_median": 40.0, "snr_db_min": 37.2, "same_length": "8/8"}
    new = run("2026-02-01", [row("batched", 1, **snr), row("grouped", 4, **snr)])
    (tmp_path / "gpu-2026-01-01.json").write_text(json.dumps(old))
    (tmp_path / "gpu-2026-02-01.json").write_text(json.dumps(new))
    (tmp_path / "gpu-triton-2026-02-01.json").write_text("{}")  # another benchmark's results
    section = gpu_markdown(tmp_path)
    assert section.index("2026-02-01") < section.index("2026-01-01")
    newest, oldest = section.split("## GPU", 2)[1:]
    assert "SNR dB, median" in newest
    assert "| compiled-bf16 | grouped | 4 | 400 | 4.00x | 50 | 1 | 40 | 37.2 | 8/8 |" in newest
    assert "similar length" in newest and "per-item" not in newest
    assert "SNR" not in oldest and "one item at a time" in oldest

"""Fast-path choices per device: reduced precision (autocast dtype) and ``torch.compile`` setup.

* Precision ``auto``: bfloat16 on CPUs with AVX-512 BF16 or AMX (detected at run time, never
  assumed), float32 on other CPUs; on CUDA bfloat16 where supported, else float16.
* Compile: TorchInductor fuses the generator's element-wise chains (Snake, AdaIN, residual adds).
  Its caches go to a writable directory (``TORCHINDUCTOR_CACHE_DIR``; read-only root in production).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import torch

from pattern_tts.cpu import cpu_flags, cpu_quota

Precision = Literal["auto", "fp32", "bf16", "fp16"]
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_fast_bf16() -> bool:
    """True on CPUs with native bfloat16 arithmetic (AVX-512 BF16 or AMX)."""
    return any(flag in cpu_flags() for flag in BF16_CPU_FLAGS)


def autocast_dtype(precision: Precision, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``; None means plain float32."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_has_fast_bf16() else None


def configure_compile_cache(cache_dir: Path | None) -> None:
    """Point Inductor's (and Triton-the-compiler's) caches into ``cache_dir``, unless set already,
    and size Inductor's compile worker pool by the CPU quota (not the host's cores: each worker
    costs memory). Must run before the first compilation. ``None`` keeps the default cache dirs."""
    import torch._inductor.config as inductor_config

    workers = str(cpu_quota())
    os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", workers)
    inductor_config.compile_threads = int(os.environ["TORCHINDUCTOR_COMPILE_THREADS"])
    if cache_dir is None:
        return
    cache_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir / "inductor"))
    os.environ.setdefault("TRITON_CACHE_DIR", str(cache_dir / "triton"))


__all__ = [
    "BF16_CPU_FLAGS",
    "Precision",
    "autocast_dtype",
    "configure_compile_cache",
    "cpu_has_fast_bf16",
]

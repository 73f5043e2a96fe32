"""Where the kokoro model's time goes on this machine: per stage, and the top operators.

    .venv/bin/python -m bench.profile [--weights DIR] [--compile auto|true|false] [--precision auto|fp32|bf16]
                                      [--spectral-convs auto|true|false]

Runs the engine the Triton model runs (``KokoroEngine`` with the same defaults: per-item decoder on
CPU, compiled bfloat16 where the CPU has AVX-512 BF16 or AMX, else compiled float32 with spectral
resblock convolutions) on one corpus sentence, after its
warm-up, and prints seconds per second of audio for each stage (token-level text side, frame-level
text side, decoder blocks, generator, inverse STFT) and torch.profiler's operators by self CPU time.
Writes ``bench/results/profile-<date>.json``. Weights as ``bench.run`` picks them: ``--weights``, else
the converted packaged weights when the `weights` extra is installed, else full-size random ones.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.workload import resolve_weights  # noqa: E402
from pattern_tts.synthesis.batched import BatchedKokoro  # noqa: E402
from pattern_tts.synthesis.engine import KokoroEngine, SynthesisRequest  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SENTENCE = "ðə kwˈɪk bɹˈWn fˈɑks ʤˈʌmps ˈOvəɹ ðə lˈAzi dˈɔɡ, ænd ɹˈʌnz əwˈA ˌɪntu ðə fˈɔɹəst."
STAGES = {  # BatchedKokoro method -> stage name
    "encode_tokens": "text side, token level (ALBERT, prosody, durations, text encoder)",
    "encode_frames": "text side, frame level (alignment, F0 and energy)",
    "source": "harmonic source",
    "_harmonics": "harmonic source's STFT",
    "_generator": "generator upsampling stack (AdaIN + Snake resblocks)",
    "_istft": "inverse STFT",
    "decode": "decoder, all of it",
}


def timed_stages(batched: BatchedKokoro) -> dict[str, float]:
    """Wrap the stage methods of ``batched`` so that each call adds its wall time to the returned dict."""
    totals: dict[str, float] = defaultdict(float)
    for name in STAGES:
        method: Callable[..., Any] = getattr(batched, name)

        def wrapper(*args: Any, _method: Callable[..., Any] = method, _name: str = name, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return _method(*args, **kwargs)
            finally:
                totals[_name] += time.perf_counter() - start

        setattr(batched, name, wrapper)
    return totals


def conv_gflop_per_call(engine: KokoroEngine, run: Callable[[], object]) -> float:
    """GFLOP of the model's convolutions and linear layers in one ``run()`` (forward hooks)."""
    total = 0.0

    def hook(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, torch.nn.Conv1d | torch.nn.ConvTranspose1d):
            # Per output (Conv1d) or input (ConvTranspose1d) position: Cout x Cin/groups x k MACs.
            positions = output.shape[-1] if isinstance(module, torch.nn.Conv1d) else inputs[0].shape[-1]
            macs = module.out_channels * module.in_channels // module.groups * module.kernel_size[0]
            total += 2 * output.shape[0] * macs * positions
        elif isinstance(module, torch.nn.Linear):
            total += 2 * output.numel() * module.in_features

    layers = (torch.nn.Conv1d, torch.nn.ConvTranspose1d, torch.nn.Linear)
    handles = [m.register_forward_hook(hook) for m in engine.model.modules() if isinstance(m, layers)]
    # Time-major resblocks call their convolutions' weights through F.conv2d, past the hooks; the
    # work is the same in either layout.
    time_major, engine.batched.time_major = engine.batched.time_major, False
    try:
        run()
    finally:
        engine.batched.time_major = time_major
        for handle in handles:
            handle.remove()
    return total / 1e9


def matmul_gflops(dtype: torch.dtype, size: int = 2048, repeats: int = 10) -> float:
    """This machine's dense matrix-product rate at ``dtype`` on the current threads: the ceiling."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    for _ in range(3):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--compile", default="auto", choices=["auto", "true", "false"])
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--spectral-convs", default="auto", choices=["auto", "true", "false"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    weights, kind, voice = resolve_weights(args.weights)

    engine = KokoroEngine(
        weights,
        compile={"auto": None, "true": True, "false": False}[args.compile],
        precision=args.precision,
        spectral_convs={"auto": None, "true": True, "false": False}[args.spectral_convs],
    )
    engine.warmup()
    item = engine.prepare(SynthesisRequest(SENTENCE, voice))
    engine.synthesize([item])  # this length once, outside the measurement
    totals = timed_stages(engine.batched)
    start = time.perf_counter()
    for _ in range(args.repeats):
        audio_s = len(engine.synthesize([item])[0].audio) / 24000
    wall = (time.perf_counter() - start) / args.repeats
    stages = {name: totals[name] / args.repeats / audio_s for name in STAGES}

    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        engine.synthesize([item])
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total_us = sum(e.self_cpu_time_total for e in events) or 1
    ops = [
        {"op": e.key, "calls": e.count, "self_cpu_s_per_audio_s": e.self_cpu_time_total / 1e6 / audio_s,
         "share": e.self_cpu_time_total / total_us}
        for e in events[:15]
    ]  # fmt: skip

    gflop = conv_gflop_per_call(engine, lambda: engine.synthesize([item])) / audio_s
    dtype = engine.autocast_dtype or torch.float32
    ceiling = matmul_gflops(dtype)
    conv_s = sum(op["self_cpu_s_per_audio_s"] for op in ops if "convolution" in op["op"])
    result = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "weights": kind,
        "threads": args.threads,
        "compile": engine.compile,
        "spectral_convs": engine.batched.spectral_convs,
        "autocast": str(engine.autocast_dtype),
        "audio_s": round(audio_s, 3),
        "rtf": round(wall / audio_s, 4),
        "stages_s_per_audio_s": {k: round(v, 4) for k, v in stages.items()},
        "conv_linear_gflop_per_audio_s": round(gflop, 1),
        "matmul_gflops_ceiling": {"dtype": str(dtype), "gflops": round(ceiling)},
        "conv_self_s_per_audio_s": round(conv_s, 4),
        "rtf_floor_at_ceiling": round(gflop / ceiling, 4),
        "top_ops": ops,
    }
    print(
        f"{kind} weights, compile={engine.compile}, autocast={engine.autocast_dtype}, "
        f"spectral_convs={engine.batched.spectral_convs}, {args.threads} threads"
    )
    print(f"RTF {wall / audio_s:.3f} ({audio_s:.2f} s of audio in {wall:.2f} s)\n")
    for name, label in STAGES.items():
        print(f"{stages[name]:7.3f} s/s  {stages[name] * audio_s / wall:5.1%}  {label}")
    print(f"\n{'operator':45s} {'calls':>6s} {'s/s':>7s} {'share':>6s}")
    for op in ops:
        print(f"{op['op'][:45]:45s} {op['calls']:6d} {op['self_cpu_s_per_audio_s']:7.3f} {op['share']:6.1%}")
    print(
        f"\nconvolutions and linear layers: {gflop:.1f} GFLOP per second of audio; this machine's {dtype} "
        f"matrix product: {ceiling:.0f} GFLOP/s, so even at that rate they need {gflop / ceiling:.3f} s per "
        f"second of audio (convolutions now take {conv_s:.3f}: {gflop / max(conv_s, 1e-9):.0f} GFLOP/s)"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"profile-{dt.date.today().isoformat()}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()

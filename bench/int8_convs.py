"""Would int8 convolutions speed up the generator on CPU without losing the audio? Speed and fidelity.

The generator's resblock convolutions take most of the CPU time (``bench.profile``), at this CPU's
bfloat16 matrix rate. AVX-512 VNNI runs int8 faster. Two measurements:

1. **Speed**: one resblock convolution (128 channels, kernel 11, dilation 5, 48721 frames, the
   largest of a 20 s item), bfloat16 channels-last (what the fast path runs) against
   ``torch.ao`` quantized int8 (per-channel weights, per-tensor activations) on each quantized
   engine, alone and with the input's quantisation and the output's dequantisation.
2. **Fidelity**, simulated in float32 (fake quantisation, no int8 kernel): the audio of eager
   float32 with every resblock convolution's weights rounded to int8 per output channel, alone and
   with its input rounded to int8 per tensor (what an int8 convolution kernel takes) or per time
   step (finer than any int8 convolution can apply: its output mixes time steps), as waveform SNR
   against eager float32. The fast path's guard is 25 dB.

    flock /tmp/pattern-tts-bench.lock .venv/bin/python -m bench.int8_convs [--weights DIR]

Prints both tables and writes ``bench/results/int8-convs-<date>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pattern_tts.synthesis.engine import KokoroEngine, SynthesisRequest  # noqa: E402
from pattern_tts.weights.parity import snr_db  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
PHONEMES = Path(__file__).resolve().parent / "corpus" / "phonemes.json"
CHANNELS, FRAMES, KERNEL, DILATION = 128, 48721, 11, 5
ENGINES = ("x86", "onednn", "fbgemm")


def median_ms(fn: Callable[[], Any], repeats: int = 7) -> float:
    fn()
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return round(1000 * statistics.median(times), 1)


def conv_speed() -> list[dict[str, Any]]:
    """Milliseconds per call of one resblock convolution, bf16 against int8 on each engine."""
    torch.manual_seed(0)
    x = torch.randn(1, CHANNELS, 1, FRAMES)
    w = torch.randn(CHANNELS, CHANNELS, 1, KERNEL) * 0.05
    bias = torch.zeros(CHANNELS)
    padding, dilation = (0, DILATION * (KERNEL - 1) // 2), (1, DILATION)
    xb = x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    wb = w.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    rows = [{"kernel": "bfloat16, channels-last (the fast path)", "ms": median_ms(
        lambda: F.conv2d(xb, wb, bias.to(torch.bfloat16), padding=padding, dilation=dilation))}]  # fmt: skip
    scale = float(x.abs().max() / 127)
    for engine in ENGINES:
        if engine not in torch.backends.quantized.supported_engines:
            continue
        torch.backends.quantized.engine = engine
        with warnings.catch_warnings():  # torch.ao's quantized tensors are deprecated
            warnings.simplefilter("ignore")
            conv = torch.ao.nn.quantized.Conv2d(CHANNELS, CHANNELS, (1, KERNEL), padding=padding, dilation=dilation)
            weight_scales = (w.abs().amax(dim=(1, 2, 3)) / 127).double()
            conv.set_weight_bias(
                torch.quantize_per_channel(w, weight_scales, torch.zeros(CHANNELS, dtype=torch.long), 0, torch.qint8),
                bias,
            )
            conv.scale, conv.zero_point = 4 * scale, 128

            def quantized(x: torch.Tensor = x) -> torch.Tensor:
                return torch.quantize_per_tensor(x, scale, 128, torch.quint8).contiguous(
                    memory_format=torch.channels_last
                )

            qx = quantized()

            def alone(qx: torch.Tensor = qx, conv: torch.nn.Module = conv) -> torch.Tensor:
                return conv(qx)

            def with_conversions(conv: torch.nn.Module = conv) -> torch.Tensor:
                return conv(quantized()).dequantize()

            rows.append({"kernel": f"int8 ({engine}), conv alone", "ms": median_ms(alone)})
            rows.append({"kernel": f"int8 ({engine}), quantise + conv + dequantise", "ms": median_ms(with_conversions)})
    return rows


def fake_int8(x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """``x`` rounded to symmetric int8 with one scale per slice over ``dims`` (all: per tensor)."""
    scale = x.abs().amax(dim=dims, keepdim=True).clamp(min=1e-12) / 127
    return (x / scale).round().clamp(-127, 127) * scale


def fidelity(weights: Path, voice: str | None) -> tuple[list[dict[str, Any]], list[int]]:
    """Waveform SNR against eager float32 with the resblock convolutions rounded to int8."""
    engine = KokoroEngine(weights)  # eager float32, weight norm folded
    voice = voice or engine.voices.names()[0]
    rows = sorted(json.loads(PHONEMES.read_text(encoding="utf-8")), key=lambda r: len(r["phonemes"]))
    picked = [rows[len(rows) * q // 4]["phonemes"] for q in (1, 2, 3)]
    items = [engine.prepare(SynthesisRequest(p, voice, seed=i)) for i, p in enumerate(picked)]

    def audio() -> list[torch.Tensor]:
        return [engine.batched([item], batch_decoder=False)[0].audio.clone() for item in items]

    reference = audio()
    convs = [c for block in engine.model.decoder.generator.resblocks for c in (*block.convs1, *block.convs2)]
    weights_fp32 = [c.weight.detach().clone() for c in convs]
    inputs: dict[str, tuple[int, ...] | None] = {
        "weights int8 per channel, inputs float32": None,
        "weights int8, inputs int8 per tensor (an int8 kernel)": (0, 1, 2),
        "weights int8, inputs int8 per time step (no int8 kernel takes this)": (1,),
    }
    results = []
    for label, dims in inputs.items():
        handles = []
        for conv, weight in zip(convs, weights_fp32, strict=True):
            conv.weight.data.copy_(fake_int8(weight, (1, 2)))
            if dims is not None:
                handles.append(conv.register_forward_pre_hook(lambda _m, args, d=dims: (fake_int8(args[0], d),)))
        outputs = audio()
        for handle in handles:
            handle.remove()
        for conv, weight in zip(convs, weights_fp32, strict=True):
            conv.weight.data.copy_(weight)
        results.append({
            "quantised": label,
            "snr_db": [round(snr_db(r, o), 1) for r, o in zip(reference, outputs, strict=True)],
            "same_length": all(len(r) == len(o) for r, o in zip(reference, outputs, strict=True)),
        })  # fmt: skip
    return results, [len(p) for p in picked]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, help="weights directory (default: full-size random)")
    parser.add_argument("--voice", default=None)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    weights, kind = args.weights, "given"
    if weights is None:
        from pattern_tts.synthesis.random_weights import write_random_kokoro

        weights, kind = write_random_kokoro(Path(tempfile.mkdtemp()), size="full"), "random full-size"
    speed = conv_speed()
    quality, lengths = fidelity(weights, args.voice)
    print(f"\none resblock convolution, {CHANNELS} channels x {FRAMES} frames, kernel {KERNEL}, dilation {DILATION}")
    for row in speed:
        print(f"  {row['kernel']:55s} {row['ms']:7.1f} ms")
    print(f"\nwaveform SNR against eager float32, {kind} weights, items of {lengths} phonemes")
    for row in quality:
        print(f"  {row['quantised']:62s} {row['snr_db']} dB, same length: {row['same_length']}")
    out = RESULTS / f"int8-convs-{dt.date.today().isoformat()}.json"
    out.write_text(json.dumps({
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "torch": torch.__version__,
        "threads": args.threads, "weights": kind, "phonemes": lengths, "speed": speed, "fidelity": quality,
    }, indent=2) + "\n")  # fmt: skip
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()

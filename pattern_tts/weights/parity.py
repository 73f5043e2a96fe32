"""Compare the converted fp32 KModel with onnxruntime on the original int8 ONNX file.

Both sides run without randomness: the ONNX export has no noise source and no random initial
phase, and :func:`no_noise` makes KModel's iSTFTNet source module draw zeros instead.

Two comparisons per input:

* free-running: each side predicts its own durations, F0 and energy; durations and audio length are
  compared, and a phase-insensitive spectral SNR is reported (the harmonic source integrates F0
  into phase, so a 0.5 % F0 difference shifts the waveform by whole cycles after a few seconds);
* aligned: KModel's decoder gets onnxruntime's durations, F0 and energy curves and its harmonic
  source spectrogram (the STFT of the sine source: the export's own STFT takes the phase of
  near-silent bins differently from ``torch.stft``), so both decoders see the same inputs; the
  waveform SNR then measures the weights, plus onnxruntime's dynamic int8 activation quantization.

The ONNX export's inverse STFT scales its output by exactly 1.5 relative to ``torch.istft`` on the
same spectrogram (see :data:`ONNX_ISTFT_GAIN`); SNRs are computed after undoing that constant.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

#: onnxruntime audio / torch.istft audio for the same spectrogram (measured: 1.4999998, 120 dB SI-SNR).
ONNX_ISTFT_GAIN = 1.5
_DURATIONS = "/encoder/Clip_output_0"
_F0 = "/encoder/F0_proj/Conv_output_0"
_N = "/encoder/N_proj/Conv_output_0"
_HARMONIC = "/decoder/decoder/generator/Concat_3_output_0"  # noise_convs input: [spec, phase] of the source


@contextlib.contextmanager
def no_noise() -> Iterator[None]:
    """Make ``torch.rand`` / ``torch.randn_like`` return zeros (KModel's SineGen noise and phase)."""
    rand, randn_like = torch.rand, torch.randn_like

    def zeros(*size: Any, **kwargs: Any) -> torch.Tensor:
        kwargs.pop("generator", None)
        return torch.zeros(*size, **kwargs)

    torch.rand = zeros  # type: ignore[assignment]
    torch.randn_like = lambda x, **kw: torch.zeros_like(x, **kw)  # type: ignore[assignment]
    try:
        yield
    finally:
        torch.rand, torch.randn_like = rand, randn_like  # type: ignore[assignment]


def ort_session(onnx_bytes: bytes, threads: int = 2) -> Any:
    """An onnxruntime CPU session that also outputs durations, F0 and energy."""
    import onnx
    import onnxruntime as ort

    model = onnx.load_from_string(onnx_bytes)
    for name in (_DURATIONS, _F0, _N, _HARMONIC):
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def run_ort(session: Any, ids: list[int], ref_s: np.ndarray, speed: float = 1.0) -> dict[str, np.ndarray]:
    audio, dur, f0, n, harmonic = session.run(
        None,
        {
            "tokens": np.array([[0, *ids, 0]], np.int64),
            "style": ref_s.reshape(1, 256).astype(np.float32),
            "speed": np.array([speed], np.float32),
        },
    )
    return {
        "audio": np.asarray(audio, np.float32).ravel(),
        "durations": np.asarray(dur).ravel().astype(np.int64),
        "F0": np.asarray(f0, np.float32).reshape(1, -1),
        "N": np.asarray(n, np.float32).reshape(1, -1),
        "harmonic": np.asarray(harmonic, np.float32),
    }


@torch.no_grad()
def run_kmodel(
    model: Any,
    ids: list[int],
    ref_s: np.ndarray,
    speed: float = 1.0,
    *,
    durations: np.ndarray | None = None,
    f0: np.ndarray | None = None,
    energy: np.ndarray | None = None,
    harmonic: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """``KModel.forward_with_tokens``, optionally with given durations, F0/energy and source spectrogram."""
    input_ids = torch.LongTensor([[0, *ids, 0]])
    ref = torch.from_numpy(ref_s.reshape(1, 256).astype(np.float32))
    lengths = torch.full((1,), input_ids.shape[-1], dtype=torch.long)
    text_mask = torch.zeros_like(input_ids, dtype=torch.bool)
    bert_dur = model.bert(input_ids, attention_mask=(~text_mask).int())
    d_en = model.bert_encoder(bert_dur).transpose(-1, -2)
    s = ref[:, 128:]
    d = model.predictor.text_encoder(d_en, s, lengths, text_mask)
    x, _ = model.predictor.lstm(d)
    duration = torch.sigmoid(model.predictor.duration_proj(x)).sum(dim=-1) / speed
    pred_dur = torch.round(duration).clamp(min=1).long().squeeze(0)
    if durations is not None:
        pred_dur = torch.from_numpy(np.asarray(durations, np.int64))
    indices = torch.repeat_interleave(torch.arange(input_ids.shape[1]), pred_dur)
    aln = torch.zeros((input_ids.shape[1], indices.shape[0]))
    aln[indices, torch.arange(indices.shape[0])] = 1
    aln = aln.unsqueeze(0)
    en = d.transpose(-1, -2) @ aln
    f0_pred, n_pred = model.predictor.F0Ntrain(en, s)
    if f0 is not None and energy is not None:
        f0_pred, n_pred = torch.from_numpy(f0), torch.from_numpy(energy)
    t_en = model.text_encoder(input_ids, lengths, text_mask)
    hooks = []
    if harmonic is not None:
        har = torch.from_numpy(harmonic)
        hooks = [
            c.register_forward_pre_hook(lambda _m, _i: (har,)) for c in model.decoder.generator.noise_convs
        ]
    try:
        audio = model.decoder(t_en @ aln, f0_pred, n_pred, ref[:, :128]).squeeze()
    finally:
        for hook in hooks:
            hook.remove()
    return {"audio": audio.numpy().astype(np.float32), "durations": pred_dur.numpy()}


def snr_db(reference: np.ndarray | torch.Tensor, test: np.ndarray | torch.Tensor) -> float:
    """10 log10(|ref|^2 / |ref - test|^2) over the common length, in float64 (arrays or tensors)."""
    ref, other = _float64(reference), _float64(test)
    n = min(len(ref), len(other))
    ref, err = ref[:n], ref[:n] - other[:n]
    return float(10 * np.log10(np.sum(ref**2) / max(np.sum(err**2), 1e-20)))


def _float64(x: np.ndarray | torch.Tensor) -> np.ndarray:
    return x.detach().double().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)


def spectral_snr_db(reference: np.ndarray, test: np.ndarray, n_fft: int = 1024, hop: int = 256) -> float:
    """SNR of STFT magnitudes (phase-insensitive), over the common length."""
    n = min(len(reference), len(test))
    window = torch.hann_window(n_fft)

    def mag(x: np.ndarray) -> torch.Tensor:
        return torch.stft(
            torch.from_numpy(x[:n].astype(np.float32)), n_fft, hop, window=window, return_complex=True
        ).abs()

    a, b = mag(reference), mag(test)
    return float(10 * torch.log10((a**2).sum() / ((a - b) ** 2).sum().clamp_min(1e-20)))


@dataclass
class ParityResult:
    """One input's comparison of KModel (converted weights) with onnxruntime (int8 original)."""

    label: str
    tokens: int
    durations_equal: int
    ort_samples: int
    torch_samples: int
    free_snr_db: float
    free_spectral_snr_db: float
    aligned_snr_db: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare(session: Any, model: Any, label: str, ids: list[int], ref_s: np.ndarray) -> ParityResult:
    """Run both sides on one token sequence and measure agreement."""
    ort_out = run_ort(session, ids, ref_s)
    ort_audio = ort_out["audio"] / ONNX_ISTFT_GAIN
    with no_noise():
        free = run_kmodel(model, ids, ref_s)
        aligned = run_kmodel(
            model,
            ids,
            ref_s,
            durations=ort_out["durations"],
            f0=ort_out["F0"],
            energy=ort_out["N"],
            harmonic=ort_out["harmonic"],
        )
    equal = (
        int(np.sum(free["durations"] == ort_out["durations"]))
        if len(free["durations"]) == len(ort_out["durations"])
        else 0
    )
    return ParityResult(
        label=label,
        tokens=len(ort_out["durations"]),
        durations_equal=equal,
        ort_samples=len(ort_audio),
        torch_samples=len(free["audio"]),
        free_snr_db=snr_db(ort_audio, free["audio"]),
        free_spectral_snr_db=spectral_snr_db(ort_audio, free["audio"]),
        aligned_snr_db=snr_db(ort_audio, aligned["audio"]),
    )

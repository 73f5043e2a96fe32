"""Kokoro weights: validate a directory, or prepare one from the hub or the packaged int8 ONNX model."""

from pattern_tts.weights.architecture import CONFIG_NAME, MANIFEST_NAME, MODEL_NAME, VOICES_DIR
from pattern_tts.weights.cli import add_weights_parser, run_weights_command
from pattern_tts.weights.errors import WeightsError
from pattern_tts.weights.prepare import default_weights_dest, prepare_weights
from pattern_tts.weights.validate import validate_weights_dir, voice_names

__all__ = [
    "CONFIG_NAME",
    "MANIFEST_NAME",
    "MODEL_NAME",
    "VOICES_DIR",
    "WeightsError",
    "add_weights_parser",
    "default_weights_dest",
    "prepare_weights",
    "run_weights_command",
    "validate_weights_dir",
    "voice_names",
]

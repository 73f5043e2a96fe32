"""Loading Kokoro's weights: the same model as Kokoro's own loader, with the weights in memory once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from pattern_tts.synthesis.batched import BatchedKokoro, BatchItem, token_ids
from pattern_tts.synthesis.engine import load_kmodel, new_kmodel
from pattern_tts.weights.architecture import CONFIG_NAME, MODEL_NAME
from tests.conftest import float64_default_dtype

RANDOM_INIT = {torch.ops.aten.uniform_.default, torch.ops.aten.normal_.default}


class RandomInitCounter(TorchDispatchMode):
    """Counts the elements of real (non-meta) tensors that get a random initialisation."""

    def __init__(self) -> None:
        super().__init__()
        self.elements = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func in RANDOM_INIT and not args[0].is_meta:
            self.elements += args[0].numel()
        return func(*args, **(kwargs or {}))


def kokoro_own_load(weights_dir: Path) -> Any:
    return new_kmodel(str(weights_dir / CONFIG_NAME), str(weights_dir / MODEL_NAME)).eval()


def test_the_loaded_model_is_kokoros_own(tiny_weights_dir: Path) -> None:
    ours: Any = load_kmodel(tiny_weights_dir)
    theirs = kokoro_own_load(tiny_weights_dir)
    ours_state, theirs_state = ours.state_dict(), theirs.state_dict()
    assert ours_state.keys() == theirs_state.keys()
    for name, tensor in theirs_state.items():
        assert torch.equal(ours_state[name], tensor), name
    # What the checkpoint does not hold is built as Kokoro builds it: ALBERT's position ids (a
    # non-persistent buffer) and the iSTFT window (a plain attribute) are real tensors, not meta.
    assert torch.equal(ours.bert.embeddings.position_ids, theirs.bert.embeddings.position_ids)
    assert torch.equal(ours.decoder.generator.stft.window, theirs.decoder.generator.stft.window)
    voice = torch.load(tiny_weights_dir / "voices" / "af_sky.pt", weights_only=True)
    item = BatchItem(token_ids(theirs, "hˈɛlO wˈɜɹld"), voice[11, 0], seed=3)
    [a] = BatchedKokoro(ours)([item])
    [b] = BatchedKokoro(theirs)([item])
    assert torch.equal(a.audio, b.audio)


def test_loading_never_initialises_parameters_that_the_checkpoint_replaces(tiny_weights_dir: Path) -> None:
    params = sum(p.numel() for p in load_kmodel(tiny_weights_dir).parameters())
    with RandomInitCounter() as ours:
        load_kmodel(tiny_weights_dir)
    with RandomInitCounter() as theirs:
        kokoro_own_load(tiny_weights_dir)
    assert theirs.elements >= params  # Kokoro's loader initialises every parameter, then copies
    assert ours.elements == 0


def test_parameters_take_the_dtype_their_layers_are_built_in(tiny_weights_dir: Path) -> None:
    """As Kokoro's loader copies the checkpoint into layers built in torch's default dtype (the parity
    tests run float64 models), so does ours."""
    with float64_default_dtype():
        ours: Any = load_kmodel(tiny_weights_dir)
        theirs = kokoro_own_load(tiny_weights_dir)
    ours_state, theirs_state = ours.state_dict(), theirs.state_dict()
    for name, tensor in theirs_state.items():
        assert ours_state[name].dtype == tensor.dtype, name
        assert torch.equal(ours_state[name], tensor), name
    assert {p.dtype for p in ours.parameters()} == {torch.float64}


def weights_dir_with(checkpoint: dict[str, Any], tiny_weights_dir: Path, dest: Path) -> Path:
    """``dest`` as a weights directory: the tiny model's config.json and ``checkpoint``."""
    (dest / CONFIG_NAME).write_bytes((tiny_weights_dir / CONFIG_NAME).read_bytes())
    torch.save(checkpoint, dest / MODEL_NAME)
    return dest


def test_a_checkpoint_missing_a_parameter_is_an_error(tiny_weights_dir: Path, tmp_path: Path) -> None:
    checkpoint = torch.load(tiny_weights_dir / MODEL_NAME, weights_only=True)
    name = next(iter(checkpoint["decoder"]))
    del checkpoint["decoder"][name]
    weights_dir_with(checkpoint, tiny_weights_dir, tmp_path)
    with pytest.raises(ValueError, match=rf"lacks 1 of KModel's parameters, e.g. \['decoder\.{name}'\]"):
        load_kmodel(tmp_path)


def test_a_module_prefix_is_dropped_as_kokoro_does(tiny_weights_dir: Path, tmp_path: Path) -> None:
    checkpoint = torch.load(tiny_weights_dir / MODEL_NAME, weights_only=True)
    checkpoint["predictor"] = {f"module.{k}": v for k, v in checkpoint["predictor"].items()}
    model: Any = load_kmodel(weights_dir_with(checkpoint, tiny_weights_dir, tmp_path))
    loaded = model.predictor.state_dict()
    for name, tensor in kokoro_own_load(tiny_weights_dir).predictor.state_dict().items():
        assert torch.equal(loaded[name], tensor), name

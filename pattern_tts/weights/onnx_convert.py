"""Convert Kokoro's int8 ONNX export back into KModel's fp32 state dicts.

Every weight that KModel needs is found in the ONNX graph and dequantized
(``(q - zero_point) * scale``, per tensor or per channel as stored):

* named initializers (``encoder.*`` / ``decoder.decoder.*``) map to KModel keys directly;
* anonymous ones (``onnx::MatMul_*``, constant-folded weight-norm products ``/.../Mul_output_0``,
  ``onnx::LSTM_*``) are named after the node that consumes them (``/encoder/bert_encoder/MatMul_quant``
  -> ``bert_encoder``), MatMul weights are transposed back to ``Linear`` layout, and LSTM weights are
  re-laid from ONNX ``[dir, in, 4h]`` with gates ``i, o, f, c`` to PyTorch ``[4h, in]`` with ``i, f, g, o``;
* weight-normed modules get ``weight_g = ||W||`` (over all dims but 0) and ``weight_v = W``, which
  KModel recombines to exactly ``W``;
* the few parameters the export folded away as identities (InstanceNorm affine ones/zeros) or pruned as
  unused (ALBERT's pooler) get those identity values.

Nothing here downloads or reads files: it takes a loaded ``onnx.ModelProto``.
"""

from __future__ import annotations

import re
from collections import OrderedDict, defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from pattern_tts.weights.architecture import SUBMODULES
from pattern_tts.weights.errors import WeightsError

# ONNX LSTM gate blocks are i, o, f, c; PyTorch's are i, f, g(=c), o.
_ONNX_TO_TORCH_GATES = (0, 2, 3, 1)
# Parameters the export folded into the graph as identities, or pruned because the output never uses them.
_IDENTITY_DEFAULTS: tuple[tuple[str, float], ...] = (
    (r"\.norm\.weight$", 1.0),  # AdaIN1d's InstanceNorm1d(affine=True): weight 1, bias 0 (folded)
    (r"\.norm\.bias$", 0.0),
    (r"^bert\.pooler\.(weight|bias)$", 0.0),  # ALBERT pooler: computed but unused by KModel
)


def model_skeleton(config: dict[str, Any]) -> torch.nn.Module:
    """A KModel with the config's shapes on the meta device (no memory, no weights loaded)."""
    from pattern_tts.synthesis.engine import new_kmodel

    with torch.device("meta"):
        return new_kmodel(dict(config))


class _Graph:
    """Initializers, producers and consumers of an ONNX graph, with dequantization helpers."""

    def __init__(self, model: Any) -> None:
        from onnx import numpy_helper

        self._to_array = numpy_helper.to_array
        graph = model.graph
        self.inits = {t.name: t for t in graph.initializer}
        self.nodes = list(graph.node)
        self.consumers: dict[str, list[Any]] = defaultdict(list)
        for node in self.nodes:
            for name in node.input:
                if name:
                    self.consumers[name].append(node)
        self._cache: dict[str, np.ndarray] = {}

    def array(self, name: str) -> np.ndarray:
        if name not in self._cache:
            self._cache[name] = self._to_array(self.inits[name])
        return self._cache[name]

    def is_init(self, name: str) -> bool:
        return name in self.inits

    def scale_for(self, quantized: str) -> np.ndarray:
        base = quantized.removesuffix("_quantized")
        if base + "_scale" not in self.inits:
            raise WeightsError(f"ONNX model: no scale for quantized initializer {quantized}")
        return self.array(base + "_scale").astype(np.float32)

    def dequantize(self, quantized: str, zero_point: str | None, axis: int) -> np.ndarray:
        """``(q - zero_point) * scale`` with per-tensor or per-channel (along ``axis``) parameters."""
        q = self.array(quantized).astype(np.int32)
        scale = self.scale_for(quantized)
        zp = self.array(zero_point).astype(np.int32) if zero_point else np.zeros((), np.int32)
        return ((q - _along(zp, q.ndim, axis)) * _along(scale, q.ndim, axis)).astype(np.float32)


def _along(param: np.ndarray, ndim: int, axis: int) -> np.ndarray:
    """Reshape a per-channel parameter so that it broadcasts along ``axis`` of an ``ndim`` tensor."""
    if param.size == 1:
        return param.reshape(())
    if param.ndim == 2 and ndim == 3:  # LSTM per-direction, per-channel: [dir, 4h] vs [dir, in, 4h]
        return param.reshape(param.shape[0], 1, param.shape[1])
    shape = [1] * ndim
    shape[axis] = -1
    return param.reshape(shape)


def _map_prefix(dotted: str) -> str:
    """ONNX export wrapper names (``encoder.X``, ``decoder.decoder.X``) -> KModel names."""
    if dotted.startswith("decoder.decoder."):
        return "decoder." + dotted[len("decoder.decoder.") :]
    if dotted.startswith("encoder."):
        return dotted[len("encoder.") :]
    return dotted


class _ModuleResolver:
    """Turns an ONNX node name (its module scope) into a KModel module name."""

    def __init__(self, module_names: Iterable[str]) -> None:
        self.names = set(module_names)

    def resolve(self, node_name: str) -> str | None:
        segments = [s for s in node_name.split("/") if s][:-1]  # the last one is the op
        # A container's scope ("cnn.0") is repeated as a prefix by its child ("cnn.0.0"): keep the child.
        kept = [
            s
            for i, s in enumerate(segments)
            if not (i + 1 < len(segments) and segments[i + 1].startswith(s + "."))
        ]
        path = _map_prefix(".".join(kept))
        for candidate in (path, re.sub(r"_\d+(?=\.|$)", "", path)):  # "query_3": 4th call of "query"
            if candidate in self.names:
                return candidate
            # Scopes may skip a level ("/encoder/F0.0/conv1" for "predictor.F0.0.conv1").
            matches = [n for n in self.names if n.endswith("." + candidate)]
            if len(matches) == 1:
                return matches[0]
        return None


class _Assembler:
    """Collects KModel parameters from the graph and checks them against the skeleton."""

    def __init__(self, skeleton: torch.nn.Module) -> None:
        self.expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
        self.values: dict[str, np.ndarray] = {}
        self.sources: dict[str, str] = {}
        self.resolver = _ModuleResolver(name for name, _ in skeleton.named_modules() if name)

    def put(self, key: str, value: np.ndarray, source: str) -> None:
        if key not in self.expected:
            raise WeightsError(f"ONNX model: {source} maps to unknown KModel key {key}")
        if tuple(value.shape) != self.expected[key]:
            raise WeightsError(
                f"ONNX model: {source} -> {key} has shape {list(value.shape)}, "
                f"KModel expects {list(self.expected[key])}"
            )
        if key in self.values:
            if self.sources[key] == source or np.array_equal(self.values[key], value):
                return  # a shared weight used several times (ALBERT's repeated layer)
            raise WeightsError(
                f"ONNX model: {key} found twice with different values ({self.sources[key]}, {source})"
            )
        self.values[key] = np.ascontiguousarray(value, dtype=np.float32)
        self.sources[key] = source

    def put_weight(self, module: str, weight: np.ndarray, source: str) -> None:
        """Set ``module.weight``, or its weight-norm pair when the module is weight-normed."""
        g_key = f"{module}.weight_g"
        if g_key in self.expected:
            axes = tuple(range(1, weight.ndim))
            norm = np.sqrt(np.sum(weight.astype(np.float64) ** 2, axis=axes)).astype(np.float32)
            # An all-zero output channel (int8 rounds small ones to 0) would make v / ||v|| = 0 / 0:
            # give it a unit direction instead; its g = 0 still yields a zero weight.
            dead = norm == 0
            direction = weight.copy()
            direction[dead] = 1.0
            self.put(g_key, norm.reshape(self.expected[g_key]), source)
            self.put(f"{module}.weight_v", direction, source)
        else:
            self.put(f"{module}.weight", weight, source)

    def fill_identities(self) -> list[str]:
        filled = []
        for key in self.expected:
            if key in self.values:
                continue
            for pattern, value in _IDENTITY_DEFAULTS:
                if re.search(pattern, key):
                    self.values[key] = np.full(self.expected[key], value, np.float32)
                    self.sources[key] = f"identity {value:g}"
                    filled.append(key)
                    break
        return filled

    def missing(self) -> list[str]:
        return [k for k in self.expected if k not in self.values]


def _module_of(asm: _Assembler, node: Any) -> str:
    module = asm.resolver.resolve(node.name)
    if module is None:
        raise WeightsError(f"ONNX model: cannot tell which KModel module node {node.name} belongs to")
    return module


def _convert_lstm(g: _Graph, asm: _Assembler, node: Any) -> None:
    module = _module_of(asm, node)
    w_name, r_name, b_name = node.input[1], node.input[2], node.input[3]
    w = g.dequantize(w_name, node.input[9] or None, axis=0)  # [dir, in, 4h]
    r = g.dequantize(r_name, node.input[11] or None, axis=0)  # [dir, h, 4h]
    b = g.array(b_name).astype(np.float32)  # [dir, 8h]: input bias then recurrent bias
    hidden = r.shape[1]

    def gates(x: np.ndarray) -> np.ndarray:
        blocks = np.split(x, 4, axis=0)
        return np.concatenate([blocks[i] for i in _ONNX_TO_TORCH_GATES], axis=0)

    for d, suffix in enumerate(("", "_reverse")[: w.shape[0]]):
        src = f"{node.name}[{d}]"
        asm.put(f"{module}.weight_ih_l0{suffix}", gates(w[d].T), src)
        asm.put(f"{module}.weight_hh_l0{suffix}", gates(r[d].T), src)
        asm.put(f"{module}.bias_ih_l0{suffix}", gates(b[d, : 4 * hidden]), src)
        asm.put(f"{module}.bias_hh_l0{suffix}", gates(b[d, 4 * hidden :]), src)


def _convert_node(g: _Graph, asm: _Assembler, node: Any) -> None:
    op = node.op_type
    if op == "DynamicQuantizeLSTM":
        _convert_lstm(g, asm, node)
    elif op == "ConvInteger" and g.is_init(node.input[1]):
        zp = node.input[3] if len(node.input) > 3 else None
        asm.put_weight(_module_of(asm, node), g.dequantize(node.input[1], zp, axis=0), node.input[1])
    elif op == "MatMulInteger" and g.is_init(node.input[1]):
        zp = node.input[3] if len(node.input) > 3 else None
        weight = g.dequantize(node.input[1], zp, axis=1).T  # x @ W[in, out] -> Linear weight [out, in]
        asm.put_weight(_module_of(asm, node), weight, node.input[1])
    elif op in ("Conv", "ConvTranspose") and g.is_init(node.input[1]):
        module = asm.resolver.resolve(node.name)
        if module is not None:  # the iSTFT's fixed basis is not a KModel parameter
            asm.put_weight(module, g.array(node.input[1]).astype(np.float32), node.input[1])
    elif op == "MatMul" and g.is_init(node.input[1]):
        module = asm.resolver.resolve(node.name)
        if module is not None:
            asm.put_weight(module, g.array(node.input[1]).astype(np.float32).T, node.input[1])
    elif op == "Gather" and g.is_init(node.input[0]) and node.input[0].endswith("_quantized"):
        deq = [c for c in g.consumers[node.output[0]] if c.op_type == "DequantizeLinear"]
        zp = deq[0].input[2] if deq and len(deq[0].input) > 2 else None
        asm.put_weight(_module_of(asm, node), g.dequantize(node.input[0], zp, axis=0), node.input[0])


def _convert_named(g: _Graph, asm: _Assembler) -> None:
    """fp32 initializers that keep their PyTorch names (biases, norms, Snake alphas)."""
    for name, tensor in g.inits.items():
        if not (name.startswith("encoder.") or name.startswith("decoder.decoder.")):
            continue
        if name.endswith(("_quantized", "_scale", "_zero_point", "_shape")) or tensor.data_type != 1:
            continue
        key = _map_prefix(name)
        if key in asm.expected:
            asm.put(key, g.array(name).astype(np.float32), name)


def onnx_to_state_dicts(
    model: Any, config: dict[str, Any], *, progress: bool = False
) -> dict[str, OrderedDict[str, torch.Tensor]]:
    """KModel's ``{submodule: state_dict}`` (the `.pth` layout) from the int8 ONNX model.

    Raises WeightsError when any KModel parameter cannot be found or has the wrong shape.
    """
    from tqdm import tqdm

    skeleton = model_skeleton(config)
    graph = _Graph(model)
    asm = _Assembler(skeleton)
    for node in tqdm(graph.nodes, desc="dequantize", unit="node", disable=not progress, leave=False):
        _convert_node(graph, asm, node)
    _convert_named(graph, asm)
    asm.fill_identities()
    missing = asm.missing()
    if missing:
        shown = ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else "")
        raise WeightsError(f"ONNX model: {len(missing)} KModel parameters not found: {shown}")
    out: dict[str, OrderedDict[str, torch.Tensor]] = {sub: OrderedDict() for sub in SUBMODULES}
    for key in asm.expected:
        sub, _, rest = key.partition(".")
        if sub not in out:
            raise WeightsError(f"KModel key outside the known submodules: {key}")
        out[sub][rest] = torch.from_numpy(asm.values[key])
    return out


def conversion_report(model: Any, config: dict[str, Any]) -> dict[str, str]:
    """KModel key -> the ONNX initializer (or identity value) it came from; for checks and debugging."""
    skeleton = model_skeleton(config)
    graph = _Graph(model)
    asm = _Assembler(skeleton)
    for node in graph.nodes:
        _convert_node(graph, asm, node)
    _convert_named(graph, asm)
    asm.fill_identities()
    return dict(asm.sources)

"""The int8 Kokoro ONNX file's float twin: the same graph and the same (dequantized) weights, with
onnxruntime's dynamic activation quantization taken out.

The packaged model was made with onnxruntime's dynamic quantization: each ``MatMul``, ``Conv`` and
``LSTM`` quantizes its input activations to 8 bits at run time (``DynamicQuantizeLinear`` feeding
``MatMulInteger`` / ``ConvInteger``, or ``DynamicQuantizeLSTM``). That rounding moves the predicted
durations across their rounding boundaries and costs the waveform SNR a few dB, whatever the
weights. Replacing each quantized op by its float op on the dequantized weights (the same
``(q - zero_point) * scale`` the converter writes into KModel) gives a reference that differs from
the original only by activation rounding, so the parity check can tell the weight mapping from the
int8 arithmetic.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pattern_tts.weights.errors import WeightsError
from pattern_tts.weights.onnx_convert import _Graph


def float_twin(model: Any) -> Any:
    """A copy of ``model`` (``onnx.ModelProto``) with every dynamically quantized op made float."""
    import onnx
    from onnx import helper, numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = _Graph(out)
    producers = {name: node for node in g.nodes for name in node.output}
    removed: set[int] = set()
    added: list[tuple[int, Any]] = []  # (position of the node it replaces, new node)
    new_inits: list[Any] = []

    def float_input(quantized: str) -> str:
        """The float activation a ``DynamicQuantizeLinear`` output was made from."""
        dql = producers.get(quantized)
        if dql is None or dql.op_type != "DynamicQuantizeLinear":
            raise WeightsError(f"ONNX model: {quantized} is not a dynamically quantized activation")
        return str(dql.input[0])

    def rescale_chain(node: Any) -> tuple[list[Any], str | None]:
        """The ops after an integer op: an optional ``Add`` of the int32-quantized bias (convolutions),
        ``Cast`` to float and ``Mul`` by input scale x weight scale; and the float bias, if any."""
        chain, bias = [], None
        (nxt,) = g.consumers[node.output[0]]
        if nxt.op_type == "Add":
            chain.append(nxt)
            bias = float_bias(nxt.input[1])
            (nxt,) = g.consumers[nxt.output[0]]
        (mul,) = g.consumers[nxt.output[0]]
        if nxt.op_type != "Cast" or mul.op_type != "Mul":
            raise WeightsError(f"ONNX model: unexpected ops after {node.name}: {nxt.op_type}, {mul.op_type}")
        return [*chain, nxt, mul], bias

    def float_bias(quantized: str, depth: int = 8) -> str:
        """The float ``*.bias`` initializer an int32 bias is computed from at run time."""
        frontier = [quantized]
        for _ in range(depth):
            nodes = [producers[name] for name in frontier if name in producers]
            for n in nodes:
                for name in n.input:
                    if g.is_init(name) and name.endswith("bias") and g.inits[name].data_type == 1:
                        return str(name)
            frontier = [name for n in nodes for name in n.input]
        raise WeightsError(f"ONNX model: no float bias behind {quantized}")

    def weight(name: str, array: np.ndarray) -> str:
        new_inits.append(numpy_helper.from_array(array.astype(np.float32), name + "_float"))
        return name + "_float"

    for index, node in enumerate(g.nodes):
        if node.op_type in ("MatMulInteger", "ConvInteger") and g.is_init(node.input[1]):
            zp = node.input[3] if len(node.input) > 3 and node.input[3] else None
            axis = 1 if node.op_type == "MatMulInteger" else 0
            w = weight(node.input[1], g.dequantize(node.input[1], zp, axis=axis))
            chain, bias = rescale_chain(node)
            op = "MatMul" if node.op_type == "MatMulInteger" else "Conv"
            inputs = [float_input(node.input[0]), w, *([bias] if bias else [])]
            replacement = helper.make_node(op, inputs, [chain[-1].output[0]], name=node.name + "_float")
            replacement.attribute.extend(node.attribute)
            added.append((index, replacement))
            removed.update(id(n) for n in (node, *chain))
        elif node.op_type == "DynamicQuantizeLSTM":
            # Inputs: X, W, R, B, sequence_lens, initial_h, initial_c, P, W_scale, W_zp, R_scale, R_zp;
            # W and R are [dir, in, 4h] here and [dir, 4h, in] in ONNX LSTM (same gate order).
            w_float = g.dequantize(node.input[1], node.input[9] or None, axis=0).transpose(0, 2, 1)
            r_float = g.dequantize(node.input[2], node.input[11] or None, axis=0).transpose(0, 2, 1)
            inputs = [
                node.input[0],
                weight(node.input[1], w_float),
                weight(node.input[2], r_float),
                *node.input[3:8],
            ]
            while inputs and not inputs[-1]:
                inputs.pop()
            replacement = helper.make_node("LSTM", inputs, list(node.output), name=node.name + "_float")
            replacement.attribute.extend(node.attribute)
            added.append((index, replacement))
            removed.add(id(node))
    if not added:
        raise WeightsError("ONNX model: no dynamically quantized ops found")

    at = dict(added)
    nodes = []
    for index, node in enumerate(g.nodes):
        if index in at:
            nodes.append(at[index])
        if id(node) not in removed:
            kept = onnx.NodeProto()
            kept.CopyFrom(node)  # detached from the graph whose node list is replaced below
            nodes.append(kept)
    # Cast and Mul come after their integer op in topological order and are removed, so the float
    # op at the integer op's place still precedes every consumer of the Mul's output.
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    out.graph.initializer.extend(new_inits)
    return out

"""Optional int8 quantization (onnxruntime static QDQ, per-channel weights), kept only when its test
accuracy is within 0.2 points of the float model's; the speed-up is measured and reported either way.

The final linear layer and the pooling that feeds it stay float32 (`float_head_nodes`): the site adaptation
reads that layer's weights by name and replaces them (core/modeledit.py), and fits its head on the `features`
output, which would otherwise come out of a uint8 quantizer (256 levels for 1,280 numbers). Those nodes are
a few thousand multiply-adds of the ~300 million, so keeping them float costs no measurable speed."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from crackdesk.core.preprocess import Preprocessing

MAX_ACCURACY_DROP = 0.002
# Between the last convolution's activation and the features: what pooling and flattening look like.
_POOLING = {"GlobalAveragePool", "ReduceMean", "Flatten", "Reshape", "Squeeze", "Identity"}


class _Reader:
    def __init__(self, images: np.ndarray, prep: Preprocessing, name: str, batch: int = 16):
        self.batches = iter([{name: prep.normalize(images[i:i + batch])} for i in range(0, len(images), batch)])

    def get_next(self):
        return next(self.batches, None)


def float_head_nodes(model) -> list[str]:
    """Names of the nodes kept float32: the head (core/modeledit.find_head), everything after it, and the
    pooling that computes its input (the `features` output)."""
    from crackdesk.core.modeledit import find_head

    graph = model.graph
    head = find_head(model)
    producer = {out: node for node in graph.node for out in node.output}
    keep = [head.node.name]
    name = head.features
    while name in producer and producer[name].op_type in _POOLING:
        keep.append(producer[name].name)
        name = producer[name].input[0]
    downstream = set(head.node.output)
    for node in graph.node:  # the graph is topologically sorted: one pass finds what follows the head
        if any(i in downstream for i in node.input) or (node.op_type == "Identity" and node.input[0] == head.features):
            keep.append(node.name)
            downstream.update(node.output)
    if any(not n for n in keep):
        raise ValueError("the head's nodes have no names; they cannot be kept out of quantization")
    return keep


def first_conv_node(model) -> list[str]:
    """The first convolution, which sees the normalised image itself: kept float32 by `scripts/make_int8_model.py`
    (on MobileNetV2 that took the ccic test from 99.83% to the float model's 99.92%; BENCHMARKS.md)."""
    return [n.name for n in model.graph.node if n.op_type == "Conv"][:1]


def quantize_bytes(onnx_bytes: bytes, calibration: np.ndarray, prep: Preprocessing,
                   float_first_conv: bool = False) -> bytes:
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        src, pre, dst = Path(tmp, "f.onnx"), Path(tmp, "p.onnx"), Path(tmp, "q.onnx")
        src.write_bytes(onnx_bytes)
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)  # fuses Conv+BN first
        graph = onnx.load(str(pre))
        keep = float_head_nodes(graph) + (first_conv_node(graph) if float_first_conv else [])
        quantize_static(str(pre), str(dst), _Reader(calibration, prep, "image"), quant_format=QuantFormat.QDQ,
                        per_channel=True, weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                        nodes_to_exclude=keep)
        return dst.read_bytes()


def images_per_second(sess, images: np.ndarray, prep: Preprocessing, batch: int = 32, repeats: int = 3) -> float:
    name = sess.get_inputs()[0].name
    x = prep.normalize(images[:batch])
    sess.run(None, {name: x})  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        sess.run(None, {name: x})
    return repeats * len(x) / (time.perf_counter() - start)

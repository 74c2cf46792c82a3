"""Edits of a CrackDesk ONNX graph that need no retraining (the `onnx` package, no torch):

* `add_features_output`: expose the penultimate features, the input of the final linear layer, as a second
  output `features` [N, D] (model format 2). The graphs already compute them; nothing else changes.
* `set_head`: replace that final layer's weights and bias, which is how a site model is made from its base
  (the site head is a logistic regression on exactly those features).

Both find the final layer the same way: the Gemm (or MatMul + Add) whose result reaches the probability
output through element-wise nodes only (Sigmoid, Softmax, Reshape...).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ModelError

FEATURES_OUTPUT = "features"
_PASS_THROUGH = {"Sigmoid", "Softmax", "Reshape", "Flatten", "Identity", "Squeeze", "Unsqueeze", "Cast"}


@dataclass
class Head:
    node: object  # the Gemm NodeProto
    features: str  # name of its input tensor (the penultimate features)
    weight: str  # initializer names
    bias: str | None
    transposed: bool  # Gemm transB: weight stored as [out, in]


def find_head(model) -> Head:
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    name = graph.output[0].name
    for _ in range(16):  # walk back from the probability output
        node = producer.get(name)
        if node is None:
            break
        if node.op_type == "Gemm":
            attrs = {a.name: a for a in node.attribute}
            trans_a = attrs["transA"].i if "transA" in attrs else 0
            if trans_a:
                break
            return Head(node, node.input[0], node.input[1], node.input[2] if len(node.input) > 2 else None,
                        bool(attrs["transB"].i) if "transB" in attrs else False)
        if node.op_type not in _PASS_THROUGH:
            break
        name = node.input[0]
    raise ModelError("cannot find the model's final linear layer (a Gemm before the probability output); "
                     "its features cannot be exposed or its head replaced")


def feature_dim(model, head: Head) -> int:
    init = {t.name: t for t in model.graph.initializer}
    if head.weight not in init:
        raise ModelError("the final layer's weights are not stored in the file (computed in the graph?)")
    dims = list(init[head.weight].dims)
    return int(dims[1] if head.transposed else dims[0])


def add_features_output(model) -> int:
    """Add the `features` output in place (a no-op if present); returns the feature width D."""
    from onnx import TensorProto, helper

    head = find_head(model)
    dim = feature_dim(model, head)
    if any(o.name == FEATURES_OUTPUT for o in model.graph.output):
        return dim
    model.graph.node.append(helper.make_node("Identity", [head.features], [FEATURES_OUTPUT],
                                             name="crackdesk_features"))
    batch = model.graph.input[0].type.tensor_type.shape.dim[0]
    n = batch.dim_param or (batch.dim_value if batch.dim_value else "N")
    model.graph.output.append(helper.make_tensor_value_info(FEATURES_OUTPUT, TensorProto.FLOAT, [n, dim]))
    return dim


def head_weights(model) -> tuple[np.ndarray, float]:
    """(w [D], b) of the final layer: logit = features . w + b."""
    from onnx import numpy_helper

    head = find_head(model)
    init = {t.name: t for t in model.graph.initializer}
    w = numpy_helper.to_array(init[head.weight]).astype(np.float64)
    w = w if head.transposed else w.T
    if w.shape[0] != 1:
        raise ModelError(f"the final layer has {w.shape[0]} outputs; a site head needs one (a probability model)")
    b = numpy_helper.to_array(init[head.bias]).astype(np.float64).ravel()[0] if head.bias else 0.0
    return w[0].copy(), float(b)


def read_head(path) -> tuple[np.ndarray, float]:
    """The final layer of a model file: (w [D], b)."""
    import onnx

    try:
        return head_weights(onnx.load(str(path)))
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot read the model's weights ({e})", path) from None


def set_head(model, weights: np.ndarray, bias: float) -> None:
    """Replace the final layer's weights [D] and bias in place (same shapes, float32)."""
    from onnx import numpy_helper

    head = find_head(model)
    init = {t.name: t for t in model.graph.initializer}
    old = numpy_helper.to_array(init[head.weight])
    w = np.asarray(weights, np.float32).reshape(1, -1)
    w = w if head.transposed else w.T
    if w.shape != old.shape:
        raise ModelError(f"the new head has shape {list(w.shape)}, the model's is {list(old.shape)}")
    init[head.weight].CopyFrom(numpy_helper.from_array(w.astype(old.dtype), head.weight))
    if head.bias:
        old_b = numpy_helper.to_array(init[head.bias])
        init[head.bias].CopyFrom(numpy_helper.from_array(np.full(old_b.shape, bias, old_b.dtype), head.bias))
    elif bias != 0.0:
        raise ModelError("the final layer has no bias to set")

"""ONNX export with CrackDesk metadata, the torch/onnxruntime parity check, atomic writing, and reading a
`--base` model's weights back into torch.

Export keeps BatchNorm as its own node and every parameter as an initializer named like its state-dict key
(no constant folding, no fusing, no de-duplication), so a shipped model can be turned back into trainable
weights; onnxruntime fuses Conv+BN itself when it loads the file, so inference speed is unaffected.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch

from crackdesk.core.atomic import atomic_write_bytes, check_output_file
from crackdesk.core.errors import ModelError
from crackdesk.core.modeledit import FEATURES_OUTPUT, add_features_output, feature_dim, find_head
from crackdesk.core.modelformat import ModelInfo, write_metadata
from crackdesk.core.models import session_options
from crackdesk.core.preprocess import Preprocessing

from .archs import ProbabilityModel

PARITY_TOLERANCE = 1e-4
PREFIX = "model."  # ProbabilityModel's attribute name, in front of every exported parameter name


def export_bytes(model: torch.nn.Module, prep: Preprocessing) -> bytes:
    """The model (logit output) as an ONNX graph: input `image` [N,3,H,W], outputs `p_crack` [N,1] and `features`
    [N,D], the input of the final linear layer (model format 2, for the site head)."""
    wrapper = ProbabilityModel(model).eval()
    # Every sub-module stays in eval mode (BN uses running statistics), but a top-level training flag
    # stops the exporter from merging initializers that happen to hold equal values (e.g. identity BNs),
    # which would lose their names.
    wrapper.training = True
    h, w = prep.input_size
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, torch.zeros(1, 3, h, w), buffer, dynamo=False, opset_version=17,
                          do_constant_folding=False, training=torch.onnx.TrainingMode.PRESERVE,
                          input_names=["image"], output_names=["p_crack"],
                          dynamic_axes={"image": {0: "batch"}, "p_crack": {0: "batch"}})
    wrapper.training = False
    import onnx

    proto = onnx.load_from_string(buffer.getvalue())
    add_features_output(proto)
    return proto.SerializeToString()


def features_declaration(onnx_bytes: bytes) -> dict:
    """The metadata's `features` entry for an exported graph."""
    import onnx

    proto = onnx.load_from_string(onnx_bytes)
    return {"output": FEATURES_OUTPUT, "dim": feature_dim(proto, find_head(proto))}


def with_metadata(onnx_bytes: bytes, info: ModelInfo) -> bytes:
    import onnx

    proto = onnx.load_from_string(onnx_bytes)
    write_metadata(proto, info)
    return proto.SerializeToString()


def session(model: bytes | str | Path, threads: int | None = None):
    import onnxruntime as ort

    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, sess_options=session_options(threads), providers=["CPUExecutionProvider"])


def ort_probabilities(sess, images_uint8: np.ndarray, prep: Preprocessing, batch: int = 64, cancel=None) -> np.ndarray:
    """P(crack) of NHWC uint8 images through an onnxruntime session, with the app's preprocessing."""
    name = sess.get_inputs()[0].name
    out = []
    for start in range(0, len(images_uint8), batch):
        if cancel is not None:
            cancel.check()
        x = prep.normalize(images_uint8[start:start + batch])
        out.append(sess.run(None, {name: x})[0].reshape(-1))
    return np.concatenate(out) if out else np.zeros(0, np.float32)


@torch.no_grad()
def torch_probabilities(model: torch.nn.Module, images_uint8: np.ndarray, prep: Preprocessing, batch: int = 64) -> np.ndarray:
    model.eval()
    out = []
    for start in range(0, len(images_uint8), batch):
        x = torch.from_numpy(prep.normalize(images_uint8[start:start + batch]))
        out.append(torch.sigmoid(model(x)).view(-1).numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def check_parity(model: torch.nn.Module, sess, images_uint8: np.ndarray, prep: Preprocessing) -> float:
    """Largest |p_onnx - p_torch| on real images; raises if above the tolerance."""
    p_torch = torch_probabilities(model, images_uint8, prep)
    p_onnx = ort_probabilities(sess, images_uint8, prep)
    worst = float(np.abs(p_torch - p_onnx).max()) if len(p_torch) else 0.0
    if worst > PARITY_TOLERANCE:
        raise ModelError(f"export check failed: onnxruntime and torch probabilities differ by {worst:.2e} "
                         f"(limit {PARITY_TOLERANCE:.0e}) on {len(p_torch)} validation images")
    return worst


def check_output_location(out: Path) -> None:
    """Fail before training, not after, when the model or its replay memory cannot be written there."""
    from crackdesk.core.memory import memory_path

    check_output_file(out, "model")
    check_output_file(memory_path(out), "replay memory")


def atomic_write(data: bytes, out: Path) -> None:
    """The model swapped in whole (core/atomic.py): a reader sees the old file or the new one, never half."""
    atomic_write_bytes(out, data, "model")


def _final_layer(payload: bytes):
    """The model's final-layer weights [D], for its memory's window basis; None when it has no such layer."""
    import onnx
    from google.protobuf.message import DecodeError

    from crackdesk.core.errors import ModelError
    from crackdesk.core.modeledit import head_weights

    try:
        return head_weights(onnx.load_from_string(payload))[0]
    except (DecodeError, ValueError, KeyError, ModelError):
        return None


def write_model_and_memory(payload: bytes, out: Path, memory) -> None:
    """The replay memory first, then the model, so that a model is never without its memory. An error in
    between puts back the memory that was there (or removes the new one), so a failed run leaves the files as
    they were; after a crash in between, the memory's `model_sha256` tells that it is not the model's."""
    import os

    from crackdesk.core.memory import memory_path

    target = memory_path(out)
    previous = target.with_name(target.name + ".previous")
    had_memory = target.is_file()
    if had_memory:
        os.replace(target, previous)
    try:
        memory.save(target, _final_layer(payload))
        atomic_write(payload, out)
    except BaseException:
        if had_memory:
            os.replace(previous, target)
        else:
            target.unlink(missing_ok=True)
        raise
    if had_memory:
        previous.unlink(missing_ok=True)


def load_base(path: str | Path, arch: str, model: torch.nn.Module):
    """Validate a CrackDesk model and load its weights into `model`; returns its ModelInfo.
    Refuses another architecture, and files whose graph does not carry every weight by name."""
    import onnx
    from onnx import numpy_helper

    from crackdesk.core.models import load_model

    info = load_model(path, threads=1).info
    if info.architecture != arch:
        raise ModelError(f"the base model is a {info.architecture!r} model; it cannot be retrained as "
                         f"{arch!r} (use --arch {info.architecture} or another base)", path)
    proto = onnx.load(str(path))
    initializers = {t.name: t for t in proto.graph.initializer}
    state = model.state_dict()
    new_state, missing = {}, []
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            new_state[key] = value
            continue
        tensor = initializers.get(PREFIX + key)
        if tensor is None:
            missing.append(key)
            continue
        array = numpy_helper.to_array(tensor)
        if tuple(array.shape) != tuple(value.shape):
            raise ModelError(f"the base model's weight {key} has shape {list(array.shape)}, expected "
                             f"{list(value.shape)} (different input size or layout)", path)
        new_state[key] = torch.from_numpy(array.copy())
    if missing:
        raise ModelError(f"cannot retrain from this file: {len(missing)} weights are not stored by name "
                         f"(e.g. {missing[0]}); start from a float model exported by CrackDesk training, not an int8 "
                         "or third-party file", path)
    model.load_state_dict(new_state)
    return info


def export_frozen_bytes(frozen: torch.nn.Module, prep: Preprocessing) -> bytes:
    """The frozen part of a network alone (training-time use only: fast activation caching)."""
    h, w = prep.input_size
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(frozen.eval(), torch.zeros(1, 3, h, w), buffer, dynamo=False, opset_version=17,
                          input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
    return buffer.getvalue()

"""The shipped int8 fast path (models/mobilenetv2-int8.onnx, scripts/make_int8_model.py): it names its float
original, keeps the `features` output, is as accurate as the float model on the ccic test split (within 0.1
points), and its replay memory holds the features of the int8 graph itself (the site adaptation fits on those)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from training_fixtures import CCIC, ROOT

INT8 = ROOT / "models" / "mobilenetv2-int8.onnx"
FLOAT = ROOT / "models" / "mobilenetv2.onnx"


def test_the_int8_model_is_the_default_and_names_its_float_original():
    from crackdesk.core.memory import load_memory
    from crackdesk.core.models import ModelRegistry, float_original, load_model

    registry = ModelRegistry(ROOT / "models", ROOT / "no-user-models")
    assert registry.default().path == INT8
    info = load_model(INT8).info
    assert info.quantized_from == "mobilenetv2@1.0.0" and info.features == {"output": "features", "dim": 1280}
    assert info.screen == {"model": "cnn@1.0.0", "below": 0.03}  # scripts/calibrate_screen.py
    assert float_original(info, registry).path == FLOAT
    memory = load_memory(INT8, dim=1280)
    assert memory.meta["model_sha256"] == hashlib.sha256(INT8.read_bytes()).hexdigest()
    assert memory.meta["model"] == "mobilenetv2-int8@1.0.0" and memory.meta["data_name"] == "Concrete"


@pytest.mark.slow
def test_int8_keeps_ccic_test_accuracy_and_its_memory_holds_its_own_features():
    if not CCIC.is_dir():
        pytest.skip(f"needs ../shared: {CCIC} is absent")
    from crackdesk.core.memory import load_memory
    from crackdesk.core.metrics import binary_metrics
    from crackdesk.core.models import load_model
    from training.data import collect, decode_all
    from training.memory_build import graph_outputs

    int8, float_model = load_model(INT8), load_model(FLOAT)
    prep = int8.info.preprocessing
    examples = collect([str(CCIC)], 0, None)[0]
    test = [e for e in examples if e.split == "test"]
    _, images, _ = decode_all(test, prep)
    y = np.array([e.label for e in test], np.float32)
    accuracy = {}
    for key, model in (("float", float_model), ("int8", int8)):
        p, _ = graph_outputs(model.session, images, prep)
        accuracy[key] = binary_metrics(y, p, model.info.threshold)["accuracy"]
    assert accuracy["int8"] >= accuracy["float"] - 0.001 - 1e-9, accuracy
    assert abs(accuracy["int8"] - int8.info.metrics["accuracy"]) < 1e-9  # its metadata is its own

    # The memory holds the whole validation split as its held-out rows (scripts/build_memory.py): the int8
    # graph's features of some validation images are among them (to float16 storage), the float graph's are not.
    memory = load_memory(INT8, dim=1280)
    held = memory.holdout_features
    val = [e for e in examples if e.split == "val"][:16]
    _, val_images, _ = decode_all(val, prep)
    _, features = graph_outputs(int8.session, val_images, prep)
    _, float_features = graph_outputs(float_model.session, val_images, prep)

    def nearest(f):
        return float(np.abs(held - f[None, :]).max(1).min())

    own, other = [nearest(f) for f in features], [nearest(f) for f in float_features]
    assert max(own) < 0.02, own  # float16 rounding of features up to ~6
    assert min(other) > 5 * max(own), (own, other)

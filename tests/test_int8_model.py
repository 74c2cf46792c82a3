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


GRAPH_OUTPUTS = """
import sys
import numpy as np
from crackdesk.core.models import load_model
session = load_model(sys.argv[1]).session
outputs = session.run(None, {session.get_inputs()[0].name: np.load(sys.argv[2])})
np.savez(sys.argv[3], **{o.name: v for o, v in zip(session.get_outputs(), outputs)})
"""


def app_outputs(cpu: str | None, inputs, out) -> dict:
    """The int8 model's outputs through the app's own session, on this CPU or on `cpu` emulated by qemu (its
    instruction set decides which int8 kernels onnxruntime picks, and whether the app asks for the exact ones)."""
    import subprocess
    import sys

    script = out.parent / "graph_outputs.py"
    script.write_text(GRAPH_OUTPUTS)
    command = [sys.executable, str(script), str(INT8), str(inputs), str(out)]
    subprocess.run((["qemu-x86_64", "-cpu", cpu] if cpu else []) + command, check=True, capture_output=True,
                   timeout=600, cwd=ROOT)
    with np.load(out) as saved:
        return dict(saved)


@pytest.mark.slow
def test_the_int8_model_gives_the_same_p_and_features_on_a_cpu_without_vnni(tmp_path):
    """x86 CPUs without VNNI sum uint8 x int8 products in 16-bit pairs that saturate: there onnxruntime's fast
    kernels gave a ccic test patch P 0.43 against 0.85 with VNNI, and features up to 1.4 apart, so the replay
    memory matched one kind of CPU only. The app asks for exact sums where they would saturate (decision 45)."""
    import platform
    import shutil

    if not CCIC.is_dir():
        pytest.skip(f"needs ../shared: {CCIC} is absent")
    if platform.machine() != "x86_64":
        pytest.skip(f"about the int8 kernels of x86 CPUs: this machine is {platform.machine()}")
    assert shutil.which("qemu-x86_64"), "qemu-x86_64 is missing: `make setup` installs qemu-user"
    from crackdesk.core.models import load_model
    from training.data import collect, decode_all

    prep = load_model(INT8).info.preprocessing
    val = [e for e in collect([str(CCIC)], 0, None)[0] if e.split == "val"][::40]  # 60 patches
    _, images, _ = decode_all(val, prep)
    np.save(tmp_path / "inputs.npy", prep.normalize(images))
    here = app_outputs(None, tmp_path / "inputs.npy", tmp_path / "here.npz")
    haswell = app_outputs("Haswell", tmp_path / "inputs.npy", tmp_path / "haswell.npz")  # AVX2, no VNNI
    assert set(here) == set(haswell) and "features" in here
    for name in here:
        difference = float(np.abs(here[name] - haswell[name]).max())
        assert difference == 0.0, (name, difference)

"""Upgrade a CrackDesk model file to model format 2: add the `features` output (the input of its final linear
layer, which the graph already computes) and declare it in the metadata. Weights, preprocessing, threshold and
metrics stay as they are; the script checks that P(crack) is bit-for-bit what the old file gives.

    python scripts/add_features_output.py models/mobilenetv2.onnx models/cnn.onnx
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crackdesk.core.atomic import atomic_write_bytes  # noqa: E402
from crackdesk.core.modeledit import FEATURES_OUTPUT, add_features_output  # noqa: E402
from crackdesk.core.modelformat import METADATA_KEY, ModelInfo, write_metadata  # noqa: E402
from crackdesk.core.models import load_model  # noqa: E402


def upgrade(path: Path) -> str:
    import onnx

    old = load_model(path, threads=1)
    if old.info.features is not None:
        return f"{path}: already has a features output ({old.info.features['dim']}-d)"
    proto = onnx.load(str(path))
    dim = add_features_output(proto)
    info = ModelInfo.from_json(next(p.value for p in proto.metadata_props if p.key == METADATA_KEY), path)
    info.features = {"output": FEATURES_OUTPUT, "dim": dim}
    write_metadata(proto, info)
    data = proto.SerializeToString()

    import onnxruntime as ort

    new = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    h, w = info.preprocessing.input_size
    x = np.random.default_rng(0).normal(0, 1, (8, 3, h, w)).astype(np.float32)
    p_old = old.session.run(None, {old.input_name: x})[0]
    p_new, feats = new.run(None, {new.get_inputs()[0].name: x})
    if not np.array_equal(p_old, p_new) or feats.shape != (8, dim):
        raise SystemExit(f"{path}: the upgraded graph does not reproduce the old probabilities; not written")
    atomic_write_bytes(path, data, "model")
    load_model(path)  # validates the new file as the app will
    return f"{path}: features output added ({dim}-d), probabilities identical on 8 inputs"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", type=Path)
    for path in parser.parse_args().models:
        print(upgrade(path))
    return 0


if __name__ == "__main__":
    sys.exit(main())

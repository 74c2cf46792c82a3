"""int8 quantization of a shipped model, measured: accuracy on the ccic test split (the model's own
seeded content-hash split) and onnxruntime speed, float vs int8, the same check `--quantize` applies.

Usage: .venv/bin/python scripts/train_quantize_report.py models/mobilenetv2.onnx [--ccic ../shared/data/ccic]"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crackdesk.core.metrics import binary_metrics  # noqa: E402
from crackdesk.core.models import load_model  # noqa: E402
from training.data import collect, decode_all  # noqa: E402
from training.export import ort_probabilities, session  # noqa: E402
from training.quantize import MAX_ACCURACY_DROP, images_per_second, quantize_bytes  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", type=Path)
    ap.add_argument("--ccic", type=Path, default=ROOT.parent / "shared" / "data" / "ccic")
    args = ap.parse_args()
    model = load_model(args.model)
    info, prep = model.info, model.info.preprocessing
    examples = collect([str(args.ccic)], int(info.training.get("seed", 0)), None)[0]
    _, test, _ = decode_all([e for e in examples if e.split == "test"], prep)
    _, calib, _ = decode_all([e for e in examples if e.split == "train"][::44], prep)
    y = np.array([e.label for e in examples if e.split == "test"], dtype=np.float32)
    q_session = session(quantize_bytes(args.model.read_bytes(), calib, prep))
    f_session = session(args.model.read_bytes(), threads=2)
    f = binary_metrics(y, ort_probabilities(f_session, test, prep), info.threshold)
    q = binary_metrics(y, ort_probabilities(q_session, test, prep), info.threshold)
    q_session2 = session(quantize_bytes(args.model.read_bytes(), calib, prep), threads=2)
    speed_f, speed_q = images_per_second(f_session, test, prep, repeats=10), images_per_second(q_session2, test, prep, repeats=10)
    report = {"model": str(args.model), "test_images": len(y), "float_accuracy": f["accuracy"], "int8_accuracy": q["accuracy"],
              "kept": q["accuracy"] >= f["accuracy"] - MAX_ACCURACY_DROP, "float_images_per_s": round(speed_f, 1),
              "int8_images_per_s": round(speed_q, 1), "speedup": round(speed_q / speed_f, 2)}
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Make the int8 fast path of a float CrackDesk model, measured, and refuse it when it is not as accurate:

    .venv/bin/python scripts/make_int8_model.py models/mobilenetv2.onnx --out models/mobilenetv2-int8.onnx

Static QDQ int8 (training/quantize.py), calibrated on every 44th image of the model's own training split (255
images, as scripts/train_quantize_report.py), with the final layer, the pooling before it (the `features`
output the site adaptation fits on) and the first convolution kept float32. Both graphs are measured in the
same run on the ccic test split of the model's own seeded split (accuracy, features, speed); nothing is
written when int8 loses more than --max-drop points. The file's metadata names the float original
(`quantized_from`), so retraining goes back to it. Build its own replay memory afterwards (printed at the end):
the site adaptation fits on the features of the graph that runs."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crackdesk.core.metrics import binary_metrics  # noqa: E402
from crackdesk.core.models import load_model, model_key  # noqa: E402
from training.data import collect, decode_all  # noqa: E402
from training.export import atomic_write, features_declaration, session, with_metadata  # noqa: E402
from training.memory_build import graph_outputs  # noqa: E402
from training.quantize import images_per_second, quantize_bytes  # noqa: E402

CALIBRATION_STEP = 44  # every 44th training image: 255 of 11,200


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path, help="the float CrackDesk model")
    ap.add_argument("--out", type=Path, required=True, help="the int8 model to write (e.g. models/NAME-int8.onnx)")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "ccic",
                    help="the model's training data (its split gives the calibration and test images)")
    ap.add_argument("--name", help="default: the float model's name + '-int8'")
    ap.add_argument("--version", default="1.0.0")
    ap.add_argument("--max-drop", type=float, default=0.1, help="most test accuracy points int8 may lose (0.1)")
    ap.add_argument("--speed-rounds", type=int, default=5, help="alternating float/int8 speed measurements")
    return ap.parse_args(argv)


def measured_speeds(sessions: dict, images: np.ndarray, prep, rounds: int) -> dict:
    """Images/s in batches of 32, 2 threads, the sessions alternating so that a busy neighbour slows both:
    the median of each."""
    runs = {k: [] for k in sessions}
    for _ in range(rounds):
        for key, sess in sessions.items():
            runs[key].append(images_per_second(sess, images, prep, repeats=10))
    return {k: round(float(np.median(v)), 1) for k, v in runs.items()}


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    loaded = load_model(args.model)
    info, prep = loaded.info, loaded.info.preprocessing
    if info.quantized_from:
        raise SystemExit(f"{args.model} is already an int8 model (of {info.quantized_from}); give its float original")
    seed = int((info.training or {}).get("seed", 0))
    examples = collect([str(args.data)], seed, None)[0]
    test_examples = [e for e in examples if e.split == "test"]
    _, test, bad = decode_all(test_examples, prep)
    _, calibration, bad_calibration = decode_all([e for e in examples if e.split == "train"][::CALIBRATION_STEP], prep)
    if bad or bad_calibration:
        raise SystemExit(f"unreadable: {(bad or bad_calibration)[0]}")
    y = np.array([e.label for e in test_examples], np.float32)

    float_bytes = args.model.read_bytes()
    int8_bytes = quantize_bytes(float_bytes, calibration, prep, float_first_conv=True)
    sessions = {"float": session(float_bytes, threads=2), "int8": session(int8_bytes, threads=2)}
    outputs = [o.name for o in sessions["int8"].get_outputs()]
    if info.features and info.features["output"] not in outputs:
        raise SystemExit(f"the int8 graph lost the features output (its outputs: {outputs})")
    p_float, f_float = graph_outputs(sessions["float"], test, prep)
    p_int8, f_int8 = graph_outputs(sessions["int8"], test, prep)
    metrics = {k: binary_metrics(y, p, info.threshold) for k, p in (("float", p_float), ("int8", p_int8))}
    for m in metrics.values():
        m["confusion_matrix"] = {"rows": "true no_crack, crack", "columns": "predicted no_crack, crack",
                                 "values": [[m["tn"], m["fp"]], [m["fn"], m["tp"]]]}
    drop = 100 * (metrics["float"]["accuracy"] - metrics["int8"]["accuracy"])
    cosine = np.sum(f_float * f_int8, 1) / (np.linalg.norm(f_float, axis=1) * np.linalg.norm(f_int8, axis=1) + 1e-12)
    speeds = measured_speeds(sessions, test, prep, args.speed_rounds)
    report = {
        "float_model": model_key(info), "test_images": len(y), "calibration_images": len(calibration),
        "calibration": f"every {CALIBRATION_STEP}th image of the training split (split seed {seed}), MinMax",
        "float_accuracy": metrics["float"]["accuracy"], "int8_accuracy": metrics["int8"]["accuracy"],
        "accuracy_drop_points": round(drop, 4), "kept_float": ["first convolution", "pooling and final layer"],
        "prediction_changes": int(np.sum((p_float >= info.threshold) != (p_int8 >= info.threshold))),
        "max_abs_p_difference": round(float(np.abs(p_float - p_int8).max()), 4),
        "features_cosine_median": round(float(np.median(cosine)), 4),
        "features_cosine_min": round(float(cosine.min()), 4),
        "float_images_per_s": speeds["float"], "int8_images_per_s": speeds["int8"],
        "speedup": round(speeds["int8"] / speeds["float"], 2),
        "speed": "onnxruntime CPU, 2 threads, batches of 32, median of alternating runs, the same run",
        "made_by": "scripts/make_int8_model.py",
    }
    print(json.dumps(report, indent=1))
    if drop > args.max_drop + 1e-9:
        print(f"refused: int8 loses {drop:.3f} points of test accuracy (at most {args.max_drop}); nothing written",
              file=sys.stderr)
        return 1

    name = args.name or f"{info.name}-int8"
    int8_info = replace(
        info, name=name, version=args.version, created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        description=(f"the int8 fast path of {model_key(info)} (static int8 quantization, faster on a CPU): ccic "
                     f"test accuracy {100 * metrics['int8']['accuracy']:.2f}% vs "
                     f"{100 * metrics['float']['accuracy']:.2f}% float; retraining starts from the float model"),
        metrics=metrics["int8"], features=features_declaration(int8_bytes), quantized_from=model_key(info),
        training={**info.training, "quantization": report}, path=None)
    atomic_write(with_metadata(int8_bytes, int8_info), args.out)
    written = load_model(args.out).info  # what the app will read
    assert written.quantized_from == model_key(info) and written.features == int8_info.features
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB) in {time.monotonic() - started:.0f} s; now its "
          f"replay memory:\n  scripts/build_memory.py {args.out} --data {args.data} --data-name Concrete "
          "--activations no", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

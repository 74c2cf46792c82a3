"""One training run from parsed arguments: data, model, training, threshold, export + parity, test
metrics, optional quantization, comparison with the old model, atomic write, `done` event.
Nothing is written until every check has passed."""

from __future__ import annotations

import os
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from crackdesk.core.datasets import CRACK, NO_CRACK
from crackdesk.core.errors import CrackDeskError
from crackdesk.core.metrics import best_threshold, binary_metrics
from crackdesk.core.modelformat import ModelInfo

from . import archs, export
from .data import decode_all, load_training_data
from .trainers import train_from_images, train_mobilenet

PARITY_IMAGES = 128
# Maximum epochs (early stopping usually ends sooner) and learning rates, from scratch and from a --base.
DEFAULT = {"cnn": 15, "seed-cnn": 5, "mobilenetv2": 8}
RETRAIN = {"cnn": 6, "seed-cnn": 3, "mobilenetv2": 5}
LR = {"cnn": 3e-3, "seed-cnn": 1e-3, "mobilenetv2": 1e-4}
RETRAIN_LR = {"cnn": 5e-4, "seed-cnn": 2e-4, "mobilenetv2": 5e-5}


def _metrics(y, p, threshold) -> dict:
    m = binary_metrics(y, p, threshold)
    m["confusion_matrix"] = {"rows": "true no_crack, crack", "columns": "predicted no_crack, crack",
                             "values": [[m["tn"], m["fp"]], [m["fn"], m["tp"]]]}
    return m


def _compare_old(path: Path, data, prep, reporter, cancel) -> dict:
    """The old model's metrics (its own preprocessing and threshold) on the same validation images."""
    from crackdesk.core.models import load_model

    old = load_model(path)
    images = data.images["val"]
    if old.info.preprocessing != prep:
        _, images, bad = decode_all(data.examples["val"], old.info.preprocessing, cancel)
        if bad:
            raise CrackDeskError("validation images became unreadable during training", bad[0]["path"])
    p = export.ort_probabilities(old.session, images, old.info.preprocessing, cancel=cancel)
    return binary_metrics(data.labels["val"], p, old.info.threshold)


def train(args, reporter, cancel) -> None:
    started = time.monotonic()
    from .torchvision_compat import import_torchvision

    import_torchvision()  # before anything touches torchvision (see that module)
    torch.set_num_threads(max(1, min(8, os.cpu_count() or 1)))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(args.seed)
    out = Path(args.out)
    export.check_output_location(out)

    base_info = None
    if args.base is not None:
        from crackdesk.core.models import read_model_info

        base_info = read_model_info(args.base)
        prep = base_info.preprocessing  # retraining keeps the base's preprocessing
        if args.input_size and tuple(prep.input_size) != (args.input_size, args.input_size):
            raise CrackDeskError(f"--input-size {args.input_size} differs from the base model's input size "
                                 f"{prep.input_size[0]}x{prep.input_size[1]}; retraining keeps the base's size",
                                 args.base)
    else:
        prep = archs.default_preprocessing(args.arch, args.input_size)
    if args.compare is not None:
        from crackdesk.core.models import read_model_info

        read_model_info(args.compare)  # refuse a broken comparison model now, not after training

    model = archs.build(args.arch, prep.input_size[0])
    weights_origin = None
    if base_info is not None:
        export.load_base(args.base, args.arch, model)
    elif args.arch == "mobilenetv2":
        weights_origin = archs.load_imagenet_weights(model, args.weights)

    reporter.phase("data", "reading, de-duplicating, splitting and decoding images")
    data = load_training_data(args.data, prep, args.seed, args.sample, cancel, reporter)
    classes = {CRACK: 0, NO_CRACK: 0}
    for split in data.summary["counts"].values():
        for k, v in split.items():
            classes[k] += v
    reporter.start(arch=args.arch, out=str(out), base=str(args.base) if args.base else None,
                   n_train=data.count("train"), n_val=data.count("val"), n_test=data.count("test"),
                   classes=classes, skipped=data.skipped)

    retraining = base_info is not None
    epochs = args.epochs or (RETRAIN if retraining else DEFAULT)[args.arch]
    lr = (RETRAIN_LR if retraining else LR)[args.arch]
    reporter.phase("train" if args.arch != "mobilenetv2" else "features",
                   f"training {args.arch} at {prep.input_size[0]}x{prep.input_size[1]} for up to {epochs} epochs")
    if args.arch == "mobilenetv2":
        stages, p_val = train_mobilenet(model, data, prep, epochs=epochs, lr=lr, seed=args.seed, device=device,
                                        from_base=retraining, reporter=reporter, cancel=cancel)
    else:
        stages, p_val = train_from_images(model, data, prep, epochs=epochs, lr=lr, seed=args.seed, device=device,
                                          reporter=reporter, cancel=cancel)
    model.eval()
    threshold = best_threshold(data.labels["val"], p_val)

    reporter.phase("export", "exporting to ONNX and checking onnxruntime against torch")
    onnx_bytes = export.export_bytes(model, prep)
    sess = export.session(onnx_bytes)
    parity = export.check_parity(model, sess, data.images["val"][:PARITY_IMAGES], prep)

    reporter.phase("evaluate", f"measuring the exported model on {data.count('test')} test images")
    test = _metrics(data.labels["test"], export.ort_probabilities(sess, data.images["test"], prep, cancel=cancel), threshold)
    new_val = binary_metrics(data.labels["val"], export.ort_probabilities(sess, data.images["val"], prep, cancel=cancel), threshold)

    name = args.name or (base_info.name if base_info else args.arch)
    version = args.version or (time.strftime("%Y%m%d.%H%M%S", time.gmtime()) if base_info else "1.0.0")
    training = {
        "sources": data.summary["sources"], "counts": data.summary["counts"], "split": data.summary["split"],
        "seed": args.seed, "sample": args.sample, "duplicates_removed": data.summary["duplicates_removed"],
        "label_conflicts": data.summary["label_conflicts"], "skipped": len(data.skipped),
        "epochs": epochs, "learning_rate": lr, "stages": stages, "imagenet_weights": weights_origin,
        "parity_max_abs_diff": parity, "hardware": hardware(),
    }
    info = ModelInfo(name=name, version=version, architecture=args.arch, preprocessing=prep, threshold=threshold,
                     created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                     patch_px=base_info.patch_px if base_info else 227,
                     description=args.description or f"{args.arch} crack / no crack classifier",
                     base_model=f"{base_info.name}@{base_info.version}" if base_info else None,
                     training=training, metrics=test, features=export.features_declaration(onnx_bytes))

    final_session = sess
    if args.quantize:
        final_session, onnx_bytes, info = _quantize(onnx_bytes, sess, info, data, prep, test, reporter, cancel)
        if final_session is not sess:
            test = info.metrics
            new_val = binary_metrics(data.labels["val"], export.ort_probabilities(final_session, data.images["val"], prep), threshold)

    compare_path = args.compare or args.base
    old_val = _compare_old(compare_path, data, prep, reporter, cancel) if compare_path else None
    compare = {"images": data.count("val"), "new": new_val, "old": old_val}

    info.training["seconds"] = round(time.monotonic() - started, 1)
    payload = export.with_metadata(onnx_bytes, info)
    cancel.check()
    export.atomic_write(payload, out)
    reporter.done(str(out), info.to_dict(), test, compare, time.monotonic() - started)


def hardware() -> str:
    if torch.cuda.is_available():
        return f"CUDA GPU {torch.cuda.get_device_name(0)}"
    return (f"{os.cpu_count()}-core CPU ({platform.machine()}), no GPU; torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads")


def _quantize(onnx_bytes, sess, info, data, prep, test, reporter, cancel):
    from .quantize import MAX_ACCURACY_DROP, images_per_second, quantize_bytes

    reporter.phase("quantize", "int8 quantization (kept only if test accuracy stays within 0.2 points)")
    calibration = data.images["train"][np.random.default_rng(0).permutation(data.count("train"))[:256]]
    q_bytes = quantize_bytes(onnx_bytes, calibration, prep)
    q_sess = export.session(q_bytes)
    q_test = _metrics(data.labels["test"], export.ort_probabilities(q_sess, data.images["test"], prep, cancel=cancel),
                      info.threshold)
    speed_f = images_per_second(sess, data.images["test"], prep)
    speed_q = images_per_second(q_sess, data.images["test"], prep)
    kept = q_test["accuracy"] >= test["accuracy"] - MAX_ACCURACY_DROP
    report = {"kept": kept, "float_accuracy": test["accuracy"], "int8_accuracy": q_test["accuracy"],
              "float_images_per_s": round(speed_f, 1), "int8_images_per_s": round(speed_q, 1),
              "speedup": round(speed_q / speed_f, 2)}
    info.training["quantization"] = report
    message = (f"int8 {'kept' if kept else 'discarded'}: test accuracy {100 * q_test['accuracy']:.2f}% vs float "
               f"{100 * test['accuracy']:.2f}%, {report['speedup']}x the float speed")
    if not kept:
        reporter.warning(message)
        return sess, onnx_bytes, info
    reporter.phase("quantize", message)
    return q_sess, q_bytes, replace(info, metrics=q_test)



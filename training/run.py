"""One training run from parsed arguments: data, model, rehearsal memory, training, threshold, export +
parity, test metrics, optional quantization, comparisons (validation split, retention on the memory, the
site's labels), the new model's replay memory, atomic writes, `done` event.
Nothing is written until every check has passed; the memory is written before the model, so a crash never
leaves a model without its memory."""

from __future__ import annotations

import copy
import hashlib
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from crackdesk.core.datasets import CRACK, NO_CRACK
from crackdesk.core.errors import CrackDeskError
from crackdesk.core.memory import memory_path
from crackdesk.core.metrics import best_threshold, binary_metrics
from crackdesk.core.modelformat import ModelInfo

from . import archs, export
from .compare import retention_report, site_report, validation_compare
from .data import load_training_data
from .memory_build import MemorySizes, frozen_session_for, memory_from_training
from .memory_derive import derive_memory
from .rehearsal import load_replay
from .staged import frozen_output_shape, train_staged
from .trainers import train_from_images

PARITY_IMAGES = 128
# Maximum epochs (early stopping usually ends sooner) and learning rates, from scratch and from a --base.
DEFAULT = {"cnn": 15, "seed-cnn": 5, "mobilenetv2": 8}
RETRAIN = {"cnn": 6, "seed-cnn": 3, "mobilenetv2": 5}
LR = {"cnn": 3e-3, "seed-cnn": 1e-3, "mobilenetv2": 1e-4}
RETRAIN_LR = {"cnn": 5e-4, "seed-cnn": 2e-4, "mobilenetv2": 5e-5}
# Rehearsing a memory, the CNN trains only its last two blocks: at 5e-4 it lost 0.8-1.1 points on ccic val,
# at 2e-4 0.13-0.25 (3 seeds, BENCHMARKS.md).
REHEARSE_LR = {"cnn": 2e-4, "mobilenetv2": 5e-5}
# Architectures whose memory keeps activations for deep retraining (the others: pooled features only).
DEEP_MEMORY = {"mobilenetv2", "cnn"}


def _metrics(y, p, threshold) -> dict:
    m = binary_metrics(y, p, threshold)
    m["confusion_matrix"] = {"rows": "true no_crack, crack", "columns": "predicted no_crack, crack",
                             "values": [[m["tn"], m["fp"]], [m["fn"], m["tp"]]]}
    return m


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
        if base_info.quantized_from:  # an int8 fast path: retrain its float original (models.float_original)
            from crackdesk.core.models import float_original

            original = float_original(base_info)
            reporter.phase("base", f"retraining starts from the float original {original.key} of "
                                   f"{base_info.name}@{base_info.version} ({original.path})")
            args.compare = args.compare or args.base  # compared with the model the user had
            args.base, base_info = original.path, original.info
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

    retraining = base_info is not None
    replay = None
    if retraining:  # rehearse the base's replay memory when it has one with activations
        if archs.is_staged(model):
            replay, why_not = load_replay(args.base, model, frozen_output_shape(model, prep))
        else:
            why_not = f"{args.arch} models are retrained whole: a replay memory cannot be rehearsed"
        if why_not:
            reporter.warning(why_not)
    base_model = copy.deepcopy(model).eval() if replay is not None else None

    reporter.phase("data", "reading, de-duplicating, splitting and decoding images")
    data = load_training_data(args.data, prep, args.seed, args.sample, cancel, reporter,
                              whole_workspaces=replay is not None)
    classes = {CRACK: 0, NO_CRACK: 0}
    for split in data.summary["counts"].values():
        for k, v in split.items():
            classes[k] += v
    reporter.start(arch=args.arch, out=str(out), base=str(args.base) if args.base else None,
                   n_train=data.count("train"), n_val=data.count("val"), n_test=data.count("test"),
                   classes=classes, skipped=data.skipped, memory=replay.describe() if replay else None)

    epochs = args.epochs or (RETRAIN if retraining else DEFAULT)[args.arch]
    lr = (REHEARSE_LR if replay is not None else RETRAIN_LR if retraining else LR)[args.arch]
    staged = args.arch == "mobilenetv2" or replay is not None
    reporter.phase("features" if staged else "train",
                   f"training {args.arch} at {prep.input_size[0]}x{prep.input_size[1]} for up to {epochs} epochs")
    if staged:
        stages, p_val = train_staged(model, data, prep, epochs=epochs, lr=lr, seed=args.seed, device=device,
                                     fit_head_first=not retraining, replay=replay, reporter=reporter, cancel=cancel)
    else:
        stages, p_val = train_from_images(model, data, prep, epochs=epochs, lr=lr, seed=args.seed, device=device,
                                          reporter=reporter, cancel=cancel)
    model.eval()
    # A retraining keeps its base's threshold: re-tuned on the few site images that land in validation it
    # ranged from 0.055 to 0.91 across runs (and once took concrete to 66%); the loss is class-balanced, so
    # the base's operating point stays meaningful.
    threshold = base_info.threshold if retraining else best_threshold(data.labels["val"], p_val)

    reporter.phase("export", "exporting to ONNX and checking onnxruntime against torch")
    onnx_bytes = export.export_bytes(model, prep)
    sess = export.session(onnx_bytes)
    check_images = data.images["val"] if data.count("val") else data.images["train"]
    parity = export.check_parity(model, sess, check_images[:PARITY_IMAGES], prep)

    retention = None
    if replay is not None:
        retention = retention_report(base_model, model, replay, base_info.threshold, threshold,
                                     f"{base_info.name}@{base_info.version}")
    if data.count("test"):
        reporter.phase("evaluate", f"measuring the exported model on {data.count('test')} test images")
        test = _metrics(data.labels["test"], export.ort_probabilities(sess, data.images["test"], prep, cancel=cancel),
                        threshold)
    else:  # every site label was trained on: the one untouched data is the memory's held-out part
        reporter.phase("evaluate", f"no test split (every site label is trained on): the model's metrics are "
                                   f"retention on the replay memory's {retention['images']} held-out images")
        test = {**retention["new"], "data": retention["data"]}

    name = args.name or (base_info.name if base_info else args.arch)
    version = args.version or (time.strftime("%Y%m%d.%H%M%S", time.gmtime()) if base_info else "1.0.0")
    training = {
        "sources": data.summary["sources"], "counts": data.summary["counts"], "split": data.summary["split"],
        "seed": args.seed, "sample": args.sample, "duplicates_removed": data.summary["duplicates_removed"],
        "label_conflicts": data.summary["label_conflicts"], "skipped": len(data.skipped),
        "epochs": epochs, "learning_rate": lr, "stages": stages, "imagenet_weights": weights_origin,
        "parity_max_abs_diff": parity, "hardware": hardware(),
        "threshold": "the base model's" if retraining else "chosen on the validation split",
    }
    if retention is not None:
        training["retention"] = {k: retention[k] for k in ("images", "drop_points", "data")}
        training["retention"].update(base_accuracy=retention["base"]["accuracy"],
                                     new_accuracy=retention["new"]["accuracy"])
    info = ModelInfo(name=name, version=version, architecture=args.arch, preprocessing=prep, threshold=threshold,
                     created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                     patch_px=base_info.patch_px if base_info else 227,
                     description=args.description or f"{args.arch} crack / no crack classifier",
                     base_model=f"{base_info.name}@{base_info.version}" if base_info else None,
                     training=training, metrics=test, features=export.features_declaration(onnx_bytes))

    final_session = sess
    if args.quantize and not data.count("test"):
        reporter.warning("--quantize needs a test split to check int8 against float; the model stays float32")
    elif args.quantize:
        final_session, onnx_bytes, info = _quantize(onnx_bytes, sess, info, data, prep, test, reporter, cancel)
        test = info.metrics

    compare_path = args.compare or args.base
    compare = validation_compare(compare_path, final_session, data, prep, threshold, cancel)
    site = (site_report(compare_path, final_session, data, prep, threshold, data.summary["sources"], cancel)
            if compare_path else None)

    reporter.phase("export", "writing the replay memory, then the model")
    key = f"{name}@{version}"
    if replay is not None:
        memory = derive_memory(args.base, replay, model, final_session, frozen_session_for(model, prep), prep, data,
                               [s["path"] for s in data.summary["sources"]], key, args.seed, cancel)
    else:
        sizes = MemorySizes.for_arch(args.arch)
        if args.arch not in DEEP_MEMORY:
            sizes = replace(sizes, activation_rehearse=0, activation_holdout=0)
        memory = memory_from_training(final_session, model, prep, data, sizes, args.seed, key, cancel)
    info.training["seconds"] = round(time.monotonic() - started, 1)
    payload = export.with_metadata(onnx_bytes, info)
    memory.meta["model_sha256"] = hashlib.sha256(payload).hexdigest()  # which model file this memory is for
    cancel.check()
    export.write_model_and_memory(payload, out, memory)
    reporter.done(str(out), info.to_dict(), test, compare, time.monotonic() - started, retention=retention,
                  site=site, memory=memory_summary(memory_path(out), memory))


def memory_summary(path: Path, memory) -> dict:
    """The `memory` field of the `done` event: the written memory file."""
    held = memory.holdout
    return {"path": str(path), "megabytes": round(path.stat().st_size / 1e6, 2), "rehearse": int((~held).sum()),
            "holdout": int(held.sum()), "activations": 0 if memory.activations is None else len(memory.activations)}


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



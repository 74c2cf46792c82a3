"""Things tests build for themselves: small real ONNX models and odd image files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from crackdesk.core.modelformat import METADATA_KEY, ModelInfo, write_metadata
from crackdesk.core.preprocess import Preprocessing


def tiny_info(input_size=32, **overrides) -> ModelInfo:
    fields = dict(name="tiny", version="0.1", architecture="test-contrast",
                  preprocessing=Preprocessing((input_size, input_size), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)),
                  threshold=0.5, created="2026-01-01T00:00:00Z", metrics={"accuracy": 0.5})
    fields.update(overrides)
    return ModelInfo(**fields)


def make_tiny_model(path: Path, input_size: int = 32, info: ModelInfo | None = None, metadata: bool = True,
                    output_columns: int = 1) -> Path:
    """A real ONNX graph: P(crack) = sigmoid(4 * (mean - min) - 2) over all pixels. Dark thin lines on a
    bright surface raise (mean - min); it is a contrast detector, good enough to exercise the pipeline.
    With several output columns, P(crack) is in the positive class's column and the others share 1 - P(crack),
    so a reader of the wrong column gets a different answer."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, input_size, input_size])
    y = helper.make_tensor_value_info("p_crack", TensorProto.FLOAT, ["N", output_columns])
    nodes = [
        helper.make_node("ReduceMean", ["image"], ["mean"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("ReduceMin", ["image"], ["min"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Sub", ["mean", "min"], ["spread"]),
        helper.make_node("Mul", ["spread", "k"], ["scaled"]),
        helper.make_node("Add", ["scaled", "b"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["p"]),
        helper.make_node("Unsqueeze", ["p", "axis1"], ["p1"]),
    ]
    inits = [helper.make_tensor("k", TensorProto.FLOAT, [], [4.0]),
             helper.make_tensor("b", TensorProto.FLOAT, [], [-2.0]),
             helper.make_tensor("axis1", TensorProto.INT64, [1], [1])]
    if output_columns == 1:
        nodes[-1].output[0] = "p_crack"
    else:
        positive = info.positive_index if info is not None and info.output == "softmax" else 0
        nodes += [helper.make_node("Sub", ["one", "p"], ["rest"]),
                  helper.make_node("Mul", ["rest", "share"], ["q"]),
                  helper.make_node("Unsqueeze", ["q", "axis1"], ["q1"]),
                  helper.make_node("Concat", ["p1" if k == positive else "q1" for k in range(output_columns)],
                                   ["p_crack"], axis=1)]
        inits += [helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
                  helper.make_tensor("share", TensorProto.FLOAT, [], [1.0 / (output_columns - 1)])]
    graph = helper.make_graph(nodes, "tiny", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    if metadata:
        write_metadata(model, info or tiny_info(input_size))
    onnx.save(model, str(path))
    return path


FEATURES_DIM = 6


def make_feature_model(path: Path, input_size: int = 32, info: ModelInfo | None = None) -> Path:
    """The tiny contrast detector as a model-format-2 graph with a linear head, like the shipped models:
    features [N, 6] = (mean R, mean G, mean B, min, max, mean of squares) of the normalised input, then a
    Gemm (logit = 4/3 (R + G + B) - 4 min - 2, the same P(crack) as make_tiny_model) and a Sigmoid. The
    features also tell brightness and spread apart, so a site head fitted on them can learn what the base
    head does not know."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, input_size, input_size])
    y = helper.make_tensor_value_info("p_crack", TensorProto.FLOAT, ["N", 1])
    f = helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", FEATURES_DIM])
    nodes = [
        helper.make_node("GlobalAveragePool", ["image"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["means"]),
        helper.make_node("ReduceMin", ["image"], ["min"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("ReduceMax", ["image"], ["max"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Mul", ["image", "image"], ["sq"]),
        helper.make_node("ReduceMean", ["sq"], ["msq"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Unsqueeze", ["min", "axis1"], ["min1"]),
        helper.make_node("Unsqueeze", ["max", "axis1"], ["max1"]),
        helper.make_node("Unsqueeze", ["msq", "axis1"], ["msq1"]),
        helper.make_node("Concat", ["means", "min1", "max1", "msq1"], ["pooled"], axis=1),
        helper.make_node("Gemm", ["pooled", "head.weight", "head.bias"], ["logit"], transB=1),
        helper.make_node("Sigmoid", ["logit"], ["p_crack"]),
        helper.make_node("Identity", ["pooled"], ["features"]),
    ]
    inits = [helper.make_tensor("head.weight", TensorProto.FLOAT, [1, FEATURES_DIM], [4 / 3] * 3 + [-4.0, 0.0, 0.0]),
             helper.make_tensor("head.bias", TensorProto.FLOAT, [1], [-2.0]),
             helper.make_tensor("axis1", TensorProto.INT64, [1], [1])]
    graph = helper.make_graph(nodes, "tiny-features", [x], [y, f], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    info = info or tiny_info(input_size, name="tinyf", features={"output": "features", "dim": FEATURES_DIM})
    write_metadata(model, info)
    onnx.save(model, str(path))
    return path


def set_raw_metadata(path: Path, document) -> Path:
    """Replace a model file's `crackdesk` metadata with any JSON value, or with raw text: what a hostile or
    broken file could carry, including what ModelInfo cannot hold (wrong types, NaN)."""
    import json

    import onnx

    model = onnx.load(str(path))
    props = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(props)
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, document if isinstance(document, str) else json.dumps(document)
    onnx.save(model, str(path))
    return path


def write_images(folder: Path, count: int, seed: int = 0, size=(64, 64), crack_every: int = 2,
                 tint=(1.0, 1.0, 1.0), prefix: str = "img") -> list[Path]:
    """Small synthetic images: every `crack_every`-th one has a dark diagonal line. `tint` scales the channels
    (a "site" whose surface the tiny models have not seen)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        a = (rng.normal(170, 12, (size[1], size[0], 3)) * np.asarray(tint)).clip(0, 255).astype(np.uint8)
        if i % crack_every == 0:
            for t in range(min(size)):
                a[t, t, :] = 20
        path = folder / f"{prefix}_{i:03d}.png"
        Image.fromarray(a).save(path)
        paths.append(path)
    return paths


def make_adaptable_model(folder: Path, name: str = "tinyf", **info) -> Path:
    """A model-format-2 graph with a replay memory beside it, as every shipped model has: the memory holds the
    features of grey contrast images (the base model's own world), labelled as the base model sees them.
    `info`: more metadata (e.g. `screen`)."""
    from crackdesk.core.inference import classify_all
    from crackdesk.core.memory import memory_path, save_memory

    folder.mkdir(parents=True, exist_ok=True)
    model = make_feature_model(folder / f"{name}.onnx", info=tiny_info(name=name, features={"output": "features",
                                                                                          "dim": FEATURES_DIM}, **info))
    images = write_images(folder / "memory-images", 80, seed=11, crack_every=2)
    results = classify_all(model, images)
    labels = np.array([i % 2 == 0 for i in range(len(images))], np.uint8)
    holdout = np.arange(len(images)) % 5 == 4  # both classes in each part
    save_memory(memory_path(model), np.stack([r.features for r in results]), labels, holdout,
                {"source": "tests: grey contrast images"})
    for image in images:
        image.unlink()
    (folder / "memory-images").rmdir()
    return model

def camera_exif(lat: float | None = None, lon: float | None = None, captured: str | None = None,
                make: str | None = None, model: str | None = None, alt: float | None = None,
                orientation: int | None = None, offset: str | None = None) -> Image.Exif:
    """EXIF as a camera writes it, built with Pillow's own API (independently of crackdesk.core.exif, so a
    mistake in the reader cannot be mirrored here): GPS as degrees, minutes and seconds rationals with N/S and
    E/W references, altitude with its below-sea-level flag, `captured` ('YYYY:MM:DD HH:MM:SS') both as
    DateTimeOriginal and (a minute later, as an editor would leave it) DateTime."""
    from PIL.TiffImagePlugin import IFDRational

    def dms(value: float):
        total = round(abs(value) * 3600 * 100000)  # in 1e-5 arc seconds, carried exactly
        degrees, rest = divmod(total, 3600 * 100000)
        minutes, seconds = divmod(rest, 60 * 100000)
        return IFDRational(degrees, 1), IFDRational(minutes, 1), IFDRational(seconds, 100000)

    exif = Image.Exif()
    if make is not None:
        exif[0x010F] = make
    if model is not None:
        exif[0x0110] = model
    if orientation is not None:
        exif[0x0112] = orientation
    if captured is not None:
        exif[0x0132] = captured[:14] + f"{(int(captured[14:16]) + 1) % 60:02d}" + captured[16:]
        exif.get_ifd(0x8769)[0x9003] = captured
        if offset is not None:
            exif.get_ifd(0x8769)[0x9011] = offset
    if lat is not None and lon is not None:
        gps = exif.get_ifd(0x8825)
        gps[1], gps[2] = ("N" if lat >= 0 else "S"), dms(lat)
        gps[3], gps[4] = ("E" if lon >= 0 else "W"), dms(lon)
        if alt is not None:
            gps[5], gps[6] = (b"\x01" if alt < 0 else b"\x00"), IFDRational(round(abs(alt) * 100), 100)
    return exif


def site_photo(path: Path, crack: bool, exif: Image.Exif | None = None, size=(96, 64), seed: int = 0) -> Path:
    """A small bright concrete-like photo, with a thick dark diagonal line when `crack` (what the tiny
    contrast model calls a crack), saved with `exif` in the format its suffix names."""
    rng = np.random.default_rng(seed)
    a = rng.normal(170, 8, (size[1], size[0], 3)).clip(0, 255).astype(np.uint8)
    if crack:
        for t in range(min(size)):
            a[t, max(0, t - 2):t + 3, :] = 15
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path, **({"exif": exif} if exif is not None else {}))
    return path


def with_thumbnail(exif: Image.Exif, thumbnail: Image.Image) -> bytes:
    """EXIF bytes that also carry `thumbnail` the way cameras embed one: a JPEG after IFD1, whose
    JPEGInterchangeFormat (0x0201) and length (0x0202) point to it. Pillow reads IFD1 but does not write it,
    so it is appended here by hand, IFD0's next-IFD pointer patched to it."""
    import io
    import struct

    tiff = bytearray(exif.tobytes()[6:])  # after "Exif\0\0"
    order = ">" if tiff[:2] == b"MM" else "<"
    ifd0 = struct.unpack_from(order + "I", tiff, 4)[0]
    next_at = ifd0 + 2 + 12 * struct.unpack_from(order + "H", tiff, ifd0)[0]
    assert struct.unpack_from(order + "I", tiff, next_at)[0] == 0
    buffer = io.BytesIO()
    thumbnail.convert("RGB").save(buffer, "JPEG", quality=85)
    data = buffer.getvalue()
    tiff += b"\0" * (len(tiff) % 2)
    ifd1 = len(tiff)
    struct.pack_into(order + "I", tiff, next_at, ifd1)
    tiff += struct.pack(order + "H", 2)
    tiff += struct.pack(order + "HHII", 0x0201, 4, 1, ifd1 + 2 + 2 * 12 + 4)
    tiff += struct.pack(order + "HHII", 0x0202, 4, 1, len(data))
    tiff += struct.pack(order + "I", 0) + data
    return b"Exif\0\0" + bytes(tiff)

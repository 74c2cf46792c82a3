"""What a CrackDesk model is: one ONNX file with a JSON document under the metadata key `crackdesk`.

See docs/model-format.md. `ModelInfo` is that document; `validate_graph` checks that the graph's input
and output match it. Writing the metadata needs the `onnx` package (training); reading needs only
onnxruntime, so the app never needs torch or onnx to classify.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from . import jsoncheck
from .errors import ModelError
from .jsoncheck import FieldError
from .preprocess import Preprocessing

METADATA_KEY = "crackdesk"
FORMAT_VERSION = 2  # 2: an optional second output, the penultimate features (site adaptation)
OUTPUT_KINDS = ("probability", "softmax")


@dataclass
class ModelInfo:
    name: str
    version: str
    architecture: str
    preprocessing: Preprocessing
    class_names: list[str] = field(default_factory=lambda: ["no_crack", "crack"])
    positive_class: str = "crack"
    output: str = "probability"  # one column: P(positive class); or "softmax": one column per class
    threshold: float = 0.5
    created: str = ""
    patch_px: int = 227  # side of the training patches in source pixels (the heatmap window)
    description: str = ""
    base_model: str | None = None
    training: dict = field(default_factory=dict)  # data summary: sources, counts, split, seed, epochs, time
    metrics: dict = field(default_factory=dict)  # test-split metrics: accuracy, precision, recall, f1, auc, ...
    features: dict | None = None  # {"output": name, "dim": D}: the graph's [N, D] penultimate features
    site: dict | None = None  # a site model: where its head was adapted, on how many labels, how well
    quantized_from: str | None = None  # an int8 fast path: the key (name@version) of the float model it quantizes
    screen: dict | None = None  # {"model": key, "below": p}: windows the screening model puts below p skip this one
    path: Path | None = None  # where it was loaded from; not stored in the file

    @property
    def positive_index(self) -> int:
        return self.class_names.index(self.positive_class)

    def to_dict(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "version": self.version,
            "architecture": self.architecture,
            "preprocessing": self.preprocessing.to_dict(),
            "class_names": list(self.class_names),
            "positive_class": self.positive_class,
            "output": self.output,
            "threshold": float(self.threshold),
            "created": self.created,
            "patch_px": int(self.patch_px),
            "description": self.description,
            "base_model": self.base_model,
            "training": self.training,
            "metrics": self.metrics,
            "features": self.features,
            "site": self.site,
            "quantized_from": self.quantized_from,
            "screen": self.screen,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, path: str | Path | None = None) -> "ModelInfo":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ModelError(f"the '{METADATA_KEY}' metadata is not valid JSON ({e})", path) from None
        except RecursionError:  # nested deeper than Python's parser goes: no real model is
            raise ModelError(f"the '{METADATA_KEY}' metadata is nested too deeply", path) from None
        return cls.from_dict(d, path)

    @classmethod
    def from_dict(cls, d: dict, path: str | Path | None = None) -> "ModelInfo":
        """The metadata document with every field checked (docs/model-format.md, "Validation when loading");
        a ModelError names the file and the field. Keys this version does not know are ignored."""
        if not isinstance(d, dict):
            raise ModelError(f"the '{METADATA_KEY}' metadata must be a JSON object", path)
        try:
            version = jsoncheck.integer(d.get("format_version"), "format_version", 1)
            if version > FORMAT_VERSION:
                raise ModelError(f"model format version {version} is newer than this CrackDesk understands "
                                 f"({FORMAT_VERSION}); update CrackDesk to use it", path)
            missing = [k for k in REQUIRED if not d.get(k)]
            if missing:
                raise ModelError(f"the metadata lacks {', '.join(missing)}", path)
            return cls(path=Path(path) if path is not None else None, **read_fields(d))
        except FieldError as e:
            raise ModelError(f"metadata field {e}", path) from None


REQUIRED = ("name", "version", "architecture", "preprocessing")
COUNT_METRICS = ("n", "tp", "fp", "tn", "fn")
RATE_METRICS = ("accuracy", "precision", "recall", "f1", "auc", "threshold")


def read_fields(d: dict) -> dict:
    """ModelInfo's fields from a metadata document, each checked for type and range (FieldError names the
    first bad one). An absent optional key takes its default; a present one must be valid (null only for
    base_model, features, site, quantized_from, screen). A new key is one more line here."""
    def optional(key, default):
        return d[key] if key in d else default

    class_names, positive = read_classes(optional("class_names", ["no_crack", "crack"]),
                                         optional("positive_class", "crack"))
    base_model = optional("base_model", None)
    quantized_from = optional("quantized_from", None)
    return dict(
        name=jsoncheck.identifier(d["name"], "name"),
        version=jsoncheck.identifier(d["version"], "version"),
        architecture=jsoncheck.identifier(d["architecture"], "architecture"),
        preprocessing=Preprocessing.from_dict(d["preprocessing"]),
        class_names=class_names,
        positive_class=positive,
        output=jsoncheck.one_of(optional("output", "probability"), "output", OUTPUT_KINDS),
        threshold=jsoncheck.number(optional("threshold", 0.5), "threshold", 0, 1, exclusive=True),
        created=jsoncheck.text(optional("created", ""), "created"),
        # the heatmap window in source pixels: below 8 the tiles number in the millions (a hang)
        patch_px=jsoncheck.integer(optional("patch_px", 227), "patch_px", 8, 4096),
        description=jsoncheck.text(optional("description", ""), "description"),
        base_model=None if base_model is None else jsoncheck.text(base_model, "base_model"),
        training=jsoncheck.json_object(optional("training", {}), "training"),
        metrics=read_metrics(optional("metrics", {})),
        features=read_features(optional("features", None)),
        site=None if optional("site", None) is None else jsoncheck.json_object(d["site"], "site"),
        quantized_from=None if quantized_from is None else jsoncheck.model_key(quantized_from, "quantized_from"),
        screen=read_screen(optional("screen", None)),
    )


def read_screen(value) -> dict | None:
    """Which cheaper model screens a large photo's windows, and below which of its P(crack) a window is settled
    by it alone: below 0.5, or the screen would decide windows the model itself calls cracked."""
    if value is None:
        return None
    screen = jsoncheck.json_object(value, "screen")
    return {"model": jsoncheck.model_key(screen.get("model"), "screen.model"),
            "below": jsoncheck.number(screen.get("below"), "screen.below", 0, 0.5, exclusive=True)}


def read_features(value) -> dict | None:
    """Which graph output holds the penultimate features, and their width (format version 2)."""
    if value is None:
        return None
    features = jsoncheck.json_object(value, "features")
    return {"output": jsoncheck.identifier(features.get("output"), "features.output"),
            "dim": jsoncheck.integer(features.get("dim"), "features.dim", 1, 65536)}


def read_classes(class_names, positive) -> tuple[list[str], str]:
    if not (isinstance(class_names, list) and 2 <= len(class_names) <= 1000):
        raise FieldError("class_names", f"must list 2 to 1000 class names, got {jsoncheck.shown(class_names)}")
    for i, name in enumerate(class_names):
        if not (isinstance(name, str) and 1 <= len(name) <= 100):
            raise FieldError(f"class_names[{i}]", f"must be a name of 1 to 100 characters, got {jsoncheck.shown(name)}")
    if len(set(class_names)) != len(class_names):
        raise FieldError("class_names", f"must not repeat a name, got {jsoncheck.shown(class_names)}")
    if not (isinstance(positive, str) and positive in class_names):
        raise FieldError("positive_class", f"must be one of class_names {class_names}, got {jsoncheck.shown(positive)}")
    return list(class_names), positive


def read_metrics(value) -> dict:
    """The metrics the app shows are numbers of their kind (or null, as auc is with one class only)."""
    metrics = jsoncheck.json_object(value, "metrics")
    for key in RATE_METRICS:
        if metrics.get(key) is not None:
            jsoncheck.number(metrics[key], f"metrics.{key}", 0, 1)
    for key in COUNT_METRICS:
        if metrics.get(key) is not None:
            jsoncheck.integer(metrics[key], f"metrics.{key}", 0)
    return metrics


def validate_graph(info: ModelInfo, inputs, outputs, path=None) -> None:
    """Check an onnxruntime session's inputs/outputs (NodeArg lists) against the metadata."""
    if len(inputs) != 1:
        raise ModelError(f"the graph must have exactly one input, it has {len(inputs)}", path)
    inp = inputs[0]
    if inp.type != "tensor(float)":
        raise ModelError(f"the input '{inp.name}' must be float32, it is {inp.type}", path)
    shape = list(inp.shape)
    if len(shape) != 4:
        raise ModelError(f"the input must be NCHW (4 dimensions), its shape is {shape}", path)
    h, w = info.preprocessing.input_size
    for got, want, what in ((shape[1], 3, "channels"), (shape[2], h, "height"), (shape[3], w, "width")):
        if isinstance(got, int) and got != want:
            raise ModelError(f"the input's {what} is {got} but the metadata says {want}", path)
    if len(outputs) < 1:
        raise ModelError("the graph has no output", path)
    out = outputs[0]
    if out.type != "tensor(float)":
        raise ModelError(f"the output '{out.name}' must be float32, it is {out.type}", path)
    oshape = list(out.shape)
    columns = oshape[1] if len(oshape) == 2 else (1 if len(oshape) == 1 else None)
    if columns is None:
        raise ModelError(f"the output must have shape [N] or [N, C], it is {oshape}", path)
    want_cols = 1 if info.output == "probability" else len(info.class_names)
    if isinstance(columns, int) and columns != want_cols:
        raise ModelError(f"the output has {columns} columns but output '{info.output}' needs {want_cols}", path)
    if info.features is not None:
        named = {o.name: o for o in outputs[1:]}
        feats = named.get(info.features["output"])
        if feats is None:
            raise ModelError(f"the metadata declares a features output '{info.features['output']}' that the graph "
                             f"does not have (its outputs: {', '.join(o.name for o in outputs)})", path)
        fshape = list(feats.shape)
        if feats.type != "tensor(float)" or len(fshape) != 2 or \
                (isinstance(fshape[1], int) and fshape[1] != info.features["dim"]):
            raise ModelError(f"the features output must be float32 [N, {info.features['dim']}], it is "
                             f"{feats.type} {fshape}", path)


def write_metadata(onnx_model, info: ModelInfo) -> None:
    """Set the `crackdesk` metadata on an in-memory `onnx.ModelProto` (replacing any old value)."""
    props = [p for p in onnx_model.metadata_props if p.key != METADATA_KEY]
    del onnx_model.metadata_props[:]
    onnx_model.metadata_props.extend(props)
    entry = onnx_model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, info.to_json()


def peek_name(path: str | Path) -> tuple[str, str] | None:
    """The (name, version) in an ONNX file's `crackdesk` metadata, read from the file's top-level protobuf fields
    alone (the graph skipped by its length): well under a millisecond, against 10-20 ms for the onnxruntime
    session `models.read_model_info` opens. Only for telling which of several files is the one wanted; it checks
    nothing else, and None means "not known" (unreadable, truncated, no such entry): read the file properly."""
    try:
        if not os.path.isfile(path):  # a pipe named .onnx would block the open; a folder or device is not a model
            return None
        with open(path, "rb") as f:
            end = os.fstat(f.fileno()).st_size
            while f.tell() < end:
                tag = _varint(f)
                number, wire = tag >> 3, tag & 7
                if wire == 2:
                    length = _varint(f)
                    if number == 14 and length < 1 << 24:  # ModelProto.metadata_props: {1: key, 2: value}
                        entry = _fields(f.read(length))
                        if entry.get(1) == METADATA_KEY.encode():
                            d = json.loads(entry.get(2, b""))
                            return str(d["name"]), str(d["version"])
                    else:
                        f.seek(length, os.SEEK_CUR)
                elif wire == 0:
                    _varint(f)
                elif wire in (1, 5):  # fixed64, fixed32
                    f.seek(8 if wire == 1 else 4, os.SEEK_CUR)
                else:
                    return None
    except (OSError, ValueError, KeyError, TypeError, RecursionError):  # JSONDecodeError and UnicodeError too
        return None
    return None


def _varint(f) -> int:
    value = shift = 0
    while True:
        byte = f.read(1)
        if not byte or shift > 63:
            raise ValueError("truncated varint")
        value |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return value
        shift += 7


def _fields(data: bytes) -> dict[int, bytes]:
    """The length-delimited fields of a small message (a metadata entry's key and value)."""
    f, out = io.BytesIO(data), {}
    while f.tell() < len(data):
        tag = _varint(f)
        if tag & 7 != 2:
            raise ValueError("not a string field")
        out[tag >> 3] = f.read(_varint(f))
    return out

"""What a CrackDesk model is: one ONNX file with a JSON document under the metadata key `crackdesk`.

See docs/model-format.md. `ModelInfo` is that document; `validate_graph` checks that the graph's input
and output match it. Writing the metadata needs the `onnx` package (training); reading needs only
onnxruntime, so the app never needs torch or onnx to classify.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ModelError
from .preprocess import Preprocessing

METADATA_KEY = "crackdesk"
FORMAT_VERSION = 1
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
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, path: str | Path | None = None) -> "ModelInfo":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ModelError(f"the '{METADATA_KEY}' metadata is not valid JSON ({e})", path) from None
        return cls.from_dict(d, path)

    @classmethod
    def from_dict(cls, d: dict, path: str | Path | None = None) -> "ModelInfo":
        def fail(msg: str):
            raise ModelError(msg, path)

        if not isinstance(d, dict):
            fail(f"the '{METADATA_KEY}' metadata must be a JSON object")
        version = d.get("format_version")
        if not isinstance(version, int):
            fail("the metadata has no integer 'format_version'")
        if version > FORMAT_VERSION:
            fail(f"model format version {version} is newer than this CrackDesk understands "
                 f"({FORMAT_VERSION}); update CrackDesk to use it")
        missing = [k for k in ("name", "version", "architecture", "preprocessing") if not d.get(k)]
        if missing:
            fail(f"the metadata lacks {', '.join(missing)}")
        try:
            pre = Preprocessing.from_dict(d["preprocessing"])
        except (KeyError, TypeError, ValueError) as e:
            fail(f"bad preprocessing in metadata: {e}")
        classes = d.get("class_names", ["no_crack", "crack"])
        positive = d.get("positive_class", "crack")
        if not (isinstance(classes, list) and len(classes) >= 2 and all(isinstance(c, str) for c in classes)):
            fail("class_names must list at least two class names")
        if positive not in classes:
            fail(f"positive_class {positive!r} is not one of class_names {classes}")
        output = d.get("output", "probability")
        if output not in OUTPUT_KINDS:
            fail(f"output must be one of {OUTPUT_KINDS}, not {output!r}")
        try:
            threshold = float(d.get("threshold", 0.5))
        except (TypeError, ValueError):
            fail("threshold must be a number")
        if not 0.0 < threshold < 1.0:
            fail(f"threshold must lie strictly between 0 and 1, got {threshold}")
        return cls(
            name=str(d["name"]), version=str(d["version"]), architecture=str(d["architecture"]),
            preprocessing=pre, class_names=classes, positive_class=positive, output=output,
            threshold=threshold, created=str(d.get("created", "")), patch_px=int(d.get("patch_px", 227)),
            description=str(d.get("description", "")), base_model=d.get("base_model"),
            training=dict(d.get("training") or {}), metrics=dict(d.get("metrics") or {}),
            path=Path(path) if path is not None else None,
        )


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


def write_metadata(onnx_model, info: ModelInfo) -> None:
    """Set the `crackdesk` metadata on an in-memory `onnx.ModelProto` (replacing any old value)."""
    props = [p for p in onnx_model.metadata_props if p.key != METADATA_KEY]
    del onnx_model.metadata_props[:]
    onnx_model.metadata_props.extend(props)
    entry = onnx_model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, info.to_json()

"""The retrain dialog's form (mixed into RetrainDialog): where training starts from, what it rehearses, and the
`crackdesk train` command line the choices make."""

from __future__ import annotations

import os
import time

from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QGridLayout, QGroupBox, QHBoxLayout, QLabel,
                               QLineEdit, QPushButton, QSpinBox, QWidget)

from ..core.errors import ModelError
from ..core.memory import summarize_memory
from ..core.models import float_original
from ..core.paths import user_models_dir
from ..core.selfcommand import crackdesk_command
from ..core.workspace_location import default_workspace_path
from . import theme

ARCHITECTURES = {"cnn": "Custom CNN (fast)", "seed-cnn": "Seed CNN", "mobilenetv2": "MobileNetV2 (ImageNet)"}


class RetrainForm:
    """Uses the dialog's ws, registry, active and out_path."""

    # -- the form ---------------------------------------------------------------------------------
    def _build_form(self) -> QWidget:
        box = QGroupBox("Training")
        form = QGridLayout(box)  # two fields a row: eight rows one under the other made the dialog too tall
        self.base = QComboBox()
        self.base.addItem("From scratch", None)
        for entry in self.registry.entries():
            self.base.addItem(f"{entry.info.name} {entry.info.version} ({entry.info.architecture})", entry)
        if self.active is not None:
            keys = [self.base.itemData(i).key if self.base.itemData(i) else None for i in range(self.base.count())]
            if self.active.key in keys:
                self.base.setCurrentIndex(keys.index(self.active.key))
        self.base.currentIndexChanged.connect(self._base_changed)
        self.arch = QComboBox()
        for key, text in ARCHITECTURES.items():
            self.arch.addItem(text, key)
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 200)
        self.epochs.setValue(5)
        self.input_size = QSpinBox()
        self.input_size.setRange(0, 512)
        self.input_size.setSingleStep(16)
        self.input_size.setSpecialValueText("default")
        self.input_size.setToolTip("Side of the square input in pixels. Default: 96 for the CNN, 160 for MobileNetV2; "
                                   "retraining keeps the starting model's size.")
        labels = self.ws.labeled_files()
        crack = sum(1 for f in labels if f.label == "crack")
        self.data_note = QLabel(f"This folder's human labels: <b>{len(labels):,}</b> images "
                                f"(<span style='color:{theme.CRACK.name()}'>{crack:,} crack</span>, "
                                f"<span style='color:{theme.NO_CRACK.name()}'>{len(labels) - crack:,} no crack</span>)")
        self.memory_note = QLabel()
        self.memory_note.setWordWrap(True)
        self.use_dataset = QCheckBox("Also train on")  # off by default: a memory rehearses the model's own data
        self.dataset = QLineEdit()
        self.dataset.setPlaceholderText("a dataset folder with Positive/ and Negative/")
        browse = QPushButton("Browse…")
        browse.setAutoDefault(False)
        browse.clicked.connect(self._browse)
        self.sample = QSpinBox()
        self.sample.setRange(0, 1_000_000)
        self.sample.setSingleStep(500)
        self.sample.setValue(2000)
        self.sample.setSpecialValueText("all")
        row = QHBoxLayout()
        row.addWidget(self.use_dataset)
        row.addWidget(self.dataset, 1)
        row.addWidget(browse)
        row.addWidget(QLabel("at most"))
        row.addWidget(self.sample)
        row.addWidget(QLabel("images"))
        self.name = QLineEdit()
        self.name.setPlaceholderText("default: the starting model's name, or the architecture")
        for r, (left, right) in enumerate(((("Start from", self.base), ("Architecture", self.arch)),
                                            (("Epochs", self.epochs), ("Input size (px)", self.input_size)),
                                            (("Name", self.name), ("Data", self.data_note)))):
            for c, (text, field) in enumerate((left, right)):
                form.addWidget(QLabel(text), r, 2 * c)
                form.addWidget(field, r, 2 * c + 1)
        form.addWidget(QLabel("Rehearses"), 3, 0)
        form.addWidget(self.memory_note, 3, 1, 1, 3)
        form.addWidget(self._wrap(row), 4, 1, 1, 3)
        form.setColumnStretch(1, 1)
        form.setColumnStretch(3, 1)
        self._base_changed()
        self.form_box = box
        return box

    @staticmethod
    def _wrap(layout) -> QWidget:
        w = QWidget()
        layout.setContentsMargins(0, 0, 0, 0)
        w.setLayout(layout)
        return w

    def _memory_text(self, entry) -> str:
        """What the starting model's replay memory lets this retraining do, shown before it starts."""
        if entry is None:
            return "Nothing: training from scratch learns this folder's labels (and the dataset, if given) only."
        if entry.info.quantized_from:  # an int8 fast path: training starts from its float original
            try:
                original = float_original(entry.info, self.registry)
            except ModelError as e:
                return f"<span style='color:{theme.CRACK.name()}'>{e.reason}</span>"
            return (f"Starts from the float original {original.info.name} {original.info.version} of "
                    f"{entry.info.name}. " + self._memory_text(original))
        try:
            memory = summarize_memory(entry.path)
        except ModelError as e:
            return f"<span style='color:{theme.CRACK.name()}'>Its replay memory is unusable: {e.reason}</span>"
        if memory is None or not memory.activations:
            why = "has no replay memory" if memory is None else "has a replay memory of pooled features only"
            return (f"<span style='color:{theme.CRACK.name()}'>Nothing: {entry.info.name} {why}, so retraining on "
                    f"this folder alone may make it forget what it knew. Add a dataset of its original data "
                    f"below.</span>")
        rehearse = memory.rehearse
        return (f"{entry.info.name}'s replay memory: {rehearse:,} images of {memory.data_name} to rehearse and "
                f"{memory.holdout:,} held out to measure what it keeps ({memory.megabytes:.0f} MB). "
                f"No dataset folder needed; every label of this folder is trained on.")

    def _base_changed(self, _=None) -> None:
        entry = self.base.currentData()
        if entry is not None:
            index = self.arch.findData(entry.info.architecture)
            if index >= 0:
                self.arch.setCurrentIndex(index)
        self.memory_note.setText(self._memory_text(entry))
        self.arch.setEnabled(entry is None)  # retraining keeps the starting model's architecture
        if entry is not None:
            self.input_size.setValue(0)  # ... and its input size
        self.input_size.setEnabled(entry is None)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Dataset folder with Positive/ and Negative/")
        if folder:
            self.dataset.setText(folder)
            self.use_dataset.setChecked(True)

    def command(self) -> list[str]:
        base = self.base.currentData()
        arch = self.arch.currentData()
        name = self.name.text().strip() or (self._trained_name(base) if base else arch)
        version = time.strftime("%Y.%m.%d-%H%M%S")
        self.out_path = user_models_dir() / f"{name}-{version}.onnx"
        data = [str(self.ws.folder) if self.ws.db_path == default_workspace_path(self.ws.folder)
                else str(self.ws.db_path)]
        args = ["train", *data]
        if self.use_dataset.isChecked() and self.dataset.text().strip():
            args.append(self.dataset.text().strip())
            if self.sample.value():
                args += ["--sample", str(self.sample.value())]
        args += ["--arch", arch, "--out", str(self.out_path), "--epochs", str(self.epochs.value()),
                 "--events", "--name", name, "--version", version]
        if base is not None:
            args += ["--base", str(base.path)]
        if self.active is not None and self.active.path:
            args += ["--compare", str(self.active.path)]
        if self.input_size.value():
            args += ["--input-size", str(self.input_size.value())]
        weights = os.environ.get("CRACKDESK_MOBILENET_WEIGHTS")
        if arch == "mobilenetv2" and weights:
            args += ["--weights", weights]
        return crackdesk_command(*args)

    def _trained_name(self, base) -> str:
        """The retrained model is a float model: named after the float original of an int8 base."""
        if base.info.quantized_from:
            return base.info.quantized_from.split("@")[0]
        return base.info.name

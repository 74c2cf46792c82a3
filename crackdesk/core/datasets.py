"""Class-folder datasets: a folder with one sub-folder per class (`Positive/`, `Negative/` and synonyms),
the layout torchvision's ImageFolder and Keras read. Used by `evaluate`, training and label import/export."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import DatasetError
from .scan import scan_folder

CRACK, NO_CRACK = "crack", "no_crack"
LABELS = (NO_CRACK, CRACK)

# Folder names (case-insensitive; '-', ' ' and '_' ignored) that mean each class.
FOLDER_SYNONYMS = {
    CRACK: {"positive", "pos", "crack", "cracks", "cracked", "withcrack", "withcracks", "defect", "1", "yes"},
    NO_CRACK: {"negative", "neg", "nocrack", "nocracks", "notcrack", "noncrack", "uncracked", "notcracked",
               "withoutcrack", "intact", "clean", "0", "no"},
}
EXPORT_FOLDERS = {CRACK: "Positive", NO_CRACK: "Negative"}


def label_of_folder(name: str) -> str | None:
    key = name.lower().replace("-", "").replace("_", "").replace(" ", "")
    for label, names in FOLDER_SYNONYMS.items():
        if key in names:
            return label
    return None


@dataclass(frozen=True)
class LabeledFile:
    path: Path
    label: str  # CRACK or NO_CRACK


def class_folders(root: str | Path) -> dict[str, list[Path]]:
    """The class sub-folders of `root`, by label. Raises DatasetError if there are none."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError("not a folder", root)
    found: dict[str, list[Path]] = {CRACK: [], NO_CRACK: []}
    for child in sorted(root.iterdir()):
        if child.is_dir():
            label = label_of_folder(child.name)
            if label:
                found[label].append(child)
    if not found[CRACK] and not found[NO_CRACK]:
        raise DatasetError("no class folders found: expected sub-folders such as Positive/ and Negative/ "
                           "(or crack/ and no_crack/, cracked/ and uncracked/)", root)
    return found


def load_class_folders(root: str | Path) -> list[LabeledFile]:
    """Every image below the class folders of `root`, with its label, in a deterministic order."""
    files = []
    for label, folders in class_folders(root).items():
        for folder in folders:
            files.extend(LabeledFile(folder / f.relpath, label) for f in scan_folder(folder))
    if not files:
        raise DatasetError("the class folders contain no images", root)
    return files

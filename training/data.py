"""Training data: sources (class folders, workspaces), content-hash dedupe, the seeded stratified split,
optional sampling, and decoding every image once into an in-RAM uint8 cache at the model's input size.

The split is by content hash: within each source and class, images are ordered by a keyed hash of
(seed, file hash) and the first 15% go to test, the next 15% to validation, the rest to training. The same
seed and source therefore always give the same split, whatever else is trained alongside; `--sample`
keeps each image's split, so a sample of the original data never puts its test images into training.
"""

from __future__ import annotations

import functools
import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from crackdesk.core.datasets import CRACK, NO_CRACK, load_class_folders
from crackdesk.core.errors import CrackDeskError, DatasetError
from crackdesk.core.hashing import file_hash
from crackdesk.core.images import load_rgb
from crackdesk.core.preprocess import Preprocessing
from crackdesk.core.tiling import load_for_heatmap, tile_patch

VAL_FRACTION = 0.15
TEST_FRACTION = 0.15
MIN_PER_CLASS = 5  # fewer cannot give every split an image of each class
SPLITS = ("train", "val", "test")


@dataclass
class Example:
    path: Path
    label: int  # 1 = crack
    hash: str
    source: str
    split: str = "train"
    box: tuple[int, int, int, int] | None = None  # a labelled tile of a large photo: (x, y, w, h)
    group: str = ""  # what the split is keyed on: the photo's hash, so its tiles stay on one side

    @property
    def split_key(self) -> str:
        return self.group or self.hash


@dataclass
class Source:
    name: str
    kind: str  # "folders" or "workspace"
    files: list  # LabeledFile
    tiles: list = field(default_factory=list)  # (photo path, (x, y, w, h), label): tile corrections
    skipped: list = field(default_factory=list)  # (stored path, reason): never read


@dataclass
class TrainingData:
    """Decoded images per split (NHWC uint8), labels, and what was used and skipped."""

    images: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    examples: dict[str, list[Example]]
    skipped: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)

    def count(self, split: str) -> int:
        return len(self.labels[split])


def workspace_db(path: Path) -> tuple[Path, Path] | None:
    """(image folder, database) when `path` is a workspace file or a folder that has a workspace:
    `<folder>/.crackdesk/workspace.sqlite`, or the fallback in the user's data directory that the app
    uses for folders it cannot write to."""
    if path.is_file() and path.suffix.lower() == ".sqlite":
        folder = path.parent.parent if path.parent.name == ".crackdesk" else path.parent
        return folder, path
    if path.is_dir():
        from crackdesk.core.workspace_location import default_workspace_path

        for db in (path / ".crackdesk" / "workspace.sqlite", default_workspace_path(path)):
            if db.is_file():
                return path, db
    return None


def resolve_source(arg: str | Path) -> Source:
    path = Path(arg)
    if not path.exists():
        raise DatasetError("no such file or folder", path)
    found = workspace_db(path)
    if found is not None:
        from crackdesk.core.store import Workspace

        skipped: list = []
        with Workspace(found[0], found[1]) as workspace:
            files = workspace.labeled_files(skipped)  # paths outside the folder are skipped, never read
            tiles = workspace.labeled_tiles(skipped)
        if files or tiles or not path.is_dir():
            if not files and not tiles:
                raise DatasetError("the workspace has no labelled images", path)
            if not any(Path(f).exists() for f in [f.path for f in files] + [t[0] for t in tiles]):
                raise DatasetError(f"none of the workspace's labelled images are in {found[0]}; give the image "
                                   "folder itself as DATA", path)
            return Source(str(path), "workspace", files, tiles, skipped)
    return Source(str(path), "folders", load_class_folders(path))  # raises DatasetError when empty


def keyed(seed: int, digest: str, purpose: str = "split") -> int:
    return int.from_bytes(hashlib.blake2b(f"{purpose}:{seed}:{digest}".encode(), digest_size=8).digest(), "big")


def assign_splits(examples: list[Example], seed: int) -> None:
    """Stratified by (source, class); rank by keyed hash; tiny groups go wholly to training."""
    groups: dict[tuple[str, int], list[Example]] = {}
    for ex in examples:
        groups.setdefault((ex.source, ex.label), []).append(ex)
    for group in groups.values():
        group.sort(key=lambda ex: keyed(seed, ex.split_key))
        keys = list(dict.fromkeys(ex.split_key for ex in group))  # photos (or images) in keyed order
        n = len(keys)
        n_test = max(1, round(n * TEST_FRACTION)) if n >= 3 else 0
        n_val = max(1, round(n * VAL_FRACTION)) if n >= 3 else 0
        rank = {key: i for i, key in enumerate(keys)}
        for ex in group:
            i = rank[ex.split_key]
            ex.split = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    # A photo with labelled tiles holds both classes, so stratifying by class would split it: its tiles
    # (and its own whole-image label) take a split decided by the photo's keyed hash alone.
    photos = {ex.group for ex in examples if ex.group}
    for ex in examples:
        if ex.split_key in photos:
            fraction = keyed(seed, ex.split_key) / 2**64
            ex.split = ("test" if fraction < TEST_FRACTION else
                        "val" if fraction < TEST_FRACTION + VAL_FRACTION else "train")


def sample_source(examples: list[Example], n: int, seed: int) -> list[Example]:
    """At most n examples, stratified by class, chosen by a seeded keyed hash (their split unchanged)."""
    if n <= 0 or len(examples) <= n:
        return examples
    chosen = []
    for label in (0, 1):
        members = sorted((ex for ex in examples if ex.label == label), key=lambda ex: keyed(seed, ex.hash, "sample"))
        quota = round(n * len(members) / len(examples))
        chosen.extend(members[:quota])
    return chosen


def collect(args: list[str], seed: int, sample: int | None, cancel=None, reporter=None,
            whole_workspaces: bool = False) -> tuple[list[Example], list[dict], dict]:
    """Examples with splits from every DATA argument, duplicates removed; (examples, skipped, summary).
    whole_workspaces: every workspace example goes to training (a retraining that rehearses a replay memory
    validates on the memory: holding back a third of a site's few corrections would waste them)."""
    sources = [resolve_source(a) for a in args]
    skipped: list[dict] = []
    by_hash: dict[str, Example] = {}
    duplicates = conflicts = 0
    per_source: list[tuple[Source, list[Example]]] = []
    total = sum(len(s.files) + len(s.tiles) for s in sources)
    done = 0
    for source in sources:
        skipped.extend({"path": p, "reason": reason} for p, reason in source.skipped)
        kept = []
        for f in source.files:
            done += 1
            if cancel is not None and done % 256 == 0:
                cancel.check()
                if reporter:
                    reporter.progress("data", done, total)
            try:
                digest = file_hash(f.path)
            except CrackDeskError as e:
                skipped.append({"path": str(f.path), "reason": e.reason})
                continue
            ex = Example(Path(f.path), 1 if f.label == CRACK else 0, digest, source.name)
            old = by_hash.get(digest)
            if old is not None:
                duplicates += 1
                if old.label != ex.label and source.kind == "workspace":
                    old.label = ex.label  # a human correction outranks a folder label
                    conflicts += 1
                continue
            by_hash[digest] = ex
            kept.append(ex)
        kept.extend(_tile_examples(source, skipped))
        per_source.append((source, kept))
    examples, used = [], []
    for source, kept in per_source:
        assign_splits(kept, seed)  # on the whole source, before sampling: the sample keeps the split
        if whole_workspaces and source.kind == "workspace":
            for ex in kept:
                ex.split = "train"
        if sample and source.kind == "folders":
            kept = sample_source(kept, sample, seed)
        examples.extend(kept)
        used.append({"path": source.name, "kind": source.kind, "found": len(source.files), "used": len(kept)})
    summary = {
        "sources": used,
        "duplicates_removed": duplicates, "label_conflicts": conflicts, "sample": sample,
    }
    return examples, skipped, summary


def _tile_examples(source: Source, skipped: list[dict]) -> list[Example]:
    """Labelled tiles of large photos as examples; each keeps its box and is split with its photo."""
    photo_hashes: dict[Path, str] = {}
    examples = []
    for path, box, label in source.tiles:
        path = Path(path)
        try:
            if path not in photo_hashes:
                photo_hashes[path] = file_hash(path)
        except CrackDeskError as e:
            skipped.append({"path": str(path), "reason": e.reason})
            continue
        photo = photo_hashes[path]
        examples.append(Example(path, 1 if label == CRACK else 0, f"{photo}#{','.join(map(str, box))}",
                                source.name, box=tuple(box), group=photo))
    return examples


def check_splittable(examples: list[Example], where: str) -> None:
    counts = {label: sum(ex.label == label for ex in examples) for label in (0, 1)}
    names = {1: CRACK, 0: NO_CRACK}
    if min(counts.values()) == 0:
        only = names[1] if counts[1] else names[0]
        raise DatasetError(f"only one class ({only}, {max(counts.values())} images): training needs "
                           f"images of both crack and no_crack", where)
    if min(counts.values()) < MIN_PER_CLASS:
        raise DatasetError(f"too few images to split into training, validation and test: need at least "
                           f"{MIN_PER_CLASS} of each class, got {counts[1]} crack and {counts[0]} no_crack", where)
    for split in ("val", "test"):
        have = {ex.label for ex in examples if ex.split == split}
        if have != {0, 1}:
            raise DatasetError(f"too few images to split: the {split} split would lack a class "
                               f"(add images of both classes)", where)


@functools.lru_cache(maxsize=4)
def _decoded_photo(path: Path):
    """A large photo decoded once for all its labelled tiles (they sit next to each other in the examples);
    a few photos of ~36 MB each at most."""
    return load_for_heatmap(path)


def _decode_one(prep: Preprocessing, ex: Example):
    try:
        if ex.box is not None:  # cut as the heatmap cuts it: a full-resolution crop, then the preprocessing
            return prep.to_uint8(tile_patch(ex.path, ex.box, _decoded_photo(ex.path))), None
        return prep.to_uint8(load_rgb(ex.path, draft_size=prep.input_size[::-1])), None
    except CrackDeskError as e:
        return None, e.reason
    except (OSError, ValueError) as e:
        return None, f"cannot decode ({e})"


def decode_all(examples: list[Example], prep: Preprocessing, cancel=None, reporter=None, workers: int = 2):
    """Decode every image once (threads: Pillow releases the GIL). Returns (kept examples, array, skipped)."""
    h, w = prep.input_size
    out = np.empty((len(examples), h, w, 3), dtype=np.uint8)
    keep = np.zeros(len(examples), dtype=bool)
    skipped = []
    chunk = 256
    with ThreadPoolExecutor(workers) as pool:
        for start in range(0, len(examples), chunk):
            if cancel is not None:
                cancel.check()
            part = examples[start:start + chunk]
            for i, (array, reason) in enumerate(pool.map(lambda ex: _decode_one(prep, ex), part)):
                if array is None:
                    skipped.append({"path": str(part[i].path), "reason": reason})
                else:
                    out[start + i] = array
                    keep[start + i] = True
            if reporter:
                reporter.progress("data", min(start + chunk, len(examples)), len(examples))
    _decoded_photo.cache_clear()  # the photos are not needed once their tiles are cut
    kept = [ex for ex, k in zip(examples, keep) if k]
    return kept, out[keep], skipped


def check_rehearsable(examples: list[Example], folder_sources: set[str], where: str) -> None:
    """Rehearsing a replay memory, which holds both classes, any labelled image is something to learn; a
    class-folder dataset given as well keeps its split, so it must be splittable."""
    if not examples:
        raise DatasetError("no labelled images to train on", where)
    folders = [ex for ex in examples if ex.source in folder_sources]
    if folders:
        check_splittable(folders, where)


def load_training_data(args: list[str], prep: Preprocessing, seed: int, sample: int | None,
                       cancel=None, reporter=None, whole_workspaces: bool = False) -> TrainingData:
    examples, skipped, summary = collect(args, seed, sample, cancel, reporter, whole_workspaces)
    where = ", ".join(map(str, args))
    folder_sources = {s["path"] for s in summary["sources"] if s["kind"] == "folders"}

    def check(found):
        if whole_workspaces:
            check_rehearsable(found, folder_sources, where)
        else:
            check_splittable(found, where)

    check(examples)
    examples, images, bad = decode_all(examples, prep, cancel, reporter)
    skipped += bad
    check(examples)
    data = TrainingData({}, {}, {}, skipped, summary)
    for split in SPLITS:
        idx = [i for i, ex in enumerate(examples) if ex.split == split]
        data.images[split] = images[idx]
        data.labels[split] = np.array([examples[i].label for i in idx], dtype=np.float32)
        data.examples[split] = [examples[i] for i in idx]
    data.summary["counts"] = {
        split: {CRACK: int(data.labels[split].sum()), NO_CRACK: int((1 - data.labels[split]).sum())}
        for split in SPLITS
    }
    data.summary["skipped"] = len(skipped)
    data.summary["split"] = (f"by content hash (BLAKE2b of the file bytes), per source and class, seeded: "
                             f"{round(100 * (1 - VAL_FRACTION - TEST_FRACTION))}/{round(100 * VAL_FRACTION)}/"
                             f"{round(100 * TEST_FRACTION)} train/val/test")
    if whole_workspaces:
        data.summary["split"] += "; workspaces wholly in training (validation on the replay memory)"
    return data

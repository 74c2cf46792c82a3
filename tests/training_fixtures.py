"""Helpers for the training tests: generated crack / no-crack images and an in-process training run
that captures the JSON events."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared"
WEIGHTS = SHARED / "weights" / "mobilenet_v2_imagenet.pth"
CCIC = SHARED / "data" / "ccic"
WALLS = SHARED / "data" / "walls"


def crack_image(rng: np.random.Generator, size: int, crack: bool) -> Image.Image:
    """Grey concrete-like noise; a crack is a dark meandering line across it."""
    img = rng.normal(165, 14, (size, size, 3))
    if crack:
        x = float(rng.integers(size // 5, 4 * size // 5))
        width = int(rng.integers(2, 4))
        for y in range(size):
            x = min(size - width - 1, max(0, x + rng.normal(0, 0.7)))
            img[y, int(x):int(x) + width] = rng.normal(55, 8, (width, 3))
        if rng.random() < 0.5:
            img = img.transpose(1, 0, 2)
    return Image.fromarray(img.clip(0, 255).astype(np.uint8))


def make_class_folders(root: Path, n_per_class: int = 24, size: int = 64, seed: int = 0,
                       classes=("Positive", "Negative")) -> Path:
    rng = np.random.default_rng(seed)
    for name in classes:
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            crack_image(rng, size, name == "Positive").save(folder / f"{name[:3].lower()}_{i:03d}.png")
    return root


def run_training(argv: list[str]) -> tuple[int, list[dict], str]:
    """training.cli.main in this process: (exit status, parsed --events lines, stderr text)."""
    from training.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    events = [json.loads(line) for line in lines]  # every stdout line must be JSON
    return rc, events, err.getvalue()


def leftovers(folder: Path) -> list[str]:
    """Temporary model files that a failed or cancelled run must not leave behind."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith((".part", ".tmp")))


def make_labelled_workspace(folder: Path, n_per_class: int = 8, size: int = 64, seed: int = 7) -> Path:
    """A folder of generated photos with a CrackDesk workspace in which every photo is labelled, as an
    inspector's corrections are (flat: a workspace is not a class folder)."""
    from crackdesk.core.scan import scan_folder
    from crackdesk.core.store import open_workspace

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    labels = {}
    for i in range(2 * n_per_class):
        crack = i % 2 == 0
        name = f"photo_{i:03d}.png"
        crack_image(rng, size, crack).save(folder / name)
        labels[name] = "crack" if crack else "no_crack"
    ws = open_workspace(folder)
    ws.sync(scan_folder(folder))
    ids = {r.path: r.id for r in ws.rows()}
    ws.set_labels({ids[name]: label for name, label in labels.items()})
    ws.close()
    return folder

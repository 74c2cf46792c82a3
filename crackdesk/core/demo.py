"""Synthetic concrete images for the demo folder and for tests: the repository holds no third-party photos.

Each image is concrete-like texture (multi-scale noise, pores, aggregate speckle, a colour cast), lit
unevenly, and - for crack images - one or more dark crack paths of varying width, contrast and branching.
Everything is deterministic by seed.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .datasets import CRACK, NO_CRACK

PATCH = 227
TRUTH_FILE = ".demo-truth.csv"  # hidden: the scanner skips it, tests and benchmarks read it


def _fractal_noise(rng: np.random.Generator, height: int, width: int, octaves: int = 5) -> np.ndarray:
    """Sum of upsampled random grids: blotchy at large scale, grainy at small scale. Range about -1..1."""
    total = np.zeros((height, width), np.float32)
    amplitude, weight = 1.0, 0.0
    for octave in range(octaves):
        cells = 2 ** (octave + 2)
        grid = rng.standard_normal((cells, cells)).astype(np.float32)
        layer = Image.fromarray(grid, "F").resize((width, height), Image.BICUBIC)
        total += amplitude * np.asarray(layer)
        weight += amplitude
        amplitude *= 0.55
    return total / weight


def _lighting(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Multiplicative light field: a tilted gradient and an off-centre falloff (flash, low sun)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    yy /= height
    xx /= width
    angle = rng.uniform(0, 2 * math.pi)
    gradient = (np.cos(angle) * (xx - 0.5) + np.sin(angle) * (yy - 0.5)) * rng.uniform(0.1, 0.45)
    cx, cy = rng.uniform(0, 1, 2)
    falloff = -((xx - cx) ** 2 + (yy - cy) ** 2) * rng.uniform(0.0, 0.5)
    return 1.0 + gradient + falloff


def _draw_crack(rng: np.random.Generator, draw: ImageDraw.ImageDraw, width: int, height: int, scale: float):
    """A random-walk crack from one edge across the image, with varying width and an occasional branch."""
    side = rng.integers(4)
    x, y = [(rng.uniform(0, width), 0), (width, rng.uniform(0, height)),
            (rng.uniform(0, width), height), (0, rng.uniform(0, height))][side]
    heading = [math.pi / 2, math.pi, -math.pi / 2, 0][side] + rng.uniform(-0.6, 0.6)
    base_width = rng.uniform(0.8, 5.0) * scale
    darkness = int(rng.uniform(20, 110))
    step = 3.0 * scale
    branches = []
    start_heading = heading
    for i in range(int(2.2 * max(width, height) / step)):
        # jagged but going somewhere: random turns pulled back towards the starting direction
        heading += rng.normal(0, 0.3) + 0.15 * (start_heading - heading)
        nx, ny = x + step * math.cos(heading), y + step * math.sin(heading)
        w = max(1, int(round(base_width * (0.6 + 0.8 * abs(math.sin(i / 9.0 + base_width))))))
        draw.line([(x, y), (nx, ny)], fill=darkness, width=w)
        if rng.random() < 0.012:
            branches.append((nx, ny, heading + rng.choice([-1, 1]) * rng.uniform(0.5, 1.2), w))
        x, y = nx, ny
        if not (-20 <= x <= width + 20 and -20 <= y <= height + 20):
            break
    for bx, by, bheading, bw in branches[:3]:
        for _ in range(int(rng.integers(8, 40))):
            bheading += rng.normal(0, 0.3)
            nx, ny = bx + step * math.cos(bheading), by + step * math.sin(bheading)
            draw.line([(bx, by), (nx, ny)], fill=darkness + 20, width=max(1, bw - 1))
            bx, by = nx, ny


def concrete_image(seed: int, crack: bool, size: tuple[int, int] = (PATCH, PATCH), cracks: int = 1) -> Image.Image:
    """One synthetic concrete picture (RGB). `size` is (width, height); `cracks` paths when `crack`."""
    rng = np.random.default_rng(seed)
    width, height = size
    scale = max(width, height) / PATCH
    tone = rng.uniform(120, 200)
    texture = _fractal_noise(rng, height, width) * rng.uniform(10, 22)
    grain = rng.standard_normal((height, width)).astype(np.float32) * rng.uniform(3, 8)
    gray = (tone + texture + grain) * _lighting(rng, height, width)

    marks = Image.new("L", (width, height), 255)  # 255 = untouched; darker = pores and cracks
    draw = ImageDraw.Draw(marks)
    for _ in range(int(rng.integers(10, 60) * scale * scale)):  # air pores
        px, py = rng.uniform(0, width), rng.uniform(0, height)
        r = rng.uniform(0.5, 2.5) * math.sqrt(scale)
        draw.ellipse([px - r, py - r, px + r, py + r], fill=int(rng.uniform(90, 190)))
    if crack:
        for _ in range(max(1, cracks)):
            _draw_crack(rng, draw, width, height, scale)
    marks = marks.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.1)))
    gray *= np.asarray(marks, np.float32) / 255.0

    tint = np.array([1.0, rng.uniform(0.97, 1.01), rng.uniform(0.9, 1.0)], np.float32)
    rgb = np.clip(gray[..., None] * tint, 0, 255).astype(np.uint8)
    return Image.fromarray(rgb, "RGB")


def write_demo_folder(folder: str | Path, count: int = 96, seed: int = 0, crack_fraction: float = 0.4) -> list[tuple[Path, str]]:
    """Write `count` 227x227 JPEGs (about `crack_fraction` with cracks) into `folder`, in two site
    sub-folders, plus a hidden truth file. Returns (path, label) pairs."""
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    written = []
    for i in range(count):
        crack = bool(rng.random() < crack_fraction)
        sub = folder / ("pier-north" if i % 2 == 0 else "deck-underside")
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"IMG_{i + 1:04d}.jpg"
        concrete_image(seed * 100_003 + i, crack).save(path, quality=90)
        written.append((path, CRACK if crack else NO_CRACK))
    with open(folder / TRUTH_FILE, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["path", "label"])
        out.writerows((p.relative_to(folder).as_posix(), label) for p, label in written)
    return written


def read_truth(folder: str | Path) -> dict[str, str]:
    with open(Path(folder) / TRUTH_FILE, newline="") as f:
        return {row["path"]: row["label"] for row in csv.DictReader(f)}

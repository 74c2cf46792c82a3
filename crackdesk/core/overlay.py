"""Drawing a tile heatmap over its photo with Pillow (Qt-free): the CLI's PNG, and the colour scale
the GUI's heatmap item uses, so both show the same colours.

Colour scale: P(crack) 0 is transparent, rising through yellow (0.5) to opaque red (1.0); the alpha grows
with the probability so clean concrete stays visible. Where windows overlap (the shifted last row and
column, or stride < patch) a pixel shows the highest probability of the windows covering it: a crack seen
by any window is not averaged away.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .tiling import Heatmap

MAX_SIDE = 2048  # the PNG's longest side: a 4032 px photo is halved, a heatmap needs no more
MAX_GRID_TILES = 4000  # a finer grid (a small stride) is drawn as colour only: the lines would hide the photo


def colours(p: np.ndarray, opacity: float = 1.0) -> np.ndarray:
    """RGBA uint8 (shape p.shape + (4,)) for probabilities in 0..1."""
    t = np.clip(np.asarray(p, np.float32), 0.0, 1.0)
    rgba = np.empty(t.shape + (4,), np.uint8)
    rgba[..., 0] = 255
    rgba[..., 1] = np.round(255 * np.clip(2.0 * (1.0 - t), 0.0, 1.0))  # yellow up to 0.5, then to red
    rgba[..., 2] = 0
    rgba[..., 3] = np.round(255 * np.clip(opacity, 0.0, 1.0) * (0.15 + 0.85 * t) * (t > 0.02))
    return rgba


def tile_colour(p: float, opacity: float = 1.0) -> tuple[int, int, int, int]:
    return tuple(int(v) for v in colours(np.array(p), opacity))


def probability_image(heatmap: Heatmap, size: tuple[int, int]) -> np.ndarray:
    """Float map of `size` (width, height) covering the whole photo: per pixel, the highest P(crack) of
    the windows covering it."""
    width, height = size
    sx, sy = width / heatmap.grid.width, height / heatmap.grid.height
    out = np.zeros((height, width), np.float32)
    for (x, y, w, h), p in zip(heatmap.grid.boxes(), heatmap.probs.ravel()):
        x0, y0 = int(round(x * sx)), int(round(y * sy))
        x1, y1 = max(x0 + 1, int(round((x + w) * sx))), max(y0 + 1, int(round((y + h) * sy)))
        view = out[y0:y1, x0:x1]
        np.maximum(view, p, out=view)
    return out


def heat_layer(heatmap: Heatmap, size: tuple[int, int], opacity: float = 0.55) -> Image.Image:
    """The coloured RGBA layer alone, at `size` (width, height)."""
    return Image.fromarray(colours(probability_image(heatmap, size), opacity), "RGBA")


def fit_size(width: int, height: int, max_side: int = MAX_SIDE) -> tuple[int, int]:
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def render_overlay(photo: Image.Image, heatmap: Heatmap, opacity: float = 0.55, grid: bool = True,
                   legend: bool = True, max_side: int = MAX_SIDE) -> Image.Image:
    """The photo (shrunk to `max_side`) with the heatmap over it, the tile grid, crack tiles outlined,
    and a colour-scale legend. Returns RGB."""
    size = fit_size(photo.width, photo.height, max_side)
    base = photo.convert("RGB")
    if base.size != size:
        base = base.resize(size, Image.BILINEAR, reducing_gap=2.0)
    out = Image.alpha_composite(base.convert("RGBA"), heat_layer(heatmap, size, opacity))
    draw = ImageDraw.Draw(out, "RGBA")
    sx, sy = size[0] / photo.width, size[1] / photo.height
    if grid and len(heatmap.grid) <= MAX_GRID_TILES:
        for (x, y, w, h), p in zip(heatmap.grid.boxes(), heatmap.probs.ravel()):
            box = [x * sx, y * sy, (x + w) * sx - 1, (y + h) * sy - 1]
            crack = p >= heatmap.threshold
            draw.rectangle(box, outline=(255, 0, 0, 230) if crack else (255, 255, 255, 70), width=2 if crack else 1)
    if legend:
        draw_legend(draw, size, heatmap.threshold)
    return out.convert("RGB")


def draw_legend(draw: ImageDraw.ImageDraw, size: tuple[int, int], threshold: float) -> None:
    """A colour bar, bottom right: 0 .. 1 with the threshold marked."""
    bar_w, bar_h, pad = max(120, size[0] // 6), 12, 10
    x0, y0 = size[0] - bar_w - pad, size[1] - bar_h - pad - 14
    if x0 < 0 or y0 < 0:
        return
    draw.rectangle([x0 - 6, y0 - 6, x0 + bar_w + 6, y0 + bar_h + 18], fill=(0, 0, 0, 150))
    ramp = colours(np.linspace(0, 1, bar_w), 1.0)
    for i, (r, g, b, a) in enumerate(ramp):
        draw.line([(x0 + i, y0), (x0 + i, y0 + bar_h)], fill=(int(r), int(g), int(b), max(int(a), 40)))
    tx = x0 + int(threshold * bar_w)
    draw.line([(tx, y0 - 3), (tx, y0 + bar_h + 3)], fill=(255, 255, 255, 255), width=2)
    font = ImageFont.load_default()
    draw.text((x0, y0 + bar_h + 2), "P(crack) 0", fill=(255, 255, 255, 255), font=font)
    draw.text((x0 + bar_w - 8, y0 + bar_h + 2), "1", fill=(255, 255, 255, 255), font=font)

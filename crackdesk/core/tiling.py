"""Sliding-window crack heatmaps of photos larger than the model's training patches.

A model trained on 227x227 patches must see a 4032x3024 photo the way it was trained: in windows of
`ModelInfo.patch_px` source pixels, each resized to the model input with the model's own preprocessing
(`Preprocessing.to_uint8` then `.normalize`), classified in batches by the same `Classifier`.

Design notes (why, not just what):
1. Geometry: windows start every `stride` pixels; the last row and column are shifted back so they end
   exactly at the border, so every pixel is covered and every window is a full patch. An image smaller than
   a patch along an axis gets one window spanning that whole axis.
2. The image-level verdict comes from the tiles by the rule of core/photo_verdict.py (two neighbouring tiles at
   the threshold, or one near-certain tile: one stray tile among 221 does not make a cracked photo); we also keep
   the fraction of crack tiles and the strongest tiles, because "2 tiles of 252" and "40 tiles" differ on site.
3. Memory: a heatmap decodes the photo once, whole, as 8-bit RGB (3 bytes a pixel) and keeps it while the
   tiles are cut. Pillow cannot decode a band of a PNG or JPEG without decoding everything above it, and
   JPEG's draft mode only shrinks by 1/2..1/8, which would change the scale the model was trained at. So
   we refuse, from the header alone and before decoding, images above `MAX_HEATMAP_PIXELS` (= images.MAX_PIXELS,
   the one limit of every decode: 150 Mpx, about
   450 MB decoded, up to twice that for a moment when EXIF rotation copies it; larger than any camera
   photo) with a message saying why. A 20000x20000 image is refused
   in milliseconds with no memory growth. Tiles are cut into one uint8 array (N x H x W x 3 at the model
   input size, ~19 MB for 252 tiles at 160 px) and normalised batch by batch; past `PRECUT_TILES` windows
   (a fine stride) they are cut batch by batch instead.
4. Folder streaming: `heatmap_stream` reads, hashes, decodes and cuts the next image in a worker thread
   while onnxruntime runs the current one; at most one image is prepared ahead, so memory stays flat.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import numpy as np
from PIL import Image

from .errors import ImageError
from .images import MAX_PIXELS, load_rgb, open_image
from .inference import Classifier
from .photo_verdict import PhotoVerdict, photo_verdict

if TYPE_CHECKING:
    from .pipeline import Photo

MAX_HEATMAP_PIXELS = MAX_PIXELS
# Up to this many windows are cut ahead, in the worker, while the model runs on the previous photo (1024
# tiles of 160 px = 79 MB); a finer stride cuts them batch by batch instead, so memory stays bounded.
PRECUT_TILES = 1024
BATCH = 8  # measured on 2 cores: as fast as 16 or 32 tiles a call, and a third of the model's memory

Box = tuple[int, int, int, int]  # x, y, w, h in source pixels


def window_starts(length: int, window: int, stride: int) -> list[int]:
    """Start offsets of windows of `window` px every `stride` px along an axis of `length` px, the last one
    shifted to end at the border. One window at 0 when the axis is not longer than a window."""
    if stride < 1:
        raise ValueError("stride must be at least 1 pixel")
    if length <= window:
        return [0]
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] + window < length:
        starts.append(length - window)
    return starts


@dataclass(frozen=True)
class TileGrid:
    """Where the windows of one image lie: a row-major grid of `len(ys)` x `len(xs)` boxes."""

    width: int
    height: int
    tile_w: int
    tile_h: int
    xs: tuple[int, ...]
    ys: tuple[int, ...]

    @classmethod
    def for_image(cls, width: int, height: int, patch: int, stride: int | None = None) -> "TileGrid":
        stride = int(stride or patch)
        if not 1 <= stride <= patch:
            raise ValueError(f"stride must be between 1 and the patch size ({patch} px) so the tiles cover "
                             f"the whole image, got {stride}")
        tw, th = min(patch, width), min(patch, height)
        return cls(width, height, tw, th, tuple(window_starts(width, tw, stride)),
                   tuple(window_starts(height, th, stride)))

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.ys), len(self.xs)

    def __len__(self) -> int:
        return len(self.xs) * len(self.ys)

    def boxes(self) -> list[Box]:
        return [(x, y, self.tile_w, self.tile_h) for y in self.ys for x in self.xs]

    def box(self, index: int) -> Box:
        """The row-major `index`-th box (what `boxes()[index]` is, without building the list)."""
        row, col = divmod(index, len(self.xs))
        return self.xs[col], self.ys[row], self.tile_w, self.tile_h


@dataclass
class Heatmap:
    """P(crack) of every tile of one image, and the image-level verdict derived from them."""

    grid: TileGrid
    probs: np.ndarray  # shape grid.shape, float
    threshold: float
    model_key: str = ""
    path: Path | None = None
    hash: str | None = None
    seconds: dict = field(default_factory=dict)  # decode / tiles / model, for benchmarks

    @property
    def p_max(self) -> float:
        return float(self.probs.max())

    @property
    def photo(self) -> PhotoVerdict:
        """The photo's verdict from its tiles (core/photo_verdict.py: not one stray tile)."""
        return photo_verdict(self.probs, self.threshold)

    @property
    def p_photo(self) -> float:
        """The photo's P(crack): at least the threshold exactly when the photo is judged cracked."""
        return self.photo.p_crack

    @property
    def label(self) -> str:
        return self.photo.label

    @property
    def crack_tiles(self) -> int:
        return int((self.probs >= self.threshold).sum())

    @property
    def crack_fraction(self) -> float:
        return self.crack_tiles / self.probs.size

    def tiles(self) -> list[tuple[int, int, int, int, float]]:
        """(x, y, w, h, p_crack) row-major: what the CSV and the store hold."""
        return [(*box, float(p)) for box, p in zip(self.grid.boxes(), self.probs.ravel())]

    def strongest(self, k: int = 3) -> list[tuple[int, int, int, int, float]]:
        tiles = self.tiles()
        order = np.argsort(-self.probs.ravel(), kind="stable")[:k]
        return [tiles[i] for i in order]

    def verdict(self) -> str:
        """One line: the verdict, how sure, how much of the image, where."""
        where = ", ".join(f"({x},{y}) {p:.2f}" for x, y, _, _, p in self.strongest(3))
        verdict = self.photo
        return (f"{verdict.label}  p {verdict.p_crack:.3f} ({verdict.reason})  crack tiles {self.crack_tiles}/"
                f"{self.probs.size} ({self.crack_fraction:.1%})  strongest {where}")


def tiles_from_rows(rows: Sequence[tuple[int, int, int, int, float]], width: int, height: int,
                    threshold: float, model_key: str = "") -> Heatmap:
    """Rebuild a Heatmap from stored (x, y, w, h, p) rows (e.g. `Workspace.tile_results`)."""
    xs, ys = sorted({int(r[0]) for r in rows}), sorted({int(r[1]) for r in rows})
    grid = TileGrid(width, height, int(rows[0][2]), int(rows[0][3]), tuple(xs), tuple(ys))
    probs = np.zeros(grid.shape)
    col, row = {x: i for i, x in enumerate(xs)}, {y: i for i, y in enumerate(ys)}
    for x, y, _, _, p in rows:
        probs[row[int(y)], col[int(x)]] = p
    return Heatmap(grid, probs, threshold, model_key)


def heatmap_of_rows(rows: Sequence[tuple[int, int, int, int, float]], threshold: float) -> Heatmap:
    """`tiles_from_rows` when the photo's size is not at hand: the windows end at its borders, so they span it."""
    return tiles_from_rows(rows, max(r[0] + r[2] for r in rows), max(r[1] + r[3] for r in rows), threshold)


def check_heatmap_size(path: str | Path, data: bytes | None = None, max_pixels: int = MAX_HEATMAP_PIXELS) -> tuple[int, int]:
    """(width, height) from the header; ImageError, before any decoding, when the image is too large."""
    with open_image(path, max_pixels=max_pixels, data=data) as image:
        return image.size


def load_for_heatmap(path: str | Path, data: bytes | None = None,
                     max_pixels: int = MAX_HEATMAP_PIXELS) -> Image.Image:
    """Decode once, full resolution, 8-bit RGB, EXIF orientation applied; refuse oversize images first."""
    return load_rgb(path, max_pixels=max_pixels, data=data)


def tile_patch(path: str | Path, box: Box, photo: Image.Image | None = None) -> Image.Image:
    """One labelled tile as a training patch: the box (in the photo as displayed, EXIF orientation applied,
    which is how heatmaps and `Workspace.labeled_tiles` give it) cropped from the decoded photo. Feed it to
    the model's `Preprocessing.to_uint8` like any image. Decode once per photo when several tiles share it."""
    x, y, w, h = box
    image = photo if photo is not None else load_for_heatmap(path)  # `photo`: that file, already decoded
    if x < 0 or y < 0 or x + w > image.width or y + h > image.height:
        raise ImageError(f"tile {box} lies outside the {image.width}x{image.height} image (changed since labelled?)",
                         path)
    return image.crop((x, y, x + w, y + h))


def cut_tiles(image: Image.Image, grid: TileGrid, classifier: Classifier, start: int = 0,
              count: int | None = None) -> np.ndarray:
    """N x H x W x 3 uint8: windows `start`.. (all by default) resized to the model input by its preprocessing."""
    h, w = classifier.pre.input_size
    indices = range(start, len(grid) if count is None else min(len(grid), start + count))
    out = np.empty((len(indices), h, w, 3), np.uint8)
    for i, (x, y, tw, th) in enumerate(map(grid.box, indices)):
        out[i] = classifier.pre.to_uint8(image.crop((x, y, x + tw, y + th)))
    return out


def classify_tiles(classifier: Classifier, image: Image.Image | None, grid: TileGrid, tiles: np.ndarray | None = None,
                   cancel: threading.Event | None = None,
                   progress: Callable[[int, int], None] | None = None) -> np.ndarray | None:
    """P(crack) per window, in batches: from `tiles` already cut, else cut from `image` batch by batch.
    None when cancelled."""
    n = len(grid)
    probs = np.empty(n)
    for start in range(0, n, BATCH):
        if cancel is not None and cancel.is_set():
            return None
        batch = tiles[start:start + BATCH] if tiles is not None else cut_tiles(image, grid, classifier, start, BATCH)
        probs[start:start + BATCH] = classifier.predict_tensor(classifier.pre.normalize(batch))
        if progress:
            progress(min(start + BATCH, n), n)
    return probs


def heatmap_of_image(classifier: Classifier, image: Image.Image, stride: int | None = None,
                     cancel: threading.Event | None = None, progress=None) -> Heatmap | None:
    """Heatmap of an already decoded RGB image (tests, the GUI's image in memory)."""
    grid = TileGrid.for_image(image.width, image.height, classifier.info.patch_px, stride)
    probs = classify_tiles(classifier, image, grid, None, cancel, progress)
    if probs is None:
        return None
    return Heatmap(grid, probs.reshape(grid.shape), classifier.threshold, classifier.key)


def heatmap_of_file(classifier: Classifier, path: str | Path, stride: int | None = None,
                    cancel: threading.Event | None = None) -> Heatmap | None:
    """Heatmap of one image file. Raises ImageError naming the file; None when cancelled."""
    for photo, heatmap in heatmap_stream(classifier, [path], stride, cancel):
        if photo.error is not None:
            raise ImageError(photo.error, path)
        return heatmap
    return None


def heatmap_stream(classifier: Classifier, paths: Sequence[str | Path], stride: int | None = None,
                   cancel: threading.Event | None = None,
                   progress: Callable[[int, int], None] | None = None,
                   keep_image: bool = False) -> Iterator[tuple[Photo, Heatmap | None]]:
    """(photo, heatmap) per path in order, through the classification pipeline (core/pipeline.py) with every
    image tiled; heatmap is None and photo.error set for a bad file. With `keep_image`, photo.image holds the
    decoded photo (for rendering the overlay)."""
    from .pipeline import run_photos

    done = 0
    for photos in run_photos(classifier, paths, cancel, tile_all=True, stride=stride, keep_image=keep_image):
        for photo in photos:
            if cancel is not None and cancel.is_set():
                return
            yield photo, (classifier.heatmap(photo) if photo.error is None else None)
            done += 1
            if progress:
                progress(done, len(paths))


def mosaic(patches: Sequence[Image.Image], cols: int, patch: int | None = None) -> Image.Image:
    """Patches laid out row-major on a grid of `cols` columns (for tests and demos: every tile's truth known)."""
    patch = patch or patches[0].width
    rows = -(-len(patches) // cols)
    out = Image.new("RGB", (cols * patch, rows * patch))
    for i, p in enumerate(patches):
        if p.size != (patch, patch):
            p = p.resize((patch, patch), Image.BILINEAR)
        out.paste(p.convert("RGB"), ((i % cols) * patch, (i // cols) * patch))
    return out

"""The findings' pictures: a small JPEG of each cracked photo, and for a large photo (classified tile by tile)
its heatmap with the cracked tiles outlined. Made with Pillow in a thread pool (decoding releases the GIL).

The 2,000 pictures of a big report are its slowest part. Decoding a 12 Mpx camera JPEG costs ~45 ms even at
1/8 scale (JPEG draft mode): the entropy decoding of its 3-5 MB is the floor. So the thumbnail cameras and
phones embed in EXIF (IFD1, ~160x120) is used when it shows the whole photo (same aspect ratio): its header
is read (128 KiB at most, under 1 ms), and the photo itself only when there is none (core.images, which the
grid's thumbnails use too).

Small on purpose: a report with thousands of findings must stay a file a browser opens and a mail server
takes. The HTML and the PDF embed the same bytes.
"""

from __future__ import annotations

import io
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from PIL import Image, ImageDraw

from ..core.errors import CrackDeskError
from ..core.images import embedded_thumbnail, load_rgb
from ..core.overlay import fit_size, heat_layer
from ..core.tiling import Heatmap, tiles_from_rows

THUMB_PX = 160  # longest side of an ordinary finding's picture
HEATMAP_PX = 200  # a large photo's heatmap, when decoded: its tiles must stay visible
JPEG_QUALITY = 72  # ~5 KB a thumbnail: 2,000 findings stay ~10 MB


@dataclass
class Picture:
    jpeg: bytes | None  # None: the photo could not be read (see error)
    width: int = 0
    height: int = 0
    tiles: int = 0  # large photos: how many tiles it was classified in (0: an ordinary photo)
    crack_tiles: int = 0
    error: str | None = None


def outline_crack_tiles(photo: Image.Image, heatmap: Heatmap, opacity: float = 0.5) -> Image.Image:
    """The heatmap over a photo of any size (tile boxes are in the full photo's pixels), crack tiles outlined."""
    out = Image.alpha_composite(photo.convert("RGBA"), heat_layer(heatmap, photo.size, opacity))
    draw = ImageDraw.Draw(out)
    sx, sy = photo.width / heatmap.grid.width, photo.height / heatmap.grid.height
    for (x, y, w, h), p in zip(heatmap.grid.boxes(), heatmap.probs.ravel()):
        if p >= heatmap.threshold:
            draw.rectangle([x * sx, y * sy, (x + w) * sx - 1, (y + h) * sy - 1], outline=(230, 0, 0, 255), width=2)
    return out.convert("RGB")


def finding_picture(path: Path, tile_rows: Sequence[tuple] = (), threshold: float = 0.5) -> Picture:
    """The picture of one finding; never raises for a bad file (the reason is in `error`)."""
    side = HEATMAP_PX if tile_rows else THUMB_PX
    try:
        photo = embedded_thumbnail(path) or load_rgb(path, draft_size=(side, side))
    except CrackDeskError as e:
        return Picture(None, error=e.reason)
    except Exception as e:  # a decoder bug on one odd file must not stop the report
        return Picture(None, error=f"cannot decode ({type(e).__name__}: {e})")
    size = fit_size(photo.width, photo.height, side)
    if photo.size != size:
        photo = photo.resize(size, Image.BILINEAR, reducing_gap=2.0)
    tiles = crack_tiles = 0
    if tile_rows:
        # Tiles were cut from the photo as displayed, at full size: their extent is that size.
        width = max(x + w for x, _, w, _, _ in tile_rows)
        height = max(y + h for _, y, _, h, _ in tile_rows)
        heatmap = tiles_from_rows(tile_rows, width, height, threshold)
        photo = outline_crack_tiles(photo, heatmap)
        tiles, crack_tiles = heatmap.probs.size, heatmap.crack_tiles
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return Picture(buffer.getvalue(), photo.width, photo.height, tiles, crack_tiles)


def finding_pictures(folder: Path, findings, tile_rows_of: Callable[[str], Sequence[tuple]], threshold: float,
                     cancel: threading.Event | None = None,
                     progress: Callable[[int, int], None] | None = None) -> list[Picture] | None:
    """One Picture per finding, in order; None when cancelled. `tile_rows_of(hash)` gives a large photo's
    stored tiles (empty for an ordinary photo); it is called from the pool's threads."""

    def make(photo) -> Picture | None:
        if cancel is not None and cancel.is_set():
            return None
        rows = tile_rows_of(photo.hash) if photo.hash else ()
        return finding_picture(folder / photo.source, rows, threshold)

    pictures = []
    with ThreadPoolExecutor(max(1, os.cpu_count() or 1), thread_name_prefix="crackdesk-report") as pool:
        for n, picture in enumerate(pool.map(make, findings)):
            if picture is None:
                pool.shutdown(cancel_futures=True)
                return None
            pictures.append(picture)
            if progress:
                progress(n + 1, len(findings))
    return pictures

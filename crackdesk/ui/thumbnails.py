"""Thumbnails: made by a thread pool, cached on disk and in memory, asked for only by what is painted.

The delegate asks `pixmap(path)` while painting; a miss queues the path (newest first, so the items on
screen after a fast scroll come before the ones scrolled past) and returns None. Workers read the disk cache,
or take a camera photo's EXIF thumbnail when it is large enough, or decode the image (JPEG draft mode: 1/2..1/8
scale decoding), and hand back a QImage; the GUI thread turns it into a QPixmap and repaints the cards showing
it. Nothing is read from disk on the GUI thread.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections import OrderedDict, deque
from pathlib import Path

from PIL import Image
from PySide6.QtCore import QObject, Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import QImage, QPixmap

from ..core.errors import ImageError
from ..core.images import embedded_thumbnail, load_rgb
from ..core.paths import thumbnail_cache_dir
from .jobs import run_in_pool

THUMB_PX = 256  # made once at this size; the grid scales it down to the chosen thumbnail size
CACHE_VERSION = "1"
THUMBNAIL_NICE = 4  # below the GUI thread, above classification: what is on screen comes first


# Below this a JPEG decodes at 1/8 scale in a few ms: looking for an EXIF thumbnail (a header parsed in Python,
# holding the GIL the GUI thread paints with) would cost more than it saves. A 12 Mpx photo is 3-5 MB.
EMBEDDED_WORTH_BYTES = 1 << 20


def cache_file(cache_dir: Path, path: Path, st: os.stat_result) -> Path:
    """Disk cache entry keyed by absolute path, size and mtime: a changed file gets a new thumbnail."""
    key = f"{CACHE_VERSION}|{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{THUMB_PX}"
    digest = hashlib.blake2b(key.encode("utf-8", "surrogateescape"), digest_size=16).hexdigest()  # any name
    return cache_dir / digest[:2] / f"{digest}.jpg"


def make_thumbnail(path: Path, cache_dir: Path, display_px: int = THUMB_PX) -> tuple[QImage | None, str | None]:
    """(image scaled to fit display_px, error). Runs in a worker thread: QImage (unlike QPixmap) may be
    made off the GUI thread, and scaling here means painting a card never scales a picture. A camera photo's
    own EXIF thumbnail is used when it is large enough to show (not cached: reading it costs about as much)."""
    image, error = _thumbnail(path, cache_dir, display_px)
    if image is not None and max(image.width(), image.height()) != display_px:
        image = image.scaled(display_px, display_px, Qt.KeepAspectRatio, Qt.SmoothTransformation)
    return image, error


def _thumbnail(path: Path, cache_dir: Path, display_px: int) -> tuple[QImage | None, str | None]:
    try:
        st = path.stat()
    except OSError:
        st = None
    cached = cache_file(cache_dir, path, st) if st is not None else None
    if cached is not None and cached.is_file():
        image = QImage(str(cached))
        if not image.isNull():
            return image, None
    worth_looking = st is not None and st.st_size >= EMBEDDED_WORTH_BYTES
    embedded = embedded_thumbnail(path, min_side=display_px) if worth_looking else None
    if embedded is not None:
        return _qimage(embedded), None
    try:
        picture = load_rgb(path, draft_size=(THUMB_PX, THUMB_PX))
    except ImageError as e:
        return None, e.reason
    except Exception as e:  # one odd file must not kill a worker
        return None, f"{type(e).__name__}: {e}"
    picture.thumbnail((THUMB_PX, THUMB_PX), Image.BILINEAR, reducing_gap=2.0)
    if cached is not None:
        _save_to_cache(picture, cached)
    return _qimage(picture), None


def _qimage(picture: Image.Image) -> QImage:
    data = picture.tobytes()
    return QImage(data, picture.width, picture.height, picture.width * 3, QImage.Format_RGB888).copy()


def _save_to_cache(picture: Image.Image, cached: Path) -> None:
    """Write a cache entry under a temporary name unique to this write (two threads may make the same
    thumbnail at once), then swap it in. A cache is rebuilt if lost, so no fsync."""
    tmp = None
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=cached.stem, suffix=".tmp", dir=cached.parent)
        with os.fdopen(fd, "wb") as f:
            picture.save(f, "JPEG", quality=85)
        os.replace(tmp, cached)
        tmp = None
    except OSError:
        pass  # a read-only or full cache only costs speed
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


CACHE_LIMIT_BYTES = 2 << 30  # ~2 GB: about 200,000 thumbnails


def prune_cache(cache_dir: Path, limit: int = CACHE_LIMIT_BYTES) -> int:
    """Delete the least recently written thumbnails until the cache fits `limit`; returns files removed.
    Runs in a background thread at start-up."""
    entries = []
    for sub in cache_dir.glob("??"):
        for f in sub.glob("*.jpg"):
            try:
                st = f.stat()
            except OSError:
                continue
            entries.append((st.st_mtime, st.st_size, f))
    total = sum(size for _, size, _ in entries)
    removed = 0
    for _, size, f in sorted(entries):
        if total <= limit:
            break
        try:
            f.unlink()
            total -= size
            removed += 1
        except OSError:
            pass
    return removed


class ThumbnailService(QObject):
    """Keyed by the image's path relative to the open folder."""

    updated = Signal(list)  # the paths whose thumbnails (or errors) arrived, a few at a time: repaint their cards
    first_painted = Signal()

    def __init__(self, parent=None, memory_items: int = 600, threads: int | None = None):
        super().__init__(parent)
        self.root: Path | None = None
        self.cache_dir = thumbnail_cache_dir()
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(threads or max(1, min(4, os.cpu_count() or 1)))
        run_in_pool(self.pool, lambda: prune_cache(self.cache_dir))
        self._memory: OrderedDict[str, QPixmap] = OrderedDict()
        self._memory_items = memory_items
        self._failed: dict[str, str] = {}
        self._wanted: deque[str] = deque()
        self._queued: set[str] = set()
        self._in_flight: set[str] = set()
        self._arrivals: list[str] = []
        self._repaint = QTimer(self, singleShot=True, interval=40)
        self._repaint.timeout.connect(self._announce)
        self.painted_any = False
        self.generation = 0
        self.display_px = 144

    def set_display_size(self, px: int) -> None:
        """Thumbnails are kept at the size they are shown; a new size re-reads them (from the disk cache)."""
        if px != self.display_px:
            self.display_px = px
            self._restart()

    def set_root(self, root: Path | None) -> None:
        self.root = root
        self._restart()

    def _restart(self) -> None:
        self.generation += 1
        self._memory.clear()
        self._failed.clear()
        self._wanted.clear()
        self._queued.clear()
        self._in_flight.clear()
        self._arrivals.clear()
        self.painted_any = False

    def pixmap(self, path: str) -> QPixmap | None:
        found = self._memory.get(path)
        if found is not None:
            self._memory.move_to_end(path)
            return found
        if path not in self._failed and path not in self._in_flight:
            if path in self._queued:
                self._wanted.remove(path)
            self._queued.add(path)
            self._wanted.append(path)
            if len(self._wanted) > 400:  # scrolled far past these: forget them
                self._queued.discard(self._wanted.popleft())
            self._pump()
        return None

    def error(self, path: str) -> str | None:
        return self._failed.get(path)

    def note_painted(self) -> None:
        if not self.painted_any:
            self.painted_any = True
            self.first_painted.emit()

    def pending(self) -> int:
        return len(self._wanted) + len(self._in_flight)

    def _pump(self) -> None:
        limit = self.pool.maxThreadCount() * 2
        while self._wanted and len(self._in_flight) < limit and self.root is not None:
            path = self._wanted.pop()  # newest request first
            self._queued.discard(path)
            self._in_flight.add(path)
            generation, absolute, px = self.generation, self.root / path, self.display_px
            run_in_pool(self.pool, lambda: make_thumbnail(absolute, self.cache_dir, px),
                        lambda result, path=path: self._arrived(generation, path, *result), THUMBNAIL_NICE)

    def _arrived(self, generation: int, path: str, image, error) -> None:
        if generation != self.generation:
            return  # a thumbnail of the folder open before
        self._in_flight.discard(path)
        if image is not None:
            self._memory[path] = QPixmap.fromImage(image)
            while len(self._memory) > self._memory_items:
                self._memory.popitem(last=False)
        else:
            self._failed[path] = error or "unreadable"
        self._pump()
        self._arrivals.append(path)
        if not self._repaint.isActive():
            self._repaint.start()

    def _announce(self) -> None:
        arrived, self._arrivals = self._arrivals, []
        if arrived:
            self.updated.emit(arrived)

    def shutdown(self) -> None:
        self._wanted.clear()
        self._queued.clear()
        self.pool.clear()
        self.pool.waitForDone(3000)

"""The gallery's list model: every image of the folder held in numpy arrays, and the current filter and
sort as one index array into them.

Why not QSortFilterProxyModel: its Python lessThan/filterAcceptsRow run once per item per change, which is
seconds at 40,000 images. Here a filter is a vectorised mask and a sort an argsort: a few milliseconds.
data() only reads from these arrays, never from disk or the database.
"""

from __future__ import annotations

from pathlib import PurePosixPath

import numpy as np
from PySide6.QtCore import QAbstractListModel, QModelIndex, Qt

from ..core.datasets import CRACK, NO_CRACK
from ..core.wording import printable

PATH_ROLE = Qt.UserRole + 1
LABEL_ROLE = Qt.UserRole + 2
PROB_ROLE = Qt.UserRole + 3
ID_ROLE = Qt.UserRole + 4

LABEL_CODES = {None: -1, NO_CRACK: 0, CRACK: 1}
CODE_LABELS = {-1: None, 0: NO_CRACK, 1: CRACK}

FILTERS = {
    "all": "All images",
    "pred_crack": "Predicted crack",
    "pred_no_crack": "Predicted no crack",
    "uncertain": "Uncertain",
    "disagree": "Disagreements",
    "not_reviewed": "Not reviewed",
    "reviewed": "Reviewed",
}
SORTS = {
    "useful": "Most useful next",
    "name": "Name",
    "p_desc": "P(crack), highest first",
    "p_asc": "P(crack), lowest first",
    "uncertainty": "Most uncertain first",
}
# Filters whose membership changes when a human label changes (the view must be recomputed then).
LABEL_FILTERS = {"disagree", "not_reviewed", "reviewed"}
# ... and when the probabilities change (a site head refitted).
PROB_FILTERS = {"pred_crack", "pred_no_crack", "uncertain", "disagree"}


def card_name(path: str) -> str:
    """The name a card shows for a folder-relative path."""
    return printable(PurePosixPath(path).name)


class RowArrays:
    """The store's rows as arrays; built in a worker thread so the GUI thread only swaps them in."""

    def __init__(self, paths, ids, labels, probs):
        self.paths, self.ids, self.labels, self.probs = paths, ids, labels, probs
        self.index_of_id = {int(i): k for k, i in enumerate(ids.tolist())}

    @classmethod
    def from_rows(cls, rows) -> "RowArrays":
        n = len(rows)
        return cls([r.path for r in rows], np.fromiter((r.id for r in rows), np.int64, n),
                   np.fromiter((LABEL_CODES[r.label] for r in rows), np.int8, n),
                   np.fromiter((np.nan if r.p_crack is None else r.p_crack for r in rows), np.float32, n))


class GalleryModel(QAbstractListModel):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.paths: list[str] = []
        self.ids = np.zeros(0, np.int64)
        self.labels = np.zeros(0, np.int8)
        self.probs = np.zeros(0, np.float32)  # current P(crack): the site head's where the folder is adapted
        self.base_probs = np.zeros(0, np.float32)  # the base model's, as stored
        self.useful_rank = np.zeros(0, np.int64)  # 0 = review first (core/suggest.py); refreshed with the site head
        self.view = np.zeros(0, np.int64)  # image indices shown, in display order
        self.position = np.zeros(0, np.int64)  # image index -> row in view, or -1
        self._index_of_id: dict[int, int] = {}
        self.filter = "all"
        self.sort = "name"
        self.threshold = 0.5
        self.band = 0.15

    # -- loading ----------------------------------------------------------------------------------
    def set_paths(self, paths: list[str]) -> None:
        """Show a folder's scan at once, before the database has caught up (ids unknown yet)."""
        n = len(paths)
        self.paths = list(paths)
        self.ids = np.full(n, -1, np.int64)
        self.labels = np.full(n, -1, np.int8)
        self.probs = np.full(n, np.nan, np.float32)
        self.base_probs = self.probs.copy()
        self.useful_rank = np.arange(n, dtype=np.int64)
        self._index_of_id = {}
        self.refilter()

    def set_rows(self, rows, threshold: float) -> None:
        """Attach the store's rows (ImageRow in display order, or RowArrays made from them off the GUI
        thread) with the active model's predictions."""
        arrays = rows if isinstance(rows, RowArrays) else RowArrays.from_rows(rows)
        same_images = arrays.paths == self.paths
        self.threshold = threshold
        self.paths = arrays.paths
        self.ids, self.labels, self.probs = arrays.ids, arrays.labels, arrays.probs
        self.base_probs = arrays.probs.copy()
        if len(self.useful_rank) != len(arrays.ids):
            self.useful_rank = np.arange(len(arrays.ids), dtype=np.int64)
        self._index_of_id = arrays.index_of_id
        if same_images and self.filter == "all" and self.sort == "name":
            # The rows shown are unchanged: repaint instead of a reset (which re-lays out every item).
            if len(self.view):
                self.dataChanged.emit(self.index(0), self.index(len(self.view) - 1), [LABEL_ROLE, PROB_ROLE])
        else:
            self.refilter()

    def clear(self) -> None:
        self.set_paths([])

    # -- updates from labelling and classification -----------------------------------------------
    def update_labels(self, labels: dict[int, str | None]) -> None:
        touched = [self._index_of_id[i] for i in labels if i in self._index_of_id]
        for image_id, label in labels.items():
            k = self._index_of_id.get(image_id)
            if k is not None:
                self.labels[k] = LABEL_CODES[label]
        if self.filter in LABEL_FILTERS:
            self.refilter()
        else:
            self._changed(touched)

    def update_probs(self, probs: dict, refilter: bool = False) -> None:
        """New classifications: {image id: (base P, current P), a single P for both, or None}."""
        touched = []
        for image_id, p in probs.items():
            k = self._index_of_id.get(image_id)
            if k is not None:
                base, current = (np.nan, np.nan) if p is None else (p if isinstance(p, tuple) else (p, p))
                self.base_probs[k], self.probs[k] = base, current
                touched.append(k)
        if refilter and (self.filter != "all" or self.sort != "name"):
            self.refilter()
        else:
            self._changed(touched)

    def set_useful_rank(self, rank: np.ndarray) -> None:
        """A new "most useful next" order (after each refit); the grid reorders if it is sorted by it."""
        if len(rank) == len(self.paths):
            self.useful_rank = np.asarray(rank, np.int64)
            if self.sort == "useful":
                self.refilter()

    def next_useful(self, after_image: int | None = None) -> int | None:
        """The image (index) to review next: the unlabelled one ranked first among those shown."""
        shown = self.view[self.labels[self.view] < 0]
        if not len(shown):
            return None
        return int(shown[np.argmin(self.useful_rank[shown])])

    def set_site_probs(self, site: np.ndarray | None) -> None:
        """The site head's P(crack) for every image (None: back to the base model's). An image the model has not
        classified stays unclassified whatever the head would say."""
        if site is None:
            current = self.base_probs.copy()
        else:
            current = np.where(np.isnan(site) | np.isnan(self.base_probs), self.base_probs, site).astype(np.float32)
        self.probs = current
        if self.filter in PROB_FILTERS or self.sort != "name":
            self.refilter()
        elif len(self.view):  # every row changed: one signal (GalleryView repaints what of it is on screen)
            self.dataChanged.emit(self.index(0), self.index(len(self.view) - 1), [PROB_ROLE])

    def _changed(self, indices) -> None:
        rows = [int(self.position[k]) for k in indices if self.position[k] >= 0]
        if not rows:
            return
        # One range (GalleryView repaints only what of it is on screen).
        self.dataChanged.emit(self.index(min(rows)), self.index(max(rows)), [LABEL_ROLE, PROB_ROLE])

    # -- filter and sort --------------------------------------------------------------------------
    def set_filter(self, name: str) -> None:
        self.filter = name
        self.refilter()

    def set_sort(self, name: str) -> None:
        self.sort = name
        self.refilter()

    def set_band(self, band: float) -> None:
        self.band = band
        if self.filter == "uncertain":
            self.refilter()

    def mask(self, name: str) -> np.ndarray:
        p, lab, t = self.probs, self.labels, self.threshold
        have = ~np.isnan(p)
        with np.errstate(invalid="ignore"):
            predicted = np.where(have, (p >= t).astype(np.int8), -1)
            return {
                "all": np.ones(len(p), bool),
                "pred_crack": predicted == 1,
                "pred_no_crack": predicted == 0,
                "uncertain": have & (np.abs(p - t) <= self.band),
                "disagree": have & (lab >= 0) & (lab != predicted),
                "not_reviewed": lab < 0,
                "reviewed": lab >= 0,
            }[name]

    def compute_view(self) -> np.ndarray:
        chosen = np.flatnonzero(self.mask(self.filter))
        if self.sort == "name" or not len(chosen):
            return chosen
        if self.sort == "useful":
            return chosen[np.argsort(self.useful_rank[chosen], kind="stable")]
        p = self.probs[chosen].astype(np.float64)
        missing = np.isnan(p)
        key = {"p_desc": -p, "p_asc": p, "uncertainty": np.abs(p - self.threshold)}[self.sort]
        key = np.where(missing, np.inf, key)  # unclassified images last, in name order
        return chosen[np.argsort(key, kind="stable")]

    def refilter(self) -> None:
        self.beginResetModel()
        self.view = self.compute_view()
        self.position = np.full(len(self.paths), -1, np.int64)
        self.position[self.view] = np.arange(len(self.view))
        self.endResetModel()

    # -- lookups ----------------------------------------------------------------------------------
    def image_index(self, row: int) -> int:
        return int(self.view[row])

    def id_at(self, row: int) -> int:
        return int(self.ids[self.view[row]])

    def row_of_id(self, image_id: int) -> int:
        k = self._index_of_id.get(image_id)
        return -1 if k is None else int(self.position[k])

    def path_at(self, row: int) -> str:
        return self.paths[self.view[row]]

    def card(self, row: int) -> tuple[str, int, float]:
        """What a card shows, in one Python call: (path, label code -1/0/1, P(crack) or NaN). The delegate
        reads it here rather than through index.data(), each of which is a round trip through Qt."""
        k = self.view[row]
        return self.paths[k], int(self.labels[k]), float(self.probs[k])

    def label_of_id(self, image_id: int) -> str | None:
        k = self._index_of_id.get(image_id)
        return None if k is None else CODE_LABELS[int(self.labels[k])]

    def label_at(self, row: int) -> str | None:
        return CODE_LABELS[int(self.labels[self.view[row]])]

    def prob_at(self, row: int) -> float | None:
        p = float(self.probs[self.view[row]])
        return None if np.isnan(p) else p

    def predicted_at(self, row: int) -> str | None:
        p = self.prob_at(row)
        return None if p is None else (CRACK if p >= self.threshold else NO_CRACK)

    def counts(self) -> dict[str, int]:
        p, lab = self.probs, self.labels
        have = ~np.isnan(p)
        with np.errstate(invalid="ignore"):
            predicted = np.where(have, (p >= self.threshold).astype(np.int8), -1)
        effective = np.where(lab >= 0, lab, predicted)
        return {"images": len(p), "classified": int(have.sum()), "reviewed": int((lab >= 0).sum()),
                "crack": int((effective == 1).sum()), "no_crack": int((effective == 0).sum()),
                "disagree": int((have & (lab >= 0) & (lab != predicted)).sum()), "shown": len(self.view)}

    # -- Qt ---------------------------------------------------------------------------------------
    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.view)

    def data(self, index: QModelIndex, role: int = Qt.DisplayRole):
        row = index.row()
        if not index.isValid() or row >= len(self.view):
            return None
        k = int(self.view[row])
        if role == Qt.DisplayRole:
            return card_name(self.paths[k])
        if role == PATH_ROLE:
            return printable(self.paths[k])
        if role == LABEL_ROLE:
            return int(self.labels[k])
        if role == PROB_ROLE:
            return float(self.probs[k])  # NaN when not classified by the active model
        if role == ID_ROLE:
            return int(self.ids[k])
        if role == Qt.ToolTipRole:
            p = self.probs[k]
            text = printable(self.paths[k])
            return text if np.isnan(p) else f"{text}\nP(crack) = {p:.3f}"
        return None

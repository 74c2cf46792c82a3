"""The folder's site adaptation: the base model's head refitted, live, on the folder's human labels plus the
model's replay memory, so every correction improves the rest of the folder and nothing is forgotten.

`SiteAdapter` is the Qt-free state of one folder and base model: the features of every image (as the
workspace stores them), the labels, the memory and the current site head. The session owns it; the CLI calls
it directly, the GUI from worker threads (one refit at a time: `refit` is serialised by a lock). The base
model file is never modified; the head lives in the workspace (`site_heads`) and is reused when the folder is
reopened with the same labels. The maths is in `sitehead.py`.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
import threading
import time
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from . import sitehead, suggest
from .datasets import CRACK
from .errors import CrackDeskError, ModelError
from .estimates import Accuracy
from .feature_matrix import FeatureMatrix
from .memory import ReplayMemory, load_memory, memory_path
from .modeledit import read_head
from .modelformat import ModelInfo
from .projection import load_projection
from .site_photos import LargePhotos, PositionIndex
from .store import Workspace
from .wording import count


RECENT_HEADS = 32


class AdaptationUnavailable(CrackDeskError):
    """This base model cannot be adapted (no features output, no replay memory); the reason says which."""


@dataclass
class SiteState:
    """One refit's outcome: what the GUI shows and the CLI prints."""

    head: sitehead.Head | None  # None: no labels, the base model alone
    n_labels: int = 0
    n_crack: int = 0
    n_tiles: int = 0  # of the labels, how many are tiles of large photos
    cv: Accuracy | None = None  # cross-validated accuracy on this folder's labels
    estimate: float | None = None  # expected accuracy on the unlabelled photos, large ones included (assess_labels)
    n_unlabelled: int = 0
    retention: tuple[Accuracy, Accuracy] | None = None  # base and site head on the memory's held-out part
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  # e.g. labelled images without features
    # image ids of the large photos with windows the head cannot rescore until they are classified again
    run_again_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)
    key: str = ""  # which labels it was fitted on (SiteAdapter.labels_key)
    # (X, y, group of each row, large photo of each group or -1, the LargePhotos those index) it was fitted on,
    # until assessed
    training: tuple | None = field(default=None, repr=False)

    @property
    def run_again(self) -> int:
        return len(self.run_again_ids)

    @property
    def adapted(self) -> bool:
        return self.head is not None

    def summary(self) -> str:
        if self.head is None:
            return "base model (no labels in this folder yet)"
        parts = [f"site-adapted on {count(self.n_labels, 'label')} ({self.n_crack:,} crack, "
                 f"{self.n_labels - self.n_crack:,} no crack)"]
        if self.cv is not None:
            parts.append("this site: " + self.quality())
        if self.retention is not None:
            parts.append("concrete: " + self.retention_text())
        return "; ".join(parts)

    def retention_text(self) -> str:
        """What adapting cost on concrete, as error counts (two decimals of a percentage would overstate it)."""
        base, site = self.retention
        return (f"{base.n - base.correct} -> {site.n - site.correct} errors in {site.n:,} reference images "
                f"({100 * base.value:.2f}% -> {100 * site.value:.2f}%)")

    def quality(self) -> str:
        """The site head's accuracy as honestly as it can be said (estimates.py wording)."""
        text = self.cv.text("cross-validated accuracy")
        if self.cv.enough and self.estimate is not None:
            text += (f" on the labelled photos, the hardest ones when chosen by “Most useful next”; "
                     f"about {100 * self.estimate:.0f}% expected on the {self.n_unlabelled:,} unlabelled")
            if self.run_again:  # photos with screened windows are left out of the estimate (assess)
                text += " whose every window it rescores"
        return text

    def to_json(self) -> str:
        return json.dumps({"estimate": self.estimate, "n_unlabelled": self.n_unlabelled,
                           "n_labels": self.n_labels, "n_crack": self.n_crack, "n_tiles": self.n_tiles,
                           "cv": None if self.cv is None else [self.cv.correct, self.cv.n, self.cv.n_crack,
                                                               self.cv.n_no_crack],
                           "retention": None if self.retention is None else
                           [[a.correct, a.n] for a in self.retention], "notes": self.notes})

    @classmethod
    def from_json(cls, head, text: str) -> "SiteState":
        d = json.loads(text)
        cv = Accuracy(*d["cv"]) if d.get("cv") else None
        retention = tuple(Accuracy(*a) for a in d["retention"]) if d.get("retention") else None
        return cls(head, d["n_labels"], d["n_crack"], d.get("n_tiles", 0), cv, d.get("estimate"),
                   d.get("n_unlabelled", 0), retention, 0.0, d.get("notes", []))


def check_adaptable(info: ModelInfo) -> ReplayMemory:
    """The base model's replay memory, or AdaptationUnavailable saying why adaptation cannot work."""
    if info.features is None:
        raise AdaptationUnavailable(f"site adaptation is unavailable for {info.name} {info.version}: the model "
                                    "has no features output (model format 1); export it with a current CrackDesk, "
                                    "or use a shipped model", info.path)
    try:
        memory = load_memory(info.path, info.features["dim"])
    except ModelError as e:
        raise AdaptationUnavailable(f"site adaptation is unavailable: {e.reason}", e.path) from None
    if memory is None:
        raise AdaptationUnavailable(f"site adaptation is unavailable for {info.name} {info.version}: it has no "
                                    "replay memory (a .memory.npz beside the model), so adapting it would forget "
                                    "concrete", info.path)
    return memory


class SiteAdapter:
    def __init__(self, workspace: Workspace, info: ModelInfo, model_key: str):
        self.workspace, self.info, self.model_key = workspace, info, model_key
        self.memory = check_adaptable(info)
        try:
            weights, bias = read_head(info.path)
        except ModelError as e:
            raise AdaptationUnavailable(f"site adaptation is unavailable: {e.reason}", info.path) from None
        self.base = sitehead.Head(np.asarray(weights, np.float64), float(bias), info.threshold)
        self.ids = np.zeros(0, np.int64)
        self.features = FeatureMatrix(0, info.features["dim"])
        # The basis its large photos' windows are stored in (decision 48)
        self.projection = load_projection(memory_path(info.path), info.features["dim"])
        self.photos = LargePhotos(info.features["dim"], self.projection)  # large photos: verdicts from their windows
        self._photo_examples: dict = {}  # what each labelled large photo teaches; cleared with `photos`
        self._index = PositionIndex(self.ids)
        self._arrived: list | None = None  # features added while load_features reads (see there)
        self.features_stale = True  # not read yet, or images were classified without add_features
        self.state = SiteState(None)
        self._classifier = None  # the base model, loaded only to compute features nobody stored yet
        self._classified_for_labels: set[int] = set()  # labelled large photos a refit has classified again
        self._recent: OrderedDict[str, SiteState] = OrderedDict()  # heads by labels: undo and redo are instant
        self._lock = threading.Lock()

    # -- features of the folder's images ---------------------------------------------------------
    def load_features(self, ids: np.ndarray) -> None:
        """Read every stored feature vector of the base model for these image ids (the grid's order). Vectors
        that classification adds meanwhile (add_features) are kept: a read that began before they were stored
        would miss them."""
        ids = np.asarray(ids, np.int64)
        index = PositionIndex(ids)
        with self._lock:
            self._arrived = []  # add_features records here until the new matrix is in place
        found, blobs = [], []
        for image_id, blob in self.workspace.feature_rows(self.model_key):
            found.append(image_id)
            blobs.append(blob)
        matrix = FeatureMatrix(len(ids), self.features.dim)
        rows = index.positions(np.array(found, np.int64))
        known = rows >= 0
        matrix.set_blobs(rows[known], [b for b, k in zip(blobs, known.tolist()) if k])
        photos = LargePhotos.load(self.workspace, self.model_key, index.positions, self.features.dim,
                                  projection=self.projection)
        with self._lock:
            arrived, self._arrived = self._arrived, None
            self.ids, self._index, self.features, self.features_stale = ids, index, matrix, False
            self.photos, self._photo_examples = photos, {}
            for batch_ids, blobs in arrived:
                self._add(batch_ids, blobs)

    def refresh_photos(self, image_ids) -> None:
        """Images just classified again (a few of the folder): their large photos' windows are read alone and
        merged now, instead of every window of the folder at the next refit (decision 41)."""
        with self._lock:
            if self._arrived is not None or self.features_stale:  # a full read is under way, or due anyway
                self.features_stale = True
                return
            self._merge_photos(image_ids)

    def _merge_photos(self, image_ids) -> None:
        """Under the lock: the loaded large photos with those of `image_ids` read again."""
        ids = np.asarray(image_ids, np.int64)
        fresh = LargePhotos.load(self.workspace, self.model_key, self._index.positions, self.features.dim,
                                 image_ids=ids, projection=self.projection)
        self.photos = self.photos.merged(fresh, self._index.positions(ids))
        again = self.workspace.hashes_of(ids)  # what the others teach is unchanged
        self._photo_examples = {k: v for k, v in self._photo_examples.items() if k[0] not in again}

    def add_features(self, ids, blobs: list[bytes]) -> None:
        """Newly classified images' features, as the workspace stores them: the site head sees every image as soon
        as it is classified, without re-reading the folder's features (0.3 s or more at 40,000)."""
        ids = np.asarray(ids, np.int64)
        with self._lock:
            if self._arrived is not None:
                self._arrived.append((ids, blobs))
            self._add(ids, blobs)

    def _add(self, ids: np.ndarray, blobs: list[bytes]) -> None:
        rows = self._index.positions(ids)
        known = np.flatnonzero(rows >= 0)
        if len(known):
            self.features.set_blobs(rows[known], [blobs[k] for k in known.tolist()])

    # -- the refit -------------------------------------------------------------------------------
    def labels_key(self, labelled: list[tuple[str, str]]) -> str:
        # The memory's build and model file, not only its size: a memory built again (other features, as when
        # the int8 file's were measured again with exact sums, decision 45) must not reuse a head fitted on the old
        memory = self.memory.meta
        text = "\n".join(f"{h}:{label}" for h, label in sorted(labelled)) + f"|{self.model_key}|" \
            + f"{len(self.memory.labels)}|{memory.get('created', '')}|{memory.get('model_sha256', '')}"
        return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()

    def refit(self, cancel: threading.Event | None = None, full: bool = True) -> SiteState:
        """Fit the site head on the folder's labels (none held back) plus the replay memory, and with `full` also
        `assess` it. Reuses the stored head (and its figures) when the labels have not changed."""
        with self._lock:
            started = time.perf_counter()
            read = self.workspace.labelled_features(self.model_key, self.info.threshold, self._photo_examples,
                                                    self.projection)
            notes = []
            # Labelled before being classified by this model, or a large photo whose windows a screening model
            # all settled (a first pass): classified now, every window, so that the label teaches (decision 43)
            again = [(i, path) for i, path, _ in read.photos_unused if i not in self._classified_for_labels]
            if read.missing or read.missing_tiles or again:
                self._classified_for_labels.update(i for i, _ in again)  # once: its label may still teach nothing
                notes = self._compute_missing(read.missing + again, read.missing_tiles)
                read = self.workspace.labelled_features(self.model_key, self.info.threshold, self._photo_examples,
                                                        self.projection)
            if read.photos_unused:
                notes.append(_unused_photos_note(read.photos_unused))
            screened_ids = self.ids[self.photos.rows[~self.photos.rescorable()]]
            screened = len(screened_ids)
            if screened:
                notes.append(f"{screened:,} large photo{'s have' if screened > 1 else ' has'} windows the site head "
                             "cannot rescore (settled by a screening model, or classified by an older CrackDesk): "
                             "classify again to run every window through the model")
            labelled = read.found
            if not labelled:
                self.workspace.set_site_head(self.model_key, None)
                self.state = SiteState(None, notes=notes, run_again_ids=screened_ids)
                return self.state
            keys = [(h, label) for h, label, _ in labelled]
            key = self.labels_key(keys)
            # A labelled photo's windows are one label, and one group in cross-validation (never on both sides)
            groups = [h.split("@")[0] for h, _ in keys]
            photos = {g for g, (h, _) in zip(groups, keys) if "@" in h}
            if photos:
                windows = sum('@' in h for h, _ in keys)
                notes.append(f"{len(photos):,} labelled large photo{'s' if len(photos) > 1 else ''} "
                             f"teach{'' if len(photos) > 1 else 'es'} the site head through {windows:,} of "
                             f"{'their' if len(photos) > 1 else 'its'} windows")
            # The notes describe the folder now, also when the head itself is one fitted before
            if key in self._recent:  # an undo or redo: the very head that was shown before, at once
                self._recent.move_to_end(key)
                self.state = self._recent[key]
                self.state.notes, self.state.run_again_ids = notes, screened_ids
                if self.workspace.site_head(self.model_key) is None or \
                        self.workspace.site_head(self.model_key)[1] != key:
                    self._store(self.state)
                return self.state
            stored = self.workspace.site_head(self.model_key)
            if stored is not None and stored[1] == key:
                w, b = stored[0]
                self.state = SiteState.from_json(sitehead.Head(w, b, sitehead.THRESHOLD), stored[2])
                self.state.key, self.state.notes, self.state.run_again_ids = key, notes, screened_ids
                return self.state
            X = np.stack([vector for _, _, vector in labelled]).astype(np.float64)
            y = np.array([label == CRACK for _, label, _ in labelled], np.float64)
            head = sitehead.fit(X, y, self.memory, self.base, start=self.state.head)
            crack = {g for g, (_, label) in zip(groups, keys) if label == CRACK}
            state = SiteState(head, len(set(groups)), len(crack), sum("#" in h for h, _ in keys), notes=notes,
                              run_again_ids=screened_ids)
            names, group_index = np.unique(groups, return_inverse=True)
            # Which of the folder's large photos each label is (-1: not a photo label), in the photos read with it
            photo_rows = self._index.positions(np.array([read.photos.get(g, -1) for g in names], np.int64))
            group_photo = np.where(photo_rows >= 0, self.photos.index_of(photo_rows), -1)
            state.key, state.training = key, (X, y, group_index, group_photo, self.photos)
            state.seconds = time.perf_counter() - started
            self.state = state
        return self.assess(state, cancel) if full else state

    def assess(self, state: SiteState, cancel: threading.Event | None = None) -> SiteState:
        """Cross-validated accuracy on the folder's labels and retention on the memory's held-out part (the
        slower half of a refit: the GUI shows the new probabilities first), then store the head with them."""
        if state.head is None or state.training is None:
            return state
        X, y, groups, group_photo, photos = state.training
        if not (cancel is not None and cancel.is_set()):
            def photo_logits(fold_head, tested):  # a labelled large photo is judged as the folder shows it
                out = np.full(len(tested), np.nan)
                k = group_photo[tested]
                if (k >= 0).any():
                    out[k >= 0] = photos.verdict_logits(fold_head, k[k >= 0])
                return out

            with self._lock:  # the rows, the mask and the photos of one loading (a reload may come meanwhile)
                z = self.features.logits(state.head.weights, state.head.bias)
                labelled, now = self.labelled_mask(), self.photos
            unlabelled = ~np.isnan(z) & ~labelled
            # Large photos whose every window the head rescores: a screened window keeps the screen's confident P,
            # and counting it made the estimate 13 points too high on walls (the note asks to classify them again)
            z_photos = now.verdict_logits(state.head)[~labelled[now.rows] & now.rescorable()] if len(now) \
                else np.zeros(0)
            z_unlabelled = np.concatenate([z[unlabelled], z_photos])  # small images, then large photos
            state.cv, state.estimate = sitehead.assess_labels(X, y, self.memory, self.base, state.head, z_unlabelled,
                                                              cancel=cancel, groups=groups, group_logits=photo_logits)
            state.n_unlabelled = len(z_unlabelled)
            if state.cv is not None:
                state.retention = sitehead.retention(state.head, self.base, self.memory)
                state.training = None  # an undo reuses the figures; kept heads pin no old photos (121 MB at 2,000)
        with self._lock:
            if state.cv is not None:  # a head left without its figures (cancelled) is not reused for undo
                self._recent[state.key] = state
            while len(self._recent) > RECENT_HEADS:
                self._recent.popitem(last=False)
            if self.state is state:  # not overtaken by a newer refit meanwhile
                self._store(state)
        return state

    # -- what to review next ------------------------------------------------------------------------
    def suggestions(self, k: int = suggest.BATCH, state: SiteState | None = None) -> tuple[list, np.ndarray]:
        """(the k photos to review next as suggest.Suggestion (index into the loaded rows), a review rank for every
        row): unlabelled photos with features, chosen by suggest.py under the current head."""
        state = state or self.state
        head = state.head or self.base
        logits = self.features.logits(head.weights, head.bias)
        labelled = self.labelled_mask()
        eligible = ~labelled & self.features.present
        rows = self.features.rows
        if len(self.photos):  # a large photo: the logit of its verdict, the features of its deciding window
            photo_logits, strongest = self.photos.for_review(head)
            has = strongest >= 0
            logits[self.photos.rows[has]] = photo_logits[has]
            eligible[self.photos.rows[has]] = ~labelled[self.photos.rows[has]]
            window_of = np.full(len(self.ids), -1, np.int64)
            window_of[self.photos.rows[has]] = strongest[has]
            rows = partial(_review_rows, self.features, self.photos.features, window_of)
        picks = suggest.suggest(rows, logits, eligible, labelled.any(), k, seed=state.n_labels)
        return picks, suggest.order(logits, eligible, [s.index for s in picks])

    def suggestible(self) -> int:
        """How many photos "most useful next" can choose from: classified whole, or large with window features."""
        return int(self.features.present.sum()) + self.photos.with_features()

    def labelled_mask(self) -> np.ndarray:
        """Which of the loaded rows have a human label."""
        mask = np.zeros(len(self.ids), bool)
        rows = self._index.positions(np.fromiter(self.workspace.labelled_ids(), np.int64))
        mask[rows[rows >= 0]] = True
        return mask

    def _store(self, state: SiteState) -> None:
        self.workspace.set_site_head(self.model_key, (state.head.weights, state.head.bias, state.key, state.to_json()))

    def prepare_for_unclassified(self) -> None:
        """Load the base model now if some images have no features yet, so that labelling one of them (during
        classification, or a large photo's tile) computes its features at once instead of first spending half a
        second loading the model."""
        if self._classifier is None and not (self.features.present.all() and self.photos.rescorable().all()):
            from .inference import Classifier

            self._classifier = Classifier(self.info.path, exact=True)  # features of whole images: no screen

    def _compute_missing(self, images: list[tuple[int, str]], tiles: list) -> list[str]:
        """Features of labelled images (and tiles) the model has not seen yet, computed and stored now."""
        from .classify import classify_into_workspace
        from .inference import Classifier
        from .tile_features import tile_feature_rows

        if self._classifier is None:
            self._classifier = Classifier(self.info.path, exact=True)  # features of whole images: no screen
        notes = []
        if images:  # classified like any other image: small ones give features, large ones windows
            report = classify_into_workspace(self.workspace, self._classifier, images,
                                             on_features=lambda ids, blobs: self._add(np.asarray(ids), blobs))
            notes += [f"{path}: {reason} (its label is not used)" for path, reason in report.errors]
            if report.tiled:  # read those photos' windows alone, not the folder's
                self._merge_photos([image_id for image_id, _ in images])
        if tiles:
            rows, problems = tile_feature_rows(self._classifier, self.workspace, tiles)
            self.workspace.set_tile_features(self.model_key, rows)
            notes += problems
        return notes

    # -- predictions -----------------------------------------------------------------------------
    def probabilities(self, state: SiteState | None = None) -> np.ndarray:
        """P(crack) of every image under the current head (NaN for images without features)."""
        state = state or self.state
        head = state.head or self.base
        p = sitehead.sigmoid(self.features.logits(head.weights, head.bias))
        if len(self.photos):
            p[self.photos.rows] = self.photos.verdicts(head)
        return p

    def window_grid(self, image_id: int, state: SiteState | None = None) -> np.ndarray | None:
        """A large photo's windows' P under the current head (rows, cols), for its heatmap; None when it is not a
        loaded large photo."""
        head = (state or self.state).head or self.base
        row = self._index.positions(np.array([image_id], np.int64))[0]
        return self.photos.grid(int(row), head) if row >= 0 else None


def _review_rows(images: FeatureMatrix, windows: FeatureMatrix, window_of: np.ndarray, index) -> np.ndarray:
    """float32 features of rows for suggest.py: an image's own, a large photo's deciding window's."""
    index = np.asarray(index, np.int64)
    out = np.empty((len(index), images.dim), np.float32)
    photo = window_of[index] >= 0
    if (~photo).any():
        out[~photo] = images.rows(index[~photo])
    if photo.any():
        out[photo] = windows.rows(window_of[index[photo]])
    return out


def _unused_photos_note(photos: list) -> str:
    """One line for the labelled large photos no window of which the model ran."""
    names = ", ".join(str(path) for _, path, _ in photos[:3]) + (f" and {len(photos) - 3:,} more" if len(photos) > 3
                                                                 else "")
    return (f"{len(photos):,} labelled large photo{'s have' if len(photos) > 1 else ' has'} no window the model ran "
            f"({names}; all settled by a screening model, or classified by an older CrackDesk): classify again for "
            "the site head to learn from them")

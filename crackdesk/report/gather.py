"""What a report says, gathered from the open folder without Qt: every photo with its verdict, the counts per
sub-folder, the capture dates, the model, and the findings (the photos judged cracked).

The verdicts are the folder's current predictions (`FolderSession.current_predictions`: what
`crackdesk classify` reports, site-adapted once the folder has labels) with the human label winning. A
finding nobody reviewed is kept apart from one a person confirmed, in every count and every row.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from .. import __version__
from ..core.datasets import CRACK, NO_CRACK
from ..core.exif import PhotoMeta
from ..core.scan import natural_key
from ..core.wording import printable

TOP_LEVEL = "(top level)"  # the sub-folder name shown for photos directly in the folder
TEST_FIGURES = ("accuracy", "precision", "recall", "f1", "auc", "n")


@dataclass
class Photo:
    path: str  # relative to the folder, POSIX, printable (for display)
    source: str  # the same path exactly as on disk (a name that is not UTF-8 keeps its bytes)
    subfolder: str
    hash: str | None
    label: str | None  # the human label, if a person gave one
    p_crack: float | None  # the current prediction; None: not classified
    verdict: str | None  # the human label, else the prediction; None: neither
    meta: PhotoMeta | None

    @property
    def reviewed(self) -> bool:
        return self.label is not None

    @property
    def cracked(self) -> bool:
        return self.verdict == CRACK


@dataclass
class Tally:
    """Counts over a set of photos (the folder, or one sub-folder)."""

    name: str = ""
    photos: int = 0
    classified: int = 0  # have a current prediction
    reviewed: int = 0  # a person labelled them
    model_only: int = 0  # classified, not reviewed: the verdict rests on the model alone
    cracked: int = 0  # verdict crack (the human label wins)
    cracked_reviewed: int = 0  # of which a person said crack
    cleared: int = 0  # the model said crack, a person said no crack
    with_gps: int = 0

    def add(self, photo: Photo, predicted: str | None) -> None:
        self.photos += 1
        self.classified += photo.p_crack is not None
        self.reviewed += photo.reviewed
        self.model_only += photo.p_crack is not None and not photo.reviewed
        self.cracked += photo.cracked
        self.cracked_reviewed += photo.cracked and photo.reviewed
        self.cleared += photo.label == NO_CRACK and predicted == CRACK
        self.with_gps += photo.meta is not None and photo.meta.has_gps

    @property
    def cracked_model_only(self) -> int:
        return self.cracked - self.cracked_reviewed

    @property
    def unjudged(self) -> int:
        """Neither classified nor reviewed: no verdict at all."""
        return self.photos - self.reviewed - self.model_only


@dataclass
class ModelSummary:
    key: str
    name: str
    version: str
    architecture: str
    threshold: float
    adapted: bool
    n_labels: int
    test: dict = field(default_factory=dict)  # the model card's test-split figures
    cross_validated: dict = field(default_factory=dict)  # a site model's own figures (its card's `site`)
    description: str = ""
    site_lines: list[str] = field(default_factory=list)  # the folder's site head, worded honestly (core/estimates)


@dataclass
class ReportData:
    title: str
    inspector: str
    folder: str
    created: str  # local time the report was made
    model: ModelSummary
    photos: list[Photo]
    totals: Tally
    subfolders: list[Tally]
    findings: list[Photo]
    captured: tuple[str, str] | None  # first and last capture time, when any photo has one
    version: str = __version__

    @property
    def notes(self) -> list[str]:
        """What the reader must know before reading any number: nothing to report, or nothing judged yet."""
        t = self.totals
        if t.photos == 0:
            return ["This folder has no photos: there is nothing to report."]
        notes = []
        if t.classified == 0:
            notes.append(f"None of the {t.photos:,} photos has been classified with {self.model.key}: run "
                         "Classify (or `crackdesk classify`) first. Only the photos a person labelled have a verdict.")
        elif t.unjudged:
            notes.append(f"{t.unjudged:,} of the {t.photos:,} photos {'has' if t.unjudged == 1 else 'have'} no verdict "
                         "(not classified, or unreadable, and not reviewed); "
                         f"{'it is' if t.unjudged == 1 else 'they are'} counted but cannot be findings.")
        if t.cracked_model_only:
            one = t.cracked_model_only == 1
            which = ("The finding rests" if t.cracked == 1 else
                     f"{t.cracked_model_only:,} of the {t.cracked:,} findings rest")
            them = "it. It is marked \u201cnot reviewed\u201d wherever it appears" if one else \
                "them. They are marked \u201cnot reviewed\u201d wherever they appear"
            notes.append(f"{which} on the model alone: no person has reviewed {them}.")
        return notes


def subfolder_of(relpath: str) -> str:
    parent = PurePosixPath(relpath).parent.as_posix()
    return TOP_LEVEL if parent in ("", ".") else parent


def model_summary(info, current) -> ModelSummary:
    """The model section: the card's test figures, and cross-validated ones when there are any: the numbers of
    `current.summary` (the site head's summary, where the current predictions carry one) or of a site model's
    card (`site`)."""
    test = {k: info.metrics[k] for k in TEST_FIGURES if isinstance(info.metrics.get(k), (int, float))}
    figures = info.site or {}
    cross = {k: v for k, v in figures.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    state = getattr(current, "state", None)
    lines = []
    if state is not None and state.adapted:
        if state.cv is not None:
            lines.append("this site: " + state.quality())
        if state.retention is not None:
            lines.append("concrete (the model's reference images, never fitted on): " + state.retention_text())
    return ModelSummary(key=f"{info.name}@{info.version}", name=info.name, version=info.version,
                        architecture=info.architecture, threshold=float(current.threshold),
                        adapted=bool(current.adapted), n_labels=int(current.n_labels), test=test,
                        cross_validated=cross, description=info.description, site_lines=lines)


def gather(current, meta_by_hash: dict[str, PhotoMeta], info, folder, title: str = "",
           inspector: str = "") -> ReportData:
    """The report's content from `current` (CurrentPredictions), the photos' metadata and the model's info."""
    photos, totals, by_folder = [], Tally("all photos"), {}
    for i, row in enumerate(current.rows):
        p = current.p_crack[i]
        p = None if math.isnan(p) else float(p)
        photo = Photo(printable(row.path), row.path, printable(subfolder_of(row.path)), row.hash, row.label, p,
                      current.verdict(i), meta_by_hash.get(row.hash) if row.hash else None)
        predicted = current.predicted(i)
        totals.add(photo, predicted)
        by_folder.setdefault(photo.subfolder, Tally(photo.subfolder)).add(photo, predicted)
        photos.append(photo)
    times = sorted(p.meta.captured for p in photos if p.meta is not None and p.meta.captured)
    return ReportData(
        title=title.strip() or f"Crack inspection: {printable(folder.name)}", inspector=inspector.strip(),
        folder=printable(str(folder)), created=time.strftime("%Y-%m-%d %H:%M"),
        model=model_summary(info, current), photos=photos, totals=totals,
        subfolders=sorted(by_folder.values(), key=lambda t: (t.name != TOP_LEVEL, natural_key(t.name))),
        findings=[p for p in photos if p.cracked], captured=(times[0], times[-1]) if times else None)

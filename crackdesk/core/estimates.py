"""Accuracy figures said honestly: with how many images they rest on, an interval, and no figure at all when
there are too few images to tell (a tester saw "accuracy 1.000 vs 0.500" on 12 images, and "0.750" in the
sidebar). The app, the CLI and training all word their figures through here."""

from __future__ import annotations

import math
from dataclasses import dataclass

MIN_IMAGES = 50  # below this a site accuracy is mostly noise (measured on walls: BENCHMARKS.md)
MIN_PER_CLASS = 5  # ... and it needs some of each class to mean anything


@dataclass(frozen=True)
class Accuracy:
    correct: int
    n: int
    n_crack: int = -1  # -1: unknown
    n_no_crack: int = -1

    @property
    def value(self) -> float | None:
        return self.correct / self.n if self.n else None

    @property
    def enough(self) -> bool:
        per_class_known = self.n_crack >= 0 and self.n_no_crack >= 0
        return self.n >= MIN_IMAGES and (not per_class_known or min(self.n_crack, self.n_no_crack) >= MIN_PER_CLASS)

    def interval(self, z: float = 1.96) -> tuple[float, float]:
        """Wilson score interval (95% by default): honest near 0% and 100%, unlike value +- 2 SE."""
        if not self.n:
            return 0.0, 1.0
        p, n = self.correct / self.n, self.n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return max(0.0, centre - half), min(1.0, centre + half)

    def text(self, what: str = "accuracy") -> str:
        """'accuracy 91.2% (86-95%, 57 labels)' or 'too few labels to tell (12; needs 20, 5 of each class)'."""
        if not self.enough:
            return (f"too few labels to tell ({self.n}; needs {MIN_IMAGES}, at least {MIN_PER_CLASS} of each "
                    f"class)")
        low, high = self.interval()
        return f"{what} {100 * self.value:.1f}% ({100 * low:.0f}-{100 * high:.0f}%, {self.n:,} labels)"


def accuracy_of(y_true, predicted) -> Accuracy:
    """Accuracy of 0/1 predictions against 0/1 truths, with the class counts."""
    pairs = list(zip((int(round(float(t))) for t in y_true), (int(p) for p in predicted)))
    crack = sum(t for t, _ in pairs)
    return Accuracy(sum(t == p for t, p in pairs), len(pairs), crack, len(pairs) - crack)


def accuracy_of_metrics(metrics: dict) -> Accuracy:
    """The Accuracy of a metrics object (core/metrics.py binary_metrics: tp, fp, tn, fn)."""
    tp, fp, tn, fn = (int(metrics.get(k) or 0) for k in ("tp", "fp", "tn", "fn"))
    return Accuracy(tp + tn, tp + fp + tn + fn, tp + fn, tn + fp)

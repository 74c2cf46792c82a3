"""The verdict of a whole photo from its tiles' P(crack): a crack needs two neighbouring tiles, or one near-certain.

Why not "any tile reaches the threshold": a 3859x2951 photo is 221 tiles, and at the shipped models' ~1 false
tile in 1,200 clean patches (a hair, a twig) that calls 17-18% of clean photos "crack" (simulated mosaics of held-out
patches; `scripts/calibrate_photo_verdict.py`, BENCHMARKS.md "Photo verdicts"). A real crack crosses tile borders, so
it usually lights two 8-neighbouring tiles, which two independent stray tiles almost never do (796 neighbouring
pairs in 221 tiles against 24,310 pairs anywhere: "k >= 2 tiles anywhere" still false-alarms on 1.3-10.6% of clean
photos and misses 58-84% of one-tile cracks). A small crack inside one tile must still be found, so an isolated tile
calls the photo crack when it is near-certain: its logit `ISOLATED_LOGIT_MARGIN` above the threshold's (P >= 0.999
at threshold 0.5), chosen on validation mosaics among 0.99 / 0.995 / 0.999 / 0.9999: the validation split's stray
hair scores 0.996 (MobileNetV2) and 0.993 (CNN), so a lower bar keeps 17% false alarms. Measured on test mosaics:
false alarms per clean photo 0.07% (MobileNetV2), 0.35% (its int8 version), 0.6% (CNN); no miss among cracks of 2
tiles or more. The price is one-tile cracks the model is less sure of: missed in 0.75% (MobileNetV2), 0.6% (int8)
and 3.2% (CNN) of photos, against 0.05-0.12% with the max tile. A photo of one tile is that tile's verdict.

`p_crack` is one number on the probability scale that reaches the threshold exactly when the verdict is crack,
so "p >= threshold means crack" holds for photos as for patches: the larger of the best neighbour-supported tile
(min of a tile and its strongest neighbour) and the strongest tile mapped piecewise-linearly so that the isolated
bar lands on the threshold. Every tile's own probability stays in the heatmap, stray ones included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .datasets import CRACK, NO_CRACK

ISOLATED_LOGIT_MARGIN = math.log(999.0)  # 6.9: P >= 0.999 alone at threshold 0.5


@dataclass(frozen=True)
class PhotoVerdict:
    p_crack: float  # >= threshold exactly when label is crack
    label: str
    crack_tiles: int  # tiles >= threshold, supported or not
    reason: str


def isolated_bar(threshold: float, margin: float = ISOLATED_LOGIT_MARGIN) -> float:
    """The probability an unsupported tile needs: the threshold's logit plus `margin`."""
    t = min(max(float(threshold), 1e-12), 1 - 1e-12)
    return 1.0 / (1.0 + math.exp(-(math.log(t / (1 - t)) + margin)))


def neighbour_support(probs: np.ndarray) -> np.ndarray:
    """Per tile, the largest P among its 8 neighbours (0 where it has none); works on (..., rows, cols)."""
    p = np.asarray(probs, dtype=np.float64)
    pad = np.pad(p, [(0, 0)] * (p.ndim - 2) + [(1, 1), (1, 1)])
    rows, cols = p.shape[-2:]
    out = np.zeros_like(p)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            if (dy, dx) != (1, 1):
                np.maximum(out, pad[..., dy:dy + rows, dx:dx + cols], out=out)
    return out


def photo_score(probs: np.ndarray, threshold: float, margin: float = ISOLATED_LOGIT_MARGIN) -> np.ndarray:
    """`p_crack` of one grid or of a stack of grids (..., rows, cols), vectorised for calibration."""
    p = np.asarray(probs, dtype=np.float64)
    flat = p.reshape(p.shape[:-2] + (-1,))
    p_max = flat.max(axis=-1)
    if flat.shape[-1] == 1:
        return p_max
    supported = np.minimum(p, neighbour_support(p)).reshape(flat.shape).max(axis=-1)
    t, bar = float(threshold), max(isolated_bar(threshold, margin), float(threshold))
    below = np.minimum(p_max * (t / bar), np.nextafter(t, 0.0))  # [0, bar) -> [0, t)
    above = t + (p_max - bar) * ((1 - t) / (1 - bar)) if bar < 1 else np.full_like(p_max, t)  # [bar, 1] -> [t, 1]
    return np.maximum(supported, np.where(p_max >= bar, above, below))


def photo_verdict(probs: np.ndarray, threshold: float, margin: float = ISOLATED_LOGIT_MARGIN) -> PhotoVerdict:
    """The photo's verdict from its rows x cols grid of tile probabilities at the model's `threshold`."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.size == 0 or not np.isfinite(p).all():
        raise ValueError(f"tile probabilities must be a non-empty finite 2-D grid, got shape {p.shape}")
    t = float(threshold)
    score = float(photo_score(p, t, margin))
    hits = int((p >= t).sum())
    label = CRACK if score >= t else NO_CRACK
    p_max = float(p.max())
    if p.size == 1:
        reason = f"1 tile at {p_max:.3f}"
    elif hits == 0:
        reason = f"no tile >= {t:g} (strongest {p_max:.3f})"
    elif (np.minimum(p, neighbour_support(p)) >= t).any():
        pairs = int(((p >= t) & (neighbour_support(p) >= t)).sum())
        reason = f"{pairs} neighbouring tiles >= {t:g}"
    elif label == CRACK:
        reason = f"1 isolated tile at {p_max:.4f} (>= {isolated_bar(t, margin):.4f} on its own)"
    else:
        reason = (f"{hits} isolated tile{'s' if hits > 1 else ''} >= {t:g}, strongest {p_max:.3f}: "
                  f"not enough on its own (needs {isolated_bar(t, margin):.4f} or a neighbour >= {t:g})")
    return PhotoVerdict(score, label, hits, reason)

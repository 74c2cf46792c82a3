"""What to review next: the unlabelled photos whose labels will teach the site head the most.

On a new site the base model is confidently wrong (a brick wall's every joint "a crack at p = 1.00"), so its
own uncertainty finds nothing. Measured on walls (BENCHMARKS.md, "Site adaptation"):
* before any label, the photos nearest the centres of a k-means of the folder's features: one typical photo of
  each of the folder's main kinds (a random sample of 4,000 stands for a large folder);
* after, "cluster-margin": the 5k photos the current site head is least sure of, grouped by k-means into k
  clusters (weighted by uncertainty 4p(1-p)), and the least sure photo of each: a round covers different kinds
  of hard cases instead of ten near-copies of one.
Cost at 40,000 photos: one pass over the logits and a k-means of at most 4,000 (cold start) or 50 rows.

`order` turns that into the gallery's "Most useful next" order: the suggested photos first, then every other
unlabelled photo by how unsure the head is, labelled photos last.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BATCH = 10  # suggestions per round (the user labels ten, then asks again)
BETA = 5  # cluster-margin: cluster the BETA * k least sure photos into k groups
COLD_SAMPLE = 4000  # the cold start's k-means runs on at most this many photos


@dataclass
class Suggestion:
    index: int  # position in the arrays given
    p_crack: float
    reason: str


def unit_rows(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, np.float32)
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


def kmeans(X: np.ndarray, k: int, rng: np.random.Generator, weights: np.ndarray | None = None, iters: int = 20):
    """Weighted k-means (k-means++ seeding, Lloyd's iterations): (assignment, squared distances [n, k])."""
    X = np.asarray(X, np.float64)
    n = len(X)
    w = np.ones(n) if weights is None else np.asarray(weights, np.float64)
    sq = (X * X).sum(1)
    centres = [int(rng.choice(n, p=w / w.sum()))]
    d = np.maximum(sq + sq[centres[0]] - 2 * X @ X[centres[0]], 0)
    for _ in range(1, k):
        p = d * w
        centres.append(int(rng.choice(n, p=p / p.sum())) if p.sum() > 0 else int(rng.integers(n)))
        d = np.minimum(d, np.maximum(sq + sq[centres[-1]] - 2 * X @ X[centres[-1]], 0))
    C = X[centres].copy()
    for _ in range(iters):
        assign = np.maximum(sq[:, None] + (C * C).sum(1)[None] - 2 * X @ C.T, 0).argmin(1)
        new = C.copy()
        for j in range(k):
            members = assign == j
            if members.any():
                new[j] = (w[members, None] * X[members]).sum(0) / w[members].sum()
        if np.allclose(new, C):
            break
        C = new
    D2 = np.maximum(sq[:, None] + (C * C).sum(1)[None] - 2 * X @ C.T, 0)
    return D2.argmin(1), D2


def cold_start(rows, candidates: np.ndarray, k: int, rng: np.random.Generator) -> list[int]:
    """One typical photo of each of the folder's k main kinds (k-means medoids). `rows(index)` gives features."""
    pool = candidates if len(candidates) <= COLD_SAMPLE else np.sort(rng.choice(candidates, COLD_SAMPLE, False))
    assign, D2 = kmeans(unit_rows(rows(pool)), k, rng)
    picks = [int(pool[np.flatnonzero(assign == j)[np.argmin(D2[assign == j, j])]]) for j in range(k)
             if (assign == j).any()]
    return picks


def cluster_margin(rows, logits: np.ndarray, candidates: np.ndarray, k: int, rng: np.random.Generator) -> list[int]:
    """The least sure photo of each of k clusters of the BETA * k least sure photos."""
    n_top = min(BETA * k, len(candidates))
    top = candidates[np.argpartition(np.abs(logits[candidates]), n_top - 1)[:n_top]]
    top = top[np.argsort(np.abs(logits[top]), kind="stable")]
    uncertainty = 1.0 / np.cosh(np.clip(logits[top] / 2, -30, 30)) ** 2 + 1e-6
    assign, _ = kmeans(unit_rows(rows(top)), min(k, len(top)), rng, weights=uncertainty)
    return [int(top[assign == j][np.argmin(np.abs(logits[top[assign == j]]))]) for j in range(k)
            if (assign == j).any()]


def suggest(rows, logits: np.ndarray, eligible: np.ndarray, labelled_any: bool, k: int = BATCH,
            seed: int = 0) -> list[Suggestion]:
    """The k photos to review next, best first. `rows(index array)` gives their features, `logits` the site head's
    (the base model's before any label), `eligible` which photos may be suggested (unlabelled, with features)."""
    candidates = np.flatnonzero(eligible)
    if not len(candidates):
        return []
    rng = np.random.default_rng(seed)
    if len(candidates) <= k:
        picks, reason = list(candidates[np.argsort(np.abs(logits[candidates]))]), "one of the last ones left"
    elif labelled_any:
        picks, reason = cluster_margin(rows, logits, candidates, k, rng), "the adapted model is unsure here"
    else:
        picks, reason = cold_start(rows, candidates, k, rng), "typical of a kind of photo in this folder"
    chosen = set(picks)
    if len(picks) < k:  # fewer clusters than asked: fill with the least sure of the rest
        rest = candidates[np.argsort(np.abs(logits[candidates]), kind="stable")]
        picks += [int(i) for i in rest if int(i) not in chosen][:k - len(picks)]
    p = 1.0 / (1.0 + np.exp(-logits))
    return [Suggestion(int(i), float(p[i]), reason) for i in picks[:k]]


def order(logits: np.ndarray, eligible: np.ndarray, suggested: list[int]) -> np.ndarray:
    """A rank for every photo (0 = review first): the suggestions, then the other eligible photos by
    uncertainty, then the rest. Vectorised: 40,000 photos in a few milliseconds."""
    key = np.where(eligible, np.abs(np.nan_to_num(logits, nan=np.inf)), np.inf)
    if len(suggested):
        key[np.asarray(suggested, np.int64)] = -np.arange(len(suggested), 0, -1, dtype=np.float64)
    rank = np.empty(len(key), np.int64)
    rank[np.argsort(key, kind="stable")] = np.arange(len(key))
    return rank

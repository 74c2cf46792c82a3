"""Binary classification metrics, shared by `crackdesk evaluate`, training and the retrain dialog."""

from __future__ import annotations

import numpy as np


def roc_auc(y_true: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve (Mann-Whitney U with tie correction); None with only one class."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    # average ranks of ties
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def binary_metrics(y_true, p_crack, threshold: float = 0.5) -> dict:
    """accuracy, precision, recall, f1, auc, n, tp, fp, tn, fn for labels 1 = crack."""
    y = np.asarray(y_true).astype(bool)
    p = np.asarray(p_crack, dtype=np.float64)
    pred = p >= threshold
    tp, fp = int((pred & y).sum()), int((pred & ~y).sum())
    tn, fn = int((~pred & ~y).sum()), int((~pred & y).sum())
    n = len(y)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "accuracy": (tp + tn) / n if n else 0.0,
        "precision": precision, "recall": recall, "f1": f1,
        "auc": roc_auc(y, p), "n": n, "tp": tp, "fp": fp, "tn": tn, "fn": fn,
        "threshold": float(threshold),
    }


def best_threshold(y_true, p_crack) -> float:
    """The threshold that maximises accuracy on (validation) data, placed midway between scores;
    ties go to the one closest to 0.5 so a perfect split does not sit on an edge."""
    y = np.asarray(y_true).astype(bool)
    p = np.asarray(p_crack, dtype=np.float64)
    candidates = np.unique(np.concatenate([[0.5], (np.sort(p)[1:] + np.sort(p)[:-1]) / 2.0]))
    candidates = candidates[(candidates > 1e-6) & (candidates < 1 - 1e-6)]
    if len(candidates) == 0:
        return 0.5
    correct = np.array([((p >= t) == y).sum() for t in candidates]) if len(candidates) < 5000 else None
    if correct is None:  # large sets: evaluate on a grid
        candidates = np.linspace(0.01, 0.99, 99)
        correct = np.array([((p >= t) == y).sum() for t in candidates])
    best = correct.max()
    good = candidates[correct == best]
    return float(good[np.argmin(np.abs(good - 0.5))])

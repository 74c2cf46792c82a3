"""The site head's mathematics, in numpy alone: a logistic regression on the base model's penultimate features,
fitted on the folder's labels plus the model's replay memory.

    minimise   sum_i a_i * log(1 + exp(-s_i (x_i . w + b)))  +  LAMBDA / 2 * |w|^2
    a_i:       the memory's rows share half the weight and the site's labels the other half, each half split
               equally between crack and no crack (so 10 corrections are heard over 2,000 memory rows, and a
               folder of mostly clean photos does not learn "everything is clean")
    s_i:       +1 crack, -1 no crack; the intercept b is not penalised

The replay memory is what anchors the head to concrete; the small L2 term only keeps the (separable) problem well
posed: results were flat for LAMBDA from 1e-6 to 1e-3 on every site simulated, retention degrades above ~1e-3 and
the solver needs hundreds of iterations below ~1e-5, so 1e-4 sits a decade from both; pulling toward the base
head's weights instead of zero made no difference at small LAMBDA (and hurt from 1e-3 up: it holds on to the
base model's confidently wrong direction). The threshold stays 0.5, never
re-tuned on a handful of site labels. Solved by L-BFGS warm-started from the previous head (or the base head):
~10-60 ms for 1,280 dimensions and 2,000 memory rows on 2 cores. The constants were chosen on walls (and
sub-sites of it) and the ccic validation split, never on a test split (docs/decisions.md; BENCHMARKS.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .estimates import Accuracy

LAMBDA = 1e-4  # L2 on the weights, in loss units (the weights a_i sum to 1), raw features
SITE_SHARE = 0.5  # of the total weight: the site's labels against the memory
THRESHOLD = 0.5
CV_FOLDS = 5


@dataclass(frozen=True)
class Head:
    weights: np.ndarray  # [D]
    bias: float
    threshold: float  # decision threshold on sigmoid(x . w + b)

    def logits(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, np.float64) @ self.weights + self.bias

    def probabilities(self, X: np.ndarray) -> np.ndarray:
        return sigmoid(self.logits(X))

    def predict(self, X: np.ndarray) -> np.ndarray:
        return (self.probabilities(X) >= self.threshold).astype(np.int8)


def sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, np.float64)))


def row_weights(y_memory: np.ndarray, y_site: np.ndarray, site_share: float = SITE_SHARE) -> np.ndarray:
    """Loss weights summing to 1: memory and site each their share, classes equal within each."""
    def part(y, total):
        w = np.zeros(len(y))
        if not len(y):
            return w
        present = [c for c in (0, 1) if (y == c).any()]
        for c in present:
            w[y == c] = total / len(present) / (y == c).sum()
        return w

    share = site_share if len(y_site) else 0.0
    return np.concatenate([part(y_memory, 1.0 - share), part(y_site, share)])


def fit(X_site: np.ndarray, y_site: np.ndarray, memory, base: Head, start: Head | None = None,
        lam: float = LAMBDA, cancel=None) -> Head:
    """The site head for these labels (rows of features, 0/1) and the model's replay memory. `cancel` (a
    threading.Event) ends the optimisation early: the head is then unfinished, for a caller that discards it."""
    X = np.concatenate([memory.fit_features, np.asarray(X_site, np.float32).reshape(-1, memory.features.shape[1])])
    y = np.concatenate([memory.fit_labels, np.asarray(y_site, np.float64)])
    a = row_weights(memory.fit_labels, np.asarray(y_site, np.float64))
    x0 = np.append((start or base).weights, (start or base).bias)
    theta = _lbfgs(_objective(X.astype(np.float32), y, a, np.zeros_like(base.weights), lam), x0, cancel=cancel)
    return Head(theta[:-1], float(theta[-1]), THRESHOLD)


def _objective(X: np.ndarray, y: np.ndarray, a: np.ndarray, w_prior: np.ndarray, lam: float):
    sign = 2.0 * y - 1.0

    def value_and_gradient(theta):
        w, b = theta[:-1], theta[-1]
        z = (X @ w.astype(np.float32)).astype(np.float64) + b
        margin = sign * z
        loss = a @ np.logaddexp(0.0, -margin)
        r = -a * sign * sigmoid(-margin)  # d loss / d z
        grad_w = (r.astype(np.float32) @ X).astype(np.float64) + lam * (w - w_prior)
        return loss + 0.5 * lam * (w - w_prior) @ (w - w_prior), np.append(grad_w, r.sum())

    return value_and_gradient


def _lbfgs(fg, x0: np.ndarray, memory: int = 10, max_iter: int = 300, gtol: float = 1e-5,
           ftol: float = 1e-11, cancel=None) -> np.ndarray:
    """Limited-memory BFGS (two-loop recursion, backtracking Armijo line search)."""
    x = np.asarray(x0, np.float64).copy()
    f, g = fg(x)
    S, Y = [], []
    for _ in range(max_iter):
        if np.max(np.abs(g)) < gtol or (cancel is not None and cancel.is_set()):
            break
        q, alphas = g.copy(), []
        for s, yv in zip(reversed(S), reversed(Y)):
            alpha = (s @ q) / (yv @ s)
            alphas.append(alpha)
            q -= alpha * yv
        q *= (S[-1] @ Y[-1]) / (Y[-1] @ Y[-1]) if S else 1.0 / max(np.abs(g).sum(), 1e-12)
        for (s, yv), alpha in zip(zip(S, Y), reversed(alphas)):
            q += s * (alpha - (yv @ q) / (yv @ s))
        direction = -q
        slope = g @ direction
        if slope >= 0:  # not a descent direction: restart from the gradient
            direction, slope, S, Y = -g, -(g @ g), [], []
        step = 1.0
        while True:
            x_new = x + step * direction
            f_new, g_new = fg(x_new)
            if f_new <= f + 1e-4 * step * slope or step < 1e-12:
                break
            step *= 0.5
        s, yv = x_new - x, g_new - g
        if s @ yv > 1e-12:
            S.append(s)
            Y.append(yv)
            if len(S) > memory:
                S.pop(0)
                Y.pop(0)
        converged = abs(f - f_new) <= ftol * max(1.0, abs(f))
        x, f, g = x_new, f_new, g_new
        if converged:
            break
    return x


def assess_labels(X_site: np.ndarray, y_site: np.ndarray, memory, base: Head, head: Head,
                  z_unlabelled: np.ndarray, folds: int = CV_FOLDS, seed: int = 0,
                  cancel=None, groups: np.ndarray | None = None,
                  group_logits=None) -> tuple[Accuracy | None, float | None]:
    """(k-fold accuracy on the folder's labels, estimated accuracy on its unlabelled photos or None); (None, None)
    when `cancel` (a threading.Event) is set, checked at every step of every fold's fit: a newer refit should not
    share the cores and the GIL with figures about to be replaced.

    Labels chosen by "most useful next" are the folder's hardest photos, so accuracy cross-validated on them
    describes those (it read 14-17 points below the rest of the folder on walls from 50 labels up), and is worded
    so. The estimate for the rest: the out-of-fold logits calibrate a temperature T (the one that best explains
    the labels), and the expected accuracy on each unlabelled photo is sigmoid(|z| / T); about 4 points off on
    average on walls from 50 labels (once 21). Neither is shown below `estimates.MIN_IMAGES` labels with
    `MIN_PER_CLASS` of each class. `groups` (an integer per example) keeps examples of one group in one fold: the
    windows a labelled large photo gives are one label, and would otherwise be tested on their neighbours.

    Each label is scored by one logit (>= 0: crack). `group_logits(fold_head, test_groups)` gives it for groups
    the caller can judge whole, NaN for others: a labelled large photo is judged by the photo verdict rule on all
    its windows under the fold's head, as the folder shows it. Other groups say crack when any example does."""
    y = np.asarray(y_site, np.float64)
    n = len(y)
    rng = np.random.default_rng(seed)
    group = np.arange(n) if groups is None else np.asarray(groups)
    first = np.unique(group, return_index=True)[1]  # one example stands for its group's class
    n_groups = group.max() + 1 if n else 0
    group_fold = np.zeros(n_groups, int)
    for c in (0, 1):
        members = rng.permutation(group[first[y[first] == c]])
        group_fold[members] = np.arange(len(members)) % folds
    fold = group_fold[group]
    z_out = np.full(n, np.nan)
    z_group = np.full(n_groups, np.nan)  # a label's out-of-fold logit
    for k in range(min(folds, n)):
        if cancel is not None and cancel.is_set():
            return None, None
        test = fold == k
        if not test.any() or test.all():
            continue
        fold_head = fit(X_site[~test], y[~test], memory, base, start=head, cancel=cancel)
        if cancel is not None and cancel.is_set():
            return None, None  # that fold's head is unfinished
        z_out[test] = fold_head.logits(X_site[test])
        if group_logits is not None:
            judged = np.unique(group[test])
            z_group[judged] = group_logits(fold_head, judged)
    known = ~np.isnan(z_out)
    # Groups nobody judged whole: their strongest example (crack when any example says so)
    strongest = np.full(n_groups, -np.inf)
    np.maximum.at(strongest, group[known], z_out[known])
    tested = np.zeros(n_groups, bool)
    tested[group[known]] = True
    z_group = np.where(np.isnan(z_group), strongest, z_group)
    truth = np.zeros(n_groups, bool)
    truth[group] = y == 1
    crack = int(truth[group[first]].sum())
    said = z_group >= 0
    cv = Accuracy(int((said[tested] == truth[tested]).sum()), int(tested.sum()), crack, len(first) - crack)
    if not cv.enough or not len(z_unlabelled):
        return cv, None
    t = temperature(z_group[tested], truth[tested])
    return cv, float(sigmoid(np.abs(z_unlabelled) / t).mean())


def temperature(z: np.ndarray, y: np.ndarray) -> float:
    """T minimising the log loss of sigmoid(z / T) (golden-section search on log T in [-3, 6])."""
    s = 2.0 * np.asarray(y, np.float64) - 1.0
    z = np.asarray(z, np.float64)

    def nll(log_t):
        return np.logaddexp(0, -s * z / np.exp(log_t)).mean()

    lo, hi, g = -3.0, 6.0, (np.sqrt(5) - 1) / 2
    for _ in range(60):
        c, d = hi - g * (hi - lo), lo + g * (hi - lo)
        if nll(c) < nll(d):
            hi = d
        else:
            lo = c
    return float(np.exp((lo + hi) / 2))


def retention(head: Head, base: Head, memory) -> tuple[Accuracy, Accuracy]:
    """(base head, site head) accuracy on the memory's held-out part: what adapting cost on concrete."""
    X, y = memory.holdout_features, memory.holdout_labels
    crack = int(y.sum())
    return tuple(Accuracy(int((h.predict(X) == y).sum()), len(y), crack, len(y) - crack) for h in (base, head))

"""A retraining's results in words (docs/training-events.md, the `done` event's `retention` and `site`), for
the retrain dialog and the command line alike: each comparison on its own data with its count, accuracies
worded by estimates.py (no figure where the count cannot support one), and the new model's figure on the
site's labels said to be on the labels it was fitted on."""

from __future__ import annotations

import html as html_lib

from .estimates import MIN_IMAGES, MIN_PER_CLASS, accuracy_of_metrics

TOO_FEW = "too few labels to tell"
NEEDS = f"an accuracy needs {MIN_IMAGES} labels, at least {MIN_PER_CLASS} of each class"


def percent(metrics: dict | None) -> str:
    """'99.8% (99.3-99.9%)' or 'too few labels to tell'."""
    if not metrics:
        return "—"
    accuracy = accuracy_of_metrics(metrics)
    if not accuracy.enough:
        return TOO_FEW
    low, high = accuracy.interval()
    return f"{100 * accuracy.value:.1f}% ({100 * low:.1f}-{100 * high:.1f}%)"


def _needs(*metrics) -> str:
    """The rule, once, after a line with a figure that it withheld."""
    return f" ({NEEDS})" if any(m and not accuracy_of_metrics(m).enough for m in metrics) else ""


def _bold(text: str, html: bool) -> str:
    return f"<b>{html_lib.escape(text)}</b>" if html else text


def retention_text(retention: dict | None, html: bool = False) -> str:
    """'Concrete (replay memory, 1,000 held out): 99.9% -> 99.8%'."""
    if not retention:
        return ""
    name = str(retention.get("data_name") or "the starting model's data")
    arrow = " → " if html else " -> "
    base, new = retention.get("base"), retention.get("new")
    head = f"{_bold(name[:1].upper() + name[1:], html)} (replay memory, {retention.get('images', 0):,} held out): "
    if base and not accuracy_of_metrics(base).enough:
        return head + TOO_FEW + _needs(base)
    return head + f"{percent(base)}{arrow}{percent(new)}"


def site_text(site: dict | None, html: bool = False) -> str:
    """'This site (57 labels): current 61% -> new 100%, fitted on them (not an estimate ...)'."""
    if not site:
        return ""
    arrow = " → " if html else " -> "
    current = site.get("current")
    if current is None:
        before = "no current model"
    else:
        seen = " (trained on this folder)" if current.get("trained_on_these") else ""
        before = f"current {percent(current)}{seen}"
    new = site.get("new") or {}
    fitted = new.get("fitted_on", 0)
    on = "them" if fitted == site.get("images") else f"{fitted:,} of them"
    head = f"{_bold('This site', html)} ({site.get('images', 0):,} labels): "
    fitted_note = f"the new model was fitted on {on} (its figure there is no estimate for the site's other photos)"
    if not accuracy_of_metrics(new).enough:  # the same images for both: one verdict, said once
        text = head + f"{TOO_FEW} ({NEEDS}); {fitted_note}"
    else:
        text = head + f"{before}{arrow}new {percent(new)}, fitted on {on} (not an estimate for the site's other photos)"
    unseen = site.get("new_unseen")
    if unseen:
        text += (f"; on the {unseen.get('n', 0):,} not trained on: current {percent(unseen.get('current'))}{arrow}"
                 f"new {percent(unseen)}{_needs(unseen)}")
    return text

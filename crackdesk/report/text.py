"""The report's words and numbers, once: the HTML and the PDF lay out the same sentences and tables, so
the two can never disagree about a count or how a finding is described."""

from __future__ import annotations


def when(photo) -> str:
    captured = photo.meta.captured if photo.meta is not None else None
    return captured.replace("T", " ") if captured else "\u2014"


def where(photo) -> str:
    meta = photo.meta
    if meta is None or not meta.has_gps:
        return "\u2014"
    return f"{meta.lat:.6f}, {meta.lon:.6f}"


def probability(p: float | None) -> str:
    return "\u2014" if p is None else f"{p:.3f}"


def reviewed_text(photo) -> str:
    return "confirmed by a person" if photo.reviewed else "NOT REVIEWED (model only)"


def picture_note(picture) -> str:
    if picture.jpeg is None:
        return f"cannot be read: {picture.error}"
    if picture.tiles:
        return f"heatmap: {picture.crack_tiles} of {picture.tiles} tiles cracked (outlined)"
    return ""


def byline(data) -> list[str]:
    lines = []
    if data.inspector:
        lines.append(f"Inspector: {data.inspector}")
    if data.captured is not None:
        first, last = (t.replace("T", " ") for t in data.captured)
        lines.append(f"Photos captured {first} to {last}" if first != last else f"Photos captured {first}")
    else:
        lines.append("Capture dates: none of the photos records one")
    lines.append(f"Report made {data.created} with CrackDesk {data.version}")
    return lines


def summary_cards(data) -> list[tuple[str, int, str]]:
    """(label, count, kind) for the summary: kind "crack" and "warn" are shown in colour."""
    t = data.totals
    return [("photos in the folder", t.photos, ""),
            ("reviewed by a person", t.reviewed, ""),
            ("rest on the model alone (not reviewed)", t.model_only, "warn" if t.model_only else ""),
            ("have no verdict yet (not classified, not reviewed)", t.unjudged, "warn" if t.unjudged else ""),
            ("findings: judged cracked", t.cracked, "crack"),
            ("findings confirmed by a person", t.cracked_reviewed, ""),
            ("findings on the model alone (not reviewed)", t.cracked_model_only,
             "warn" if t.cracked_model_only else ""),
            ("predicted cracked, cleared by a person", t.cleared, "")]


def model_rows(model) -> list[list[str]]:
    rows = [["Model", model.key], ["Architecture", model.architecture],
            ["Decision threshold", f"P(crack) \u2265 {model.threshold:.3f} is a crack"]]
    if model.adapted:
        rows.append(["Predictions", f"site-adapted: the model's head refitted on {model.n_labels:,} labels of this "
                                    "folder"])
    else:
        rows.append(["Predictions", "the base model (not adapted to this site)"
                     + (f"; {model.n_labels:,} labels in the folder" if model.n_labels else "")])
    if model.test:
        rows.append(["Test figures (model card)", figures(model.test)])
    else:
        rows.append(["Test figures (model card)", "none recorded in the model"])
    if model.site_lines:
        rows.append(["Site adaptation", "; ".join(model.site_lines)])
    elif model.cross_validated:
        rows.append(["Site model figures", figures(model.cross_validated)])
    else:
        rows.append(["Site adaptation", "none (the predictions are the base model's)"])
    return rows


def figures(values: dict) -> str:
    parts = []
    for key, value in values.items():
        if isinstance(value, float) and key != "n":
            parts.append(f"{key} {value:.3f}")
        else:
            parts.append(f"{key} {value:,}")
    return ", ".join(parts)


def subfolder_table(data) -> tuple[list[str], list[list]]:
    header = ["sub-folder", "photos", "reviewed", "model only", "no verdict", "findings", "not reviewed", "GPS"]
    rows = [[t.name, f"{t.photos:,}", f"{t.reviewed:,}", f"{t.model_only:,}", f"{t.unjudged:,}", f"{t.cracked:,}",
             f"{t.cracked_model_only:,}", f"{t.with_gps:,}"] for t in data.subfolders]
    if len(data.subfolders) > 1:
        t = data.totals
        rows.append(["all", f"{t.photos:,}", f"{t.reviewed:,}", f"{t.model_only:,}", f"{t.unjudged:,}",
                     f"{t.cracked:,}", f"{t.cracked_model_only:,}", f"{t.with_gps:,}"])
    return header, rows


def map_caption(data) -> str:
    t = data.totals
    return (f"{t.with_gps:,} of {t.photos:,} photos carry a GPS position. Red: a crack a person confirmed; orange "
            "ring: a crack on the model alone; grey: no crack or no verdict. findings.geojson has the same points "
            "for QGIS.")


def findings_intro(data) -> str:
    t = data.totals
    return (f"Every photo judged cracked: by a person where one reviewed it ({t.cracked_reviewed:,}), else by the "
            f"model ({t.cracked_model_only:,}, marked NOT REVIEWED). P(crack) is the current prediction of "
            f"{data.model.key}{' (site-adapted)' if data.model.adapted else ''}.")


def colophon(data) -> str:
    return (f"{data.title} \u00b7 {data.folder} \u00b7 made {data.created} by CrackDesk {data.version} "
            f"with {data.model.key}")

"""The inspection report (`crackdesk report`, issue 12), end to end: generated photos carrying EXIF GPS
(north/south, east/west) and capture times, a real workspace, real classification with the tiny ONNX model,
human labels, then the CLI; its GeoJSON, HTML and PDF are read back with real tools (pdftotext, pdftoppm,
headless Chromium)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from crackdesk.core.inference import Classifier
from crackdesk.core.models import load_model
from crackdesk.core.session import FolderSession
from factories import camera_exif, make_tiny_model, site_photo
from processes import one_line_error, run_cli


def pier(i):  # north-east of the equator and Greenwich
    return 48.8583 + i * 1.3e-4, 2.2945 + i * 1.1e-4


def span(i):  # south-west
    return -33.8568 - i * 1.7e-4, -70.6483 - i * 0.9e-4


def write_site(folder: Path) -> dict:
    """20 photos in sub-folders; returns {relpath: (lat, lon, captured, drawn crack)}; lat None: no GPS."""
    truth = {}
    for i in range(8):
        name = "IMG & <7>.jpg" if i == 7 else f"IMG_{i:04d}.jpg"  # a name HTML must escape
        lat, lon = pier(i)
        truth[f"pier_N/{name}"] = (lat, lon, f"2024:05:03 09:{10 + i:02d}:00", i % 2 == 0 or i == 7)
        lat, lon = span(i)
        truth[f"span_SW/IMG_{i:04d}.png"] = (lat, lon, f"2024:05:04 14:{20 + i:02d}:30", i % 2 == 1)
    for i in range(3):
        truth[f"no_gps/IMG_{i:04d}.jpg"] = (None, None, None, i == 0)
    truth["deck/big.jpg"] = (51.5007, -0.1246, "2024:05:05 08:00:00", True)
    for n, (rel, (lat, lon, captured, crack)) in enumerate(truth.items()):
        exif = camera_exif(lat, lon, captured, "Canon", "EOS R5", alt=35.0) if lat is not None else None
        site_photo(folder / rel, crack, exif, size=(500, 480) if rel == "deck/big.jpg" else (96, 64), seed=n)
    return truth


LABELS = {"pier_N/IMG_0000.jpg": "crack",  # a crack confirmed by a person
          "span_SW/IMG_0001.png": "no_crack",  # a predicted crack a person cleared
          "no_gps/IMG_0001.jpg": "crack"}  # a crack the model missed


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The folder, classified and reviewed, and the CLI's report of it."""
    base = tmp_path_factory.mktemp("report")
    folder, model = base / "bridge 7", make_tiny_model(base / "tiny.onnx")
    truth = write_site(folder)
    with FolderSession.open(folder) as session:
        session.classify(Classifier(model))
        ids = {r.path: r.id for r in session.rows()}
        predicted = {r.path: r.predicted for r in session.rows("tiny@0.1")}
        assert predicted == {rel: "crack" if t[3] else "no_crack" for rel, t in truth.items()}  # the premise
        session.submit_labels({ids[rel]: label for rel, label in LABELS.items()}).result()
        current = session.current_predictions("tiny@0.1", 0.5)
        p_crack = {r.path: float(p) for r, p in zip(current.rows, current.p_crack)}
        tiles = session.workspace.tile_results(session.workspace.hash_of(ids["deck/big.jpg"]), "tiny@0.1")
    out = base / "out"
    result = run_cli("report", folder, "--out", out, "--model", model, "--title", "Bridge 7: spring inspection",
                     "--inspector", "Ana Lima")
    assert result.returncode == 0, result.stderr
    findings = {rel for rel, t in truth.items() if LABELS.get(rel, "crack" if t[3] else "no_crack") == "crack"}
    return dict(folder=folder, model=model, out=out, truth=truth, findings=findings, p_crack=p_crack,
                tiles=tiles, stderr=result.stderr)


def pdf_text(pdf: Path, page: int | None = None) -> str:
    """The text on the page(s) as printed: pdftotext cropped to A4 (595 x 842 pt), so text drawn past a page's
    edge, e.g. a table row that ran off its foot, is not counted as there."""
    pages = ["-f", str(page), "-l", str(page)] if page else []
    done = subprocess.run(["pdftotext", *pages, "-r", "72", "-x", "0", "-y", "0", "-W", "595", "-H", "842",
                           str(pdf), "-"], capture_output=True, text=True, check=True)
    return done.stdout


def squeeze(text: str) -> str:
    return " ".join(text.split())


def is_blank(png: Path) -> bool:
    pixels = np.asarray(Image.open(png).convert("L"), np.float32)
    return pixels.std() < 10 or (pixels < 128).mean() < 0.002


# -- GeoJSON -----------------------------------------------------------------------------------------------

def test_geojson_has_every_located_photo_where_its_exif_put_it(site):
    doc = json.loads((site["out"] / "findings.geojson").read_text(encoding="utf-8"))
    assert doc["type"] == "FeatureCollection"
    features = {f["properties"]["path"]: f for f in doc["features"]}
    located = {rel: t for rel, t in site["truth"].items() if t[0] is not None}
    assert set(features) == set(located)  # photos without GPS are not placed anywhere
    for rel, (lat, lon, captured, _) in located.items():
        feature = features[rel]
        assert feature["geometry"]["type"] == "Point"
        x, y = feature["geometry"]["coordinates"]
        assert abs(x - lon) < 1e-6 and abs(y - lat) < 1e-6, rel  # [lon, lat], signs of S and W kept
        props = feature["properties"]
        assert props["captured"] == captured.replace(":", "-", 2).replace(" ", "T")
        assert props["subfolder"] == rel.split("/")[0]
        assert props["label"] == ("crack" if rel in site["findings"] else "no_crack")
        assert props["reviewed"] == (rel in LABELS)
        assert props["p_crack"] == pytest.approx(site["p_crack"][rel], abs=1e-4)  # the current prediction
    assert features["span_SW/IMG_0003.png"]["geometry"]["coordinates"][0] < 0 < \
        features["pier_N/IMG_0002.jpg"]["geometry"]["coordinates"][1]


# -- HTML ------------------------------------------------------------------------------------------------

class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.text, self.rows, self._row = [], [], [], None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "tr":
            self._row = []

    def handle_endtag(self, tag):
        if tag == "tr" and self._row is not None:
            self.rows.append(" ".join(self._row))
            self._row = None

    def handle_data(self, data):
        self.text.append(data)
        if self._row is not None:
            self._row.append(data)


def parse_html(path: Path) -> tuple[str, Page]:
    raw = path.read_text(encoding="utf-8")
    page = Page()
    page.feed(raw)
    return raw, page


def test_html_names_every_cracked_photo_and_marks_the_unreviewed(site):
    _, page = parse_html(site["out"] / "report.html")
    finding_rows = [row for row in page.rows if "confirmed by a person" in row or "NOT REVIEWED" in row]
    assert len(finding_rows) == len(site["findings"]) == 11
    for rel in site["truth"]:
        rows = [row for row in finding_rows if rel in row]
        if rel not in site["findings"]:
            assert not rows, f"{rel} is not a finding"
            continue
        assert len(rows) == 1, rel
        reviewed = rel in LABELS
        assert ("confirmed by a person" in rows[0]) == reviewed and ("NOT REVIEWED" in rows[0]) != reviewed, rel
    text = squeeze(" ".join(page.text))
    assert "Inspector: Ana Lima" in text and "Bridge 7: spring inspection" in text
    assert "Photos captured 2024-05-03 09:10:00 to 2024-05-05 08:00:00" in text
    big = next(row for row in finding_rows if "deck/big.jpg" in row)
    cracked = sum(p >= 0.5 for *_, p in site["tiles"])
    assert len(site["tiles"]) == 9 and 0 < cracked < 9  # 500x480 in 227 px tiles, the last ones shifted: 3 x 3
    assert f"heatmap: {cracked} of 9 tiles cracked" in big


def test_html_links_nothing_outside_itself(site):
    raw, page = parse_html(site["out"] / "report.html")
    outside = re.sub(r'"data:image/(png|jpeg);base64,[A-Za-z0-9+/=]*"', '""', raw)  # the pictures, in the file
    assert not re.search(r"https?:|ftp:|file:|//[a-z0-9]|url\(|@import", outside, re.I)
    assert not [t for t, _ in page.tags if t in ("link", "iframe", "object", "embed", "base")]
    for tag, attrs in page.tags:
        for name in ("src", "href", "srcset", "poster", "action"):
            if name in attrs:
                assert attrs[name].startswith("data:image/") if name == "src" else attrs[name].startswith("#"), \
                    (tag, name, attrs[name][:60])
    pictures = [a["src"] for t, a in page.tags if t == "img"]
    assert len(pictures) == 11 + 1  # a picture per finding, and the GPS plot
    assert not [a for t, a in page.tags if t == "script" and "src" in a]


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    """Headless Chromium as root, offline: no sandbox (root), a fresh profile, no background traffic, and
    every host name unresolvable, so a page that tried to load anything from outside would show it."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, "chromium is not installed (Debian package chromium; `make test` installs it)"
    return subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                           "--disable-component-update", "--disable-sync", "--no-first-run",
                           "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120)


def test_chromium_renders_the_html_report(site, tmp_path):
    shot = tmp_path / "page.png"
    done = chromium("--window-size=1200,1400", f"--screenshot={shot}", (site["out"] / "report.html").as_uri(),
                    profile=tmp_path / "profile")
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    assert not is_blank(shot)


def test_the_findings_are_paged_in_a_browser_and_all_there_without_script(site, tmp_path, monkeypatch):
    """With more findings than a page holds, the inline script shows one page of rows (checked in the DOM
    Chromium ends with); the file itself holds every row."""
    from crackdesk.report import html
    from crackdesk.report.build import build_report

    monkeypatch.setattr(html, "PAGE_ROWS", 4)
    with FolderSession.open(site["folder"]) as session:
        build_report(session, load_model(site["model"]).info, tmp_path / "paged")
    _, page = parse_html(tmp_path / "paged" / "report.html")
    assert len([t for t, a in page.tags if t == "tbody" and a.get("class") == "page"]) == 3  # 11 rows by 4
    done = chromium("--dump-dom", (tmp_path / "paged" / "report.html").as_uri(), profile=tmp_path / "profile")
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'id="findings-table" class="paged"' in done.stdout
    assert done.stdout.count('class="page shown"') == 1 and "page 1 of 3" in done.stdout


# -- PDF -------------------------------------------------------------------------------------------------

def test_pdf_states_the_counts_and_names_every_cracked_photo(site):
    pdf = site["out"] / "report.pdf"
    text = squeeze(pdf_text(pdf))
    for label, count in (("photos in the folder", 20), ("reviewed by a person", 3),
                         ("rest on the model alone (not reviewed)", 17), ("findings: judged cracked", 11),
                         ("findings confirmed by a person", 2), ("findings on the model alone (not reviewed)", 9),
                         ("predicted cracked, cleared by a person", 1)):
        assert re.search(re.escape(label) + r" " + str(count) + r"\b", text), label
    for rel in site["truth"]:
        assert (rel in text) == (rel in site["findings"]), rel  # only the findings are listed by name
    assert "Inspector: Ana Lima" in text and "tiny@0.1" in text


def test_pdf_pages_are_numbered_and_no_finding_row_is_cut(site):
    pdf = site["out"] / "report.pdf"
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    pages = int(re.search(r"Pages:\s+(\d+)", info).group(1))
    assert re.search(r"Page size:\s+595(\.\d+)? x 842", info)  # A4, in points
    texts = [squeeze(pdf_text(pdf, k)) for k in range(1, pages + 1)]
    for k, page_text in enumerate(texts, 1):
        assert f"page {k} of {pages}" in page_text
    with_findings = [t for t in texts if any(rel in t for rel in site["findings"])]
    assert len(with_findings) >= 2  # the table goes on over a page break...
    assert all("P(crack) reviewed" in t for t in with_findings)  # ...under its header again
    for rel in site["findings"]:
        lat = site["truth"][rel][0]
        holding = [t for t in texts if rel in t]
        assert len(holding) == 1, rel
        if lat is not None:  # the row's last cell is on the same page as its first: the row is whole
            assert f"{lat:.6f}" in holding[0], rel


def test_the_pdf_layout_keeps_every_block_inside_its_page(site):
    """The layout's own promise, checked on every block (a finding's row with its picture is one block): none
    runs past a page's foot, so none is cut, whatever a text extractor would make of a cut."""
    from PySide6.QtCore import QBuffer

    from crackdesk.report import pdf
    from crackdesk.report.gather import gather
    from crackdesk.report.pictures import finding_pictures

    pdf.ensure_qt()
    with FolderSession.open(site["folder"]) as session:
        current = session.current_predictions("tiny@0.1", 0.5)
        info = load_model(site["model"]).info
        data = gather(current, session.workspace.photo_meta_by_hash(), info, session.folder)
        pictures = finding_pictures(session.folder, data.findings, lambda h: session.workspace.tile_results(
            h, "tiny@0.1"), 0.5)
    flow = pdf.lay_out(pdf.new_writer(QBuffer(), data), data, pictures, None)
    assert len(flow.pages) >= 3
    for page in flow.pages:
        for y, height, _ in page:
            assert flow.top - 1e-6 <= y and y + height <= flow.bottom + 1e-6


def test_pdftoppm_renders_the_first_page(site, tmp_path):
    subprocess.run(["pdftoppm", "-r", "40", "-f", "1", "-l", "1", "-png", str(site["out"] / "report.pdf"),
                    str(tmp_path / "page")], check=True, capture_output=True)
    pngs = list(tmp_path.glob("page*.png"))
    assert len(pngs) == 1 and not is_blank(pngs[0])


# -- folders with nothing to report ----------------------------------------------------------------------

@pytest.mark.parametrize("case", ["empty", "unclassified"])
def test_an_empty_or_unclassified_folder_gets_a_report_that_says_so(case, tmp_path, tiny_model):
    folder = tmp_path / case
    folder.mkdir()
    if case == "unclassified":
        for i in range(3):
            site_photo(folder / f"IMG_{i}.jpg", i == 0, camera_exif(*pier(i), "2024:05:03 10:00:00"), seed=i)
    headless = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")}
    result = run_cli("report", folder, "--out", tmp_path / "out", "--model", tiny_model, env=headless)  # a server
    assert result.returncode == 0, result.stderr
    expected = ("This folder has no photos" if case == "empty" else
                "None of the 3 photos has been classified with tiny@0.1")
    assert expected in result.stderr
    assert expected in squeeze(pdf_text(tmp_path / "out" / "report.pdf"))
    assert expected in squeeze(" ".join(parse_html(tmp_path / "out" / "report.html")[1].text))
    features = json.loads((tmp_path / "out" / "findings.geojson").read_text())["features"]
    assert len(features) == (0 if case == "empty" else 3) and all(f["properties"]["label"] is None for f in features)


# -- refusals and cancelling -----------------------------------------------------------------------------

def test_an_output_that_cannot_be_written_is_refused_before_any_work(site, tmp_path):
    (tmp_path / "file").write_text("x")
    result = run_cli("report", site["folder"], "--out", tmp_path / "file", "--model", site["model"])
    assert result.returncode == 1 and "is a file, not a folder" in one_line_error(result)
    (tmp_path / "out" / "report.pdf").mkdir(parents=True)
    result = run_cli("report", site["folder"], "--out", tmp_path / "out", "--model", site["model"])
    assert result.returncode == 1 and "report.pdf: is a folder" in one_line_error(result)
    assert not (tmp_path / "out" / "report.html").exists()


def test_cancelling_at_any_point_before_writing_writes_nothing(site, tmp_path):
    """Cancelled at each progress report in turn (hashing, metadata, gathering, every picture), the report
    returns None and leaves the output folder as it was."""
    from crackdesk.report.build import build_report

    info = load_model(site["model"]).info
    with FolderSession.open(site["folder"]) as session:
        calls = []
        assert build_report(session, info, tmp_path / "full", progress=lambda d, t: calls.append(d)) is not None
        for k in range(1, len(calls) - 2):  # the last three reports come once the files are being written
            out = tmp_path / f"cancelled-at-{k}"
            out.mkdir()
            (out / "report.html").write_text("the previous report")
            cancel, seen = threading.Event(), []

            def progress(done, total):
                seen.append(done)
                if len(seen) == k:
                    cancel.set()

            assert build_report(session, info, out, cancel=cancel, progress=progress) is None, k
            assert sorted(p.name for p in out.iterdir()) == ["report.html"], k
            assert (out / "report.html").read_text() == "the previous report"
    assert len(calls) > 11 + 3  # the pictures of the 11 findings were among the points tried


def test_the_model_section_says_site_adapted_and_on_how_many_labels(tmp_path):
    """The report shows `adapted` and `n_labels` as the current predictions give them, the site head's figures
    worded as the app words them (too few labels: no figure), and a site model's own figures."""
    from dataclasses import replace

    from crackdesk.core.estimates import Accuracy
    from crackdesk.core.session import CurrentPredictions
    from crackdesk.core.site import SiteState
    from crackdesk.core.sitehead import Head
    from crackdesk.report import text
    from crackdesk.report.gather import gather
    from factories import tiny_info

    head = Head(np.zeros(3), 0.0, 0.5)
    state = SiteState(head, 62, 30, cv=Accuracy(57, 62, 30, 32), retention=(Accuracy(999, 1000), Accuracy(998, 1000)))
    adapted = CurrentPredictions([], np.array([]), 0.5, adapted=True, n_labels=62, state=state)
    rows = dict(text.model_rows(gather(adapted, {}, tiny_info(), tmp_path).model))
    assert rows["Predictions"].startswith("site-adapted") and "62 labels" in rows["Predictions"]
    assert "cross-validated accuracy 91.9%" in rows["Site adaptation"] and "62 labels" in rows["Site adaptation"]
    assert "1 -> 2 errors in 1,000 reference images" in rows["Site adaptation"]
    few = SiteState(head, 12, 6, cv=Accuracy(12, 12, 6, 6))
    rows = dict(text.model_rows(gather(replace(adapted, n_labels=12, state=few), {}, tiny_info(), tmp_path).model))
    assert "too few labels to tell" in rows["Site adaptation"] and "100" not in rows["Site adaptation"]
    info = replace(tiny_info(), site={"cv_accuracy": 0.931, "labels": 42, "folder": "elsewhere"})
    base = CurrentPredictions([], np.array([]), 0.5, adapted=False, n_labels=0)
    rows = dict(text.model_rows(gather(base, {}, info, tmp_path).model))
    assert rows["Site model figures"] == "cv_accuracy 0.931, labels 42"
    rows = dict(text.model_rows(gather(base, {}, tiny_info(), tmp_path).model))
    assert rows["Predictions"].startswith("the base model") and rows["Site adaptation"].startswith("none")

@pytest.mark.parametrize("totals, expected", [
    (dict(photos=6, classified=2, model_only=2, cracked=1), ["4 of the 6 photos have no verdict (not classified, or unreadable, and "
                                               "not reviewed); they are counted but cannot be findings.",
                                               "The finding rests on the model alone: no person has reviewed it. It is "
                                               "marked \u201cnot reviewed\u201d wherever it appears."]),
    (dict(photos=6, classified=5, reviewed=1, model_only=4, cracked=3,
          cracked_reviewed=1),
     ["1 of the 6 photos has no verdict (not classified, or unreadable, and not reviewed); it is counted but cannot "
      "be findings.", "2 of the 3 findings rest on the model alone: no person has reviewed them. They are marked "
                      "\u201cnot reviewed\u201d wherever they appear."]),
])
def test_the_report_s_notes_say_one_photo_and_one_finding_in_the_singular(totals, expected):
    from crackdesk.report.gather import ReportData, Tally

    data = ReportData("t", "", "/site", "2026-11-28 20:00", None, [], Tally("all photos", **totals), [], [], None)
    assert data.notes == expected

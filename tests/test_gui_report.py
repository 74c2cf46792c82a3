"""File > Export report in the real main window (offscreen): the dialog, the job (progress, cancel, result),
and the viewer's photo metadata read from the workspace."""

from __future__ import annotations

import json

from PySide6.QtCore import QObject, QUrl, Slot
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QMessageBox

from crackdesk.ui import report_actions
from factories import camera_exif, site_photo
from test_gui_helpers import classify_all, load_folder, wait_jobs


class UrlCatcher(QObject):
    def __init__(self):
        super().__init__()
        self.urls = []

    @Slot(QUrl)
    def open(self, url):
        self.urls.append(url)


def photos(tmp_path):
    folder = tmp_path / "site"
    for i in range(6):
        exif = camera_exif(-33.8568 - i * 1e-4, -70.6483, f"2024:05:03 10:{i:02d}:00", "Canon", "EOS R5", alt=520.0)
        site_photo(folder / "pier 1" / f"IMG_{i}.jpg", i % 2 == 0, exif if i < 5 else None, seed=i)
    return folder


def test_the_viewer_shows_capture_time_gps_and_camera(window, qtbot, tmp_path):
    load_folder(qtbot, window, photos(tmp_path))
    classify_all(qtbot, window)  # reads each photo's EXIF from the header it opens
    window.select_row(0)
    window.open_viewer()
    text = window.viewer.photo.text()
    assert "taken 2024-05-03 10:00:00" in text and "GPS -33.856800, -70.648300, 520 m" in text
    assert "Canon EOS R5" in text and "96 x 64 px" in text
    window.select_row(5)  # no EXIF at all
    assert window.viewer.photo.text().startswith("no capture time\nno GPS position")


def test_export_report_from_the_dialog_writes_the_three_files(window, qtbot, tmp_path):
    load_folder(qtbot, window, photos(tmp_path))
    classify_all(qtbot, window)
    window.actions.export_report.trigger()
    dialog = window.report_dialog
    assert dialog.isVisible() and dialog.out.text().endswith("site-report")
    dialog.out.setText(str(tmp_path / "out"))
    dialog.title.setText("Pier 1")
    dialog.inspector.setText("Ana Lima")
    dialog.accept()
    qtbot.waitUntil(lambda: hasattr(window, "last_report"), timeout=30000)
    wait_jobs(qtbot, window)
    result = window.last_report
    assert result is not None and (result.photos, result.findings, result.located) == (6, 3, 5)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["findings.geojson", "report.html", "report.pdf"]
    assert "Ana Lima" in (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert len(json.loads((tmp_path / "out" / "findings.geojson").read_text())["features"]) == 5
    assert window.settings.inspector == "Ana Lima"  # offered again next time
    assert "3 findings" in window.statusBar().currentMessage()
    assert window.report_box.isVisible() and "Open the HTML report now?" in window.report_box.text()
    opened = UrlCatcher()
    QDesktopServices.setUrlHandler("file", opened, "open")  # instead of starting the desktop's browser
    try:
        window.report_box.button(QMessageBox.Open).click()
    finally:
        QDesktopServices.unsetUrlHandler("file")
    assert [u.toLocalFile() for u in opened.urls] == [str(tmp_path / "out" / "report.html")]


def test_a_cancelled_report_job_writes_nothing(window, qtbot, tmp_path, monkeypatch):
    load_folder(qtbot, window, photos(tmp_path))
    classify_all(qtbot, window)
    start = window.start_job
    monkeypatch.setattr(window, "start_job", lambda job, in_bar=True: (
        job.cancel() if job.title == "Exporting report" else None, start(job, in_bar)))
    report_actions.export_report(window, str(tmp_path / "out"), offer_to_open=False)
    qtbot.waitUntil(lambda: hasattr(window, "last_report"), timeout=30000)
    assert window.last_report is None and "cancelled" in window.statusBar().currentMessage()
    assert list((tmp_path / "out").iterdir()) == []  # the folder was checked (and made) first; nothing in it

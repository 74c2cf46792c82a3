"""The real main window offscreen: open a folder, classify with a real ONNX model, label by keyboard,
undo/redo, filters and sorts, export and import. Everything goes through the real store on disk."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PySide6.QtCore import QItemSelection, QItemSelectionModel, Qt
from PySide6.QtTest import QTest

from crackdesk.core.store import open_workspace
from factories import make_tiny_model
from test_gui_helpers import classify_all, demo_folder, load_folder, open_window, wait_jobs


@pytest.fixture
def loaded(qtbot, window, tmp_path):
    load_folder(qtbot, window, demo_folder(tmp_path))
    return window


def stored_label(window, image_id):
    window.ws.flush()  # labels are written by the workspace's writer thread: wait for what was queued
    with open_workspace(window.folder) as ws:  # a second connection: what is really on disk
        return ws.label_of(image_id)


def test_open_folder_shows_every_image_and_thumbnails(qtbot, loaded):
    assert loaded.model.rowCount() == 40
    assert loaded.ws is not None and (loaded.model.ids >= 0).all()
    qtbot.waitUntil(lambda: loaded.thumbnails.painted_any, timeout=10000)
    assert "40 images" in loaded.counts_label.text()


def test_classify_fills_the_grid_and_the_store(qtbot, loaded):
    classify_all(qtbot, loaded)
    assert not np.isnan(loaded.model.probs).any()
    with open_workspace(loaded.folder) as ws:
        assert ws.counts(loaded.model_key)["classified"] == 40
    assert "40 classified" in loaded.counts_label.text()


def test_keyboard_labelling_advances_and_undo_redo(qtbot, loaded):
    classify_all(qtbot, loaded)
    view = loaded.view
    view.setFocus()
    loaded.select_row(0)
    ids = [loaded.model.id_at(r) for r in range(4)]
    QTest.keyClick(view, Qt.Key_C)
    assert stored_label(loaded, ids[0]) == "crack"
    assert loaded.current_id() == ids[1]  # moved on to the next image
    QTest.keyClick(view, Qt.Key_N)
    assert stored_label(loaded, ids[1]) == "no_crack"
    QTest.keyClick(view, Qt.Key_Space)  # accept the model's prediction
    assert stored_label(loaded, ids[2]) == loaded.model.predicted_at(2)
    loaded.select_row(0)
    QTest.keyClick(view, Qt.Key_Backspace)
    assert stored_label(loaded, ids[0]) is None
    QTest.keyClick(view, Qt.Key_Z, Qt.ControlModifier)
    assert stored_label(loaded, ids[0]) == "crack"
    QTest.keyClick(view, Qt.Key_Z, Qt.ControlModifier | Qt.ShiftModifier)
    assert stored_label(loaded, ids[0]) is None
    assert loaded.undo_stack.count() == 4


def test_bulk_labelling_of_a_selection_is_one_undo_step(qtbot, loaded):
    view = loaded.view
    selection = QItemSelection(loaded.model.index(3), loaded.model.index(9))
    view.selectionModel().select(selection, QItemSelectionModel.ClearAndSelect)
    ids = [loaded.model.id_at(r) for r in range(3, 10)]
    QTest.keyClick(view, Qt.Key_N)
    assert all(stored_label(loaded, i) == "no_crack" for i in ids)
    assert loaded.model.counts()["reviewed"] == 7
    loaded.undo_stack.undo()
    assert loaded.model.counts()["reviewed"] == 0  # the grid changes at once
    assert all(stored_label(loaded, i) is None for i in ids)
    assert loaded.model.counts()["reviewed"] == 0


def test_not_reviewed_filter_moves_to_the_next_unreviewed_image(qtbot, loaded):
    loaded.sidebar.select_filter("not_reviewed")
    assert loaded.model.filter == "not_reviewed"
    loaded.select_row(5)
    next_id = loaded.model.id_at(6)
    QTest.keyClick(loaded.view, Qt.Key_C)
    assert loaded.model.rowCount() == 39
    assert loaded.current_id() == next_id
    loaded.sidebar.select_filter("reviewed")
    assert loaded.model.rowCount() == 1


def test_filters_and_sorts(qtbot, loaded):
    classify_all(qtbot, loaded)
    m = loaded.model
    t = m.threshold
    for name in ("pred_crack", "pred_no_crack", "uncertain"):
        loaded.set_filter(name)
        shown = [m.prob_at(r) for r in range(m.rowCount())]
        if name == "pred_crack":
            assert all(p >= t for p in shown)
        elif name == "pred_no_crack":
            assert all(p < t for p in shown)
        else:
            assert all(abs(p - t) <= m.band + 1e-6 for p in shown)
    loaded.set_filter("all")
    assert m.counts()["crack"] + m.counts()["no_crack"] == 40
    loaded.set_sort("p_desc")
    probs = [m.prob_at(r) for r in range(m.rowCount())]
    assert probs == sorted(probs, reverse=True)
    loaded.set_sort("uncertainty")
    gaps = [abs(m.prob_at(r) - t) for r in range(m.rowCount())]
    assert gaps == sorted(gaps)
    # Disagreement: label the most confident crack as no crack.
    loaded.set_sort("p_desc")
    loaded.select_row(0)
    QTest.keyClick(loaded.view, Qt.Key_N)
    loaded.set_filter("disagree")
    assert m.rowCount() == 1 and m.label_at(0) == "no_crack" and m.prob_at(0) >= t
    loaded.set_band(0.3)
    assert loaded.settings.band == pytest.approx(0.3)


def test_model_switch_keeps_each_models_predictions(qtbot, loaded, models_dir):
    from factories import tiny_info

    classify_all(qtbot, loaded)
    first = loaded.entry
    first_probs = loaded.model.probs.copy()
    make_tiny_model(models_dir / "other.onnx", info=tiny_info(name="other", threshold=0.7))
    loaded.actions.sync_models()
    other = loaded.registry.find("other")
    loaded.set_model(other)
    wait_jobs(qtbot, loaded)
    assert np.isnan(loaded.model.probs).all()  # not classified by this model yet
    assert loaded.model.threshold == pytest.approx(0.7)
    loaded.set_model(first)
    wait_jobs(qtbot, loaded)
    np.testing.assert_allclose(loaded.model.probs, first_probs, rtol=1e-6)


def test_export_and_import_labels(qtbot, loaded, tmp_path):
    from crackdesk.ui import exchange_actions

    loaded.view.selectAll()
    QTest.keyClick(loaded.view, Qt.Key_C)
    loaded.select_row(0)
    for _ in range(10):
        QTest.keyClick(loaded.view, Qt.Key_N)
    exchange_actions.export_csv(loaded, str(tmp_path / "labels.csv"))
    exchange_actions.export_dataset(loaded, str(tmp_path / "dataset"), link=True)
    wait_jobs(qtbot, loaded)
    assert len((tmp_path / "labels.csv").read_text().splitlines()) == 41
    assert len(list((tmp_path / "dataset" / "Negative").iterdir())) == 10
    assert len(list((tmp_path / "dataset" / "Positive").iterdir())) == 30
    loaded.view.selectAll()
    QTest.keyClick(loaded.view, Qt.Key_Delete)
    assert loaded.model.counts()["reviewed"] == 0
    exchange_actions.import_dataset(loaded, str(tmp_path / "dataset"))
    wait_jobs(qtbot, loaded)
    assert loaded.last_import.matched == 40
    assert loaded.model.counts()["reviewed"] == 40
    with open_workspace(loaded.folder) as ws:
        assert ws.counts()["reviewed"] == 40
    loaded.undo_stack.undo()  # the import is one undoable step
    assert loaded.model.counts()["reviewed"] == 0


def test_viewer_shows_probability_and_history(qtbot, loaded):
    classify_all(qtbot, loaded)
    loaded.select_row(2)
    QTest.keyClick(loaded.view, Qt.Key_Return)
    viewer = loaded.viewer
    assert viewer is not None and viewer.isVisible()
    qtbot.waitUntil(lambda: not viewer.view.item.pixmap().isNull(), timeout=5000)
    assert "P(crack)" in viewer.prediction.text()
    QTest.keyClick(viewer, Qt.Key_C)  # label from the viewer
    assert loaded.model.counts()["reviewed"] == 1
    loaded.select_row(2)
    qtbot.waitUntil(lambda: "Crack" in viewer.history.item(0).text(), timeout=5000)  # once saved
    viewer.close()


def test_settings_survive_a_restart(qtbot, tmp_path, models_dir):
    first = open_window(qtbot, tmp_path / "s.ini")
    first.set_thumb_size(200)
    first.set_filter("uncertain")
    first.close()
    second = open_window(qtbot, tmp_path / "s.ini")
    assert second.delegate.thumb_size == 200 and second.model.filter == "uncertain"
    assert not math.isnan(second.settings.band)
    second.close()


def test_classify_selection_then_only_the_unclassified(qtbot, loaded):
    loaded.view.selectionModel().select(
        QItemSelection(loaded.model.index(0), loaded.model.index(4)), QItemSelectionModel.ClearAndSelect)
    with qtbot.waitSignal(loaded.classify_finished, timeout=30000) as blocker:
        loaded.classify("selection")
    assert blocker.args[0].total == 5
    qtbot.waitUntil(lambda: loaded.classifier_job is None)
    assert loaded.model.counts()["classified"] == 5
    with qtbot.waitSignal(loaded.classify_finished, timeout=30000) as blocker:
        loaded.classify("unclassified")
    assert blocker.args[0].total == 35
    qtbot.waitUntil(lambda: loaded.classifier_job is None)
    assert loaded.model.counts()["classified"] == 40


def test_cancel_stops_classification_and_keeps_what_was_done(qtbot, loaded):
    reports = []
    loaded.classify_finished.connect(reports.append)
    loaded.classify("all")
    job = loaded.classifier_job
    assert job is not None and loaded.job_bar.current() is job
    loaded.job_bar.cancel_button.click()  # checked between batches: the first batch may still finish
    qtbot.waitUntil(lambda: loaded.classifier_job is None, timeout=30000)
    (report,) = reports
    assert report.cancelled and report.classified < report.total == 40
    done = loaded.model.counts()["classified"]
    assert done == report.classified
    with open_workspace(loaded.folder) as ws:
        assert ws.counts(loaded.model_key)["classified"] == done  # the grid shows what the store has


def test_help_overlay_and_thumbnail_size(qtbot, loaded):
    QTest.keyClick(loaded.view, Qt.Key_Question)
    assert loaded.overlay.isVisible()
    QTest.keyClick(loaded.overlay, Qt.Key_Escape)
    assert not loaded.overlay.isVisible()
    loaded.actions.thumb_slider.setValue(220)
    assert loaded.delegate.thumb_size == 220 and loaded.settings.thumb_size == 220


def test_a_camera_photo_shows_its_own_thumbnail_when_large_enough(qtbot, window, tmp_path):
    """Cameras embed a 160x120 thumbnail in EXIF: the grid shows it at sizes up to 160 instead of decoding the
    photo, and decodes the photo for larger cards. Here the embedded one is blue and the photo grey (noise around
    mid-grey: a camera-sized file, over thumbnails.EMBEDDED_WORTH_BYTES)."""
    from PIL import Image

    from crackdesk.ui.thumbnails import EMBEDDED_WORTH_BYTES
    from factories import camera_exif, with_thumbnail

    folder = tmp_path / "site"
    folder.mkdir()
    exif = with_thumbnail(camera_exif(orientation=6), Image.new("RGB", (160, 120), (0, 0, 255)))
    grey = np.random.default_rng(0).integers(88, 169, (1800, 2400, 3), dtype=np.uint8)
    Image.fromarray(grey).save(folder / "a.jpg", quality=90, exif=exif)
    assert (folder / "a.jpg").stat().st_size > EMBEDDED_WORTH_BYTES
    load_folder(qtbot, window, folder)

    def shown(px: int):
        window.set_thumb_size(px)
        qtbot.waitUntil(lambda: window.thumbnails.pixmap("a.jpg") is not None, timeout=10000)
        image = window.thumbnails.pixmap("a.jpg").toImage()
        centre = image.pixelColor(image.width() // 2, image.height() // 2)
        return (image.width(), image.height()), (centre.red(), centre.blue())

    size, (red, blue) = shown(144)
    assert size == (108, 144) and blue > 200 and red < 60  # the camera's own, upright (orientation 6)
    size, (red, blue) = shown(200)
    assert size == (150, 200) and abs(red - 128) < 16 and abs(blue - 128) < 16  # the photo, decoded


def test_reopening_a_folder_keeps_labels_and_predictions(qtbot, loaded, tmp_path):
    classify_all(qtbot, loaded)
    loaded.select_row(0)
    QTest.keyClick(loaded.view, Qt.Key_C)
    folder = loaded.folder
    loaded.close_folder()
    load_folder(qtbot, loaded, folder)
    assert loaded.model.counts()["reviewed"] == 1
    assert loaded.model.counts()["classified"] == 40
    assert loaded.settings.recent_folders()[0] == str(folder)


def test_dropping_a_folder_opens_it(qtbot, window, tmp_path):
    from PySide6.QtCore import QMimeData, QPointF, QUrl
    from PySide6.QtGui import QDropEvent

    folder = demo_folder(tmp_path, count=6)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(folder))])
    event = QDropEvent(QPointF(50, 50), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    with qtbot.waitSignal(window.folder_loaded, timeout=20000):
        window.dropEvent(event)
    assert window.model.rowCount() == 6 and window.folder == folder.resolve()


def test_gui_command_quits_by_itself(tmp_path, models_dir):
    import os
    import subprocess
    import sys

    folder = demo_folder(tmp_path, count=4)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(tmp_path / "config"))
    done = subprocess.run([sys.executable, "-m", "crackdesk", "gui", str(folder), "--quit-after", "1.5"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (folder / ".crackdesk" / "workspace.sqlite").is_file()


def test_thumbnail_cache_is_reused_and_pruned(qtbot, loaded):
    from crackdesk.ui.thumbnails import prune_cache

    qtbot.waitUntil(lambda: loaded.thumbnails.painted_any, timeout=10000)
    qtbot.waitUntil(lambda: loaded.thumbnails.pending() == 0, timeout=10000)
    cached = list(loaded.thumbnails.cache_dir.glob("??/*.jpg"))
    assert cached
    assert prune_cache(loaded.thumbnails.cache_dir, limit=0) == len(cached)
    assert not list(loaded.thumbnails.cache_dir.glob("??/*.jpg"))


def test_new_probabilities_and_thumbnails_repaint_only_their_cards(qtbot, loaded):
    """A classified photo or an arrived thumbnail repaints its own cards, not every card on screen (about 10 ms a
    time, many times a second while a folder is classified)."""
    from PySide6.QtCore import QEvent, QObject, QRect

    qtbot.waitUntil(lambda: loaded.thumbnails.pending() == 0, timeout=10000)
    view, model = loaded.view, loaded.model
    per_line = view.viewport().width() // view.gridSize().width()
    assert per_line >= 3 and model.rowCount() > per_line + 2

    class PaintedRects(QObject):
        def __init__(self):
            super().__init__()
            self.rects = []

        def eventFilter(self, obj, event):
            if event.type() == QEvent.Paint:
                self.rects.append(event.rect())
            return False

    painted = PaintedRects()
    view.viewport().installEventFilter(painted)

    def painted_after(change) -> QRect:
        qtbot.wait(100)  # repaints already due
        painted.rects.clear()
        change()
        qtbot.waitUntil(lambda: bool(painted.rects), timeout=5000)
        qtbot.wait(100)
        return painted.rects[0].united(painted.rects[-1])

    card = [view.visualRect(model.index(row)) for row in range(per_line + 2)]
    one_line = painted_after(lambda: model.dataChanged.emit(model.index(1), model.index(2)))
    assert one_line == card[1].united(card[2])
    two_lines = painted_after(lambda: model.dataChanged.emit(model.index(1), model.index(per_line)))
    assert two_lines.top() == card[1].top() and two_lines.bottom() == card[per_line].bottom()
    assert two_lines.height() < view.viewport().height()
    thumbnail = painted_after(lambda: loaded.thumbnails.updated.emit([model.path_at(per_line + 1)]))
    assert thumbnail == card[per_line + 1]
    view.viewport().removeEventFilter(painted)


def test_cyclic_collector_is_off_only_while_a_folder_opens(qtbot, tmp_path):
    """Opening builds the folder's rows in workers with the collector off (a full pass stalled the grid); it is
    back on once the folder is loaded, and after an open that is cut short."""
    import gc

    from crackdesk.core.demo import write_demo_folder
    from crackdesk.ui.main_window import MainWindow
    from crackdesk.ui.settings import Settings

    write_demo_folder(tmp_path / "photos", count=6, seed=1)
    window = MainWindow(Settings(tmp_path / "settings.ini"))
    qtbot.addWidget(window)
    with qtbot.waitSignal(window.folder_loaded, timeout=30000):
        window.open_folder(tmp_path / "photos")
        assert not gc.isenabled()
    assert gc.isenabled()
    window.open_folder(tmp_path / "photos")
    assert not gc.isenabled()
    window.close_folder()  # cut short
    assert gc.isenabled()

"""Large photos in the app: classified by sliding window, their heatmap shown in the viewer, and a tile
labelled there stored as a correction for retraining."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from crackdesk.core.demo import concrete_image
from crackdesk.core.store import open_workspace
from test_gui_helpers import classify_all, load_folder


def test_large_photo_heatmap_in_viewer_and_tile_labels(qtbot, window, tmp_path):
    folder = tmp_path / "site"
    folder.mkdir()
    concrete_image(7, True, size=(227 * 4, 227 * 3), cracks=2).save(folder / "photo.jpg", quality=90)
    concrete_image(8, False).save(folder / "patch.jpg", quality=90)
    load_folder(qtbot, window, folder)
    classify_all(qtbot, window)
    row = [window.model.paths[window.model.image_index(r)] for r in range(2)].index("photo.jpg")
    window.select_row(row)
    QTest.keyClick(window.view, Qt.Key_Return)
    viewer = window.viewer
    qtbot.waitUntil(lambda: not viewer.view.item.pixmap().isNull(), timeout=5000)
    assert viewer.heat.item is not None and viewer.heat.isEnabled()  # 12 stored tiles drawn over the photo
    assert "12 tiles: " in viewer.prediction.text()  # and why the photo got its verdict

    viewer.tile_label_requested.emit(227, 0, 227, 227, "crack")  # what hovering a tile and pressing C sends
    window.ws.flush()  # written by the workspace's writer thread
    with open_workspace(folder) as ws:
        (path, box, label), = ws.labeled_tiles()
    assert path.name == "photo.jpg" and box == (227, 0, 227, 227) and label == "crack"

    window.select_row(1 - row)  # a small image has no heatmap
    assert viewer.heat.item is None and not viewer.heat.isEnabled()
    viewer.close()


def test_undo_and_redo_work_while_the_viewer_has_focus(qtbot, window, tmp_path):
    folder = tmp_path / "site"
    folder.mkdir()
    for seed in range(3):
        concrete_image(seed, seed == 0).save(folder / f"p{seed}.jpg", quality=90)
    load_folder(qtbot, window, folder)
    window.select_row(0)
    QTest.keyClick(window.view, Qt.Key_Return)
    viewer = window.viewer
    viewer.activateWindow()
    qtbot.waitUntil(viewer.isActiveWindow, timeout=5000)  # shortcuts act in the active window only
    image_id = window.current_id()
    QTest.keyClick(viewer, Qt.Key_C)
    window.ws.flush()
    with open_workspace(folder) as ws:
        assert ws.label_of(image_id) == "crack"
    QTest.keyClick(viewer, Qt.Key_Z, Qt.ControlModifier)
    window.ws.flush()
    with open_workspace(folder) as ws:
        assert ws.label_of(image_id) is None
    QTest.keyClick(viewer, Qt.Key_Z, Qt.ControlModifier | Qt.ShiftModifier)
    window.ws.flush()
    with open_workspace(folder) as ws:
        assert ws.label_of(image_id) == "crack"
    viewer.close()

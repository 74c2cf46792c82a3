"""Shared pieces of the GUI tests (no tests here): a real main window offscreen on a demo folder with a real ONNX model."""

from __future__ import annotations

from pathlib import Path

from crackdesk.core.demo import write_demo_folder


def open_window(qtbot, settings_path: Path):
    from crackdesk.ui.app import make_app
    from crackdesk.ui.main_window import MainWindow
    from crackdesk.ui.settings import Settings

    make_app()
    window = MainWindow(Settings(settings_path))
    qtbot.addWidget(window)
    window.choose_model(None)
    window.show()
    return window


def load_folder(qtbot, window, folder: Path) -> None:
    with qtbot.waitSignal(window.folder_loaded, timeout=20000):
        window.open_folder(folder)


def classify_all(qtbot, window) -> None:
    with qtbot.waitSignal(window.classify_finished, timeout=60000):
        window.classify("all")
    qtbot.waitUntil(lambda: window.classifier_job is None, timeout=10000)


def wait_jobs(qtbot, window, timeout: int = 30000) -> None:
    qtbot.waitUntil(lambda: not [j for j in window.jobs if j is not window.hasher], timeout=timeout)


def demo_folder(tmp_path: Path, count: int = 40, seed: int = 2) -> Path:
    folder = tmp_path / "photos"
    write_demo_folder(folder, count=count, seed=seed)
    return folder


def test_grid_scrolls_to_a_card_beyond_the_first_layout_turn(qtbot):
    """Right after the rows are reset, Qt has laid out only the first 100 cards and its scrollTo stops short;
    the grid's scroll_to keeps trying as the layout grows."""
    from PySide6.QtCore import QSize

    from crackdesk.ui.gallery_model import GalleryModel
    from crackdesk.ui.gallery_view import GalleryView

    model = GalleryModel()
    view = GalleryView()
    qtbot.addWidget(view)
    view.setModel(model)
    view.set_card_size(QSize(156, 194))  # as the window sets it from its delegate
    view.resize(900, 600)
    view.show()
    model.set_paths([f"part{i // 1000}/img_{i:05d}.jpg" for i in range(6000)])
    target = model.index(5000)
    view.scrollTo(target)
    assert not view.viewport().rect().intersects(view.visualRect(target))  # Qt's own stops short
    view.scroll_to(target)
    qtbot.waitUntil(lambda: view.viewport().rect().intersects(view.visualRect(target)), timeout=10000)
    assert view.verticalScrollBar().value() > 0

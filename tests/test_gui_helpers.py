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

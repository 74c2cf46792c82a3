"""Run as a child process on an X display (no tests here): opens the real main window on FOLDER, then each
dialog in turn at its initial size, and prints one JSON line with the screen's available area and every
window's frame geometry. tests/test_desktop.py checks they fit; a test process cannot switch Qt from the
offscreen platform to xcb, hence the child."""

import json
import sys

from PySide6.QtCore import QEventLoop, QTimer

from crackdesk.ui.app import make_app
from crackdesk.ui.main_window import MainWindow
from crackdesk.ui.settings import Settings


def rect(r) -> list[int]:
    return [r.x(), r.y(), r.width(), r.height()]


def settle(app, ms: int = 300) -> None:
    """Let the windows map and the X server report their final geometry."""
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def main(folder: str, settings: str) -> None:
    app = make_app()
    window = MainWindow(Settings(settings))
    window.choose_model(None)
    loaded = QEventLoop()
    window.folder_loaded.connect(loaded.quit)
    QTimer.singleShot(20000, loaded.quit)
    window.show()
    window.open_folder(folder)
    loaded.exec()
    assert window.ws is not None, f"{folder} did not load"
    settle(app)
    frames = {"main": rect(window.frameGeometry())}
    window.select_row(0)  # the viewer shows the selected image
    for name, opener, dialog in (("models", window.actions.open_models, lambda: window.models_dialog),
                                 ("retrain", window.actions.open_retrain, lambda: window.retrain_dialog),
                                 ("viewer", window.open_viewer, lambda: window.viewer),
                                 ("report", window.actions.export_report.trigger, lambda: window.report_dialog)):
        opener()
        settle(app)
        assert dialog().isVisible(), name
        frames[name] = rect(dialog().frameGeometry())
        dialog().close()
    screen = window.screen()
    print(json.dumps({"screen": rect(screen.geometry()), "available": rect(screen.availableGeometry()),
                      "frames": frames}), flush=True)
    window.close_folder()
    window.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

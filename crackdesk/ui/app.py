"""Starting the desktop app: `crackdesk`, `crackdesk gui [FOLDER] [--model M] [--workspace W]`."""

from __future__ import annotations

import sys

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from .theme import apply_theme


GIL_SWITCH_INTERVAL = 0.001


def make_app(argv: list[str] | None = None) -> QApplication:
    # Painting is many short Python calls, each needing the GIL back from the worker threads; handing it
    # over after 1 ms instead of 5 ms keeps the GUI thread from waiting in line (fewer, shorter stalls).
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    app = QApplication.instance()
    if app is None:
        app = QApplication(argv or [sys.argv[0]])
        app.setApplicationName("CrackDesk")
        app.setOrganizationName("CrackDesk")
        app.setApplicationDisplayName("CrackDesk")
    apply_theme(app)
    return app


def run_app(folder: str | None = None, model: str | None = None, workspace: str | None = None,
            quit_after: float | None = None) -> int:
    app = make_app()
    from .main_window import MainWindow

    window = MainWindow()
    window.choose_model(model)
    window.show()
    if folder:
        window.open_folder(folder, workspace)
    if quit_after is not None:
        QTimer.singleShot(int(quit_after * 1000), window.close)
        QTimer.singleShot(int(quit_after * 1000) + 50, app.quit)
    status = app.exec()
    window.close_folder()  # no worker thread may outlive the event loop (Qt aborts the process)
    return status

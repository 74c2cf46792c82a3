"""Initial window sizes that fit the screen: a size wanted on a large monitor, shrunk on a small one (a
1366x768 laptop) so the title bar and the bottom buttons stay reachable. The layouts' minimum sizes are
kept small enough for that screen; tests/test_desktop.py checks it on a real X server."""

from __future__ import annotations

from PySide6.QtWidgets import QWidget

# Room for what the window manager adds around a window: a title bar (up to ~40 px) and borders.
DECORATION_W, DECORATION_H = 16, 48


def fit_to_screen(widget: QWidget, width: int, height: int) -> None:
    """Resize to width x height, or to the available screen area less the decorations when that is smaller."""
    parent = widget.parentWidget()
    screen = (parent.window() if parent is not None else widget).screen()
    area = screen.availableGeometry()
    widget.resize(min(width, area.width() - DECORATION_W), min(height, area.height() - DECORATION_H))

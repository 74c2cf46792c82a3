"""One palette for the whole app: crack is red-orange, no crack is teal-green, uncertain is amber.
Everything that paints a label colour takes it from here, so the grid, viewer and dialogs agree."""

from __future__ import annotations

from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import QApplication

CRACK = QColor("#e4572e")
NO_CRACK = QColor("#17a398")
UNCERTAIN = QColor("#f2a541")
UNKNOWN = QColor("#8a94a6")
ACCENT = QColor("#3d7eff")

WINDOW = QColor("#1e2229")
PANEL = QColor("#262b33")
BASE = QColor("#15181d")
TEXT = QColor("#e6e9ef")
MUTED = QColor("#9aa3b2")
BORDER = QColor("#3a414d")

LABEL_COLORS = {"crack": CRACK, "no_crack": NO_CRACK, None: UNKNOWN}
LABEL_NAMES = {"crack": "Crack", "no_crack": "No crack", None: "—"}

STYLESHEET = f"""
QMainWindow, QDialog {{ background: {WINDOW.name()}; }}
QToolBar {{ background: {PANEL.name()}; border: none; border-bottom: 1px solid {BORDER.name()}; spacing: 6px;
            padding: 4px 6px; }}
QToolBar QLabel {{ color: {MUTED.name()}; padding-left: 6px; }}
QToolButton {{ color: {TEXT.name()}; padding: 4px 8px; border-radius: 4px; }}
QToolButton:hover {{ background: #323844; }}
QToolButton:pressed, QToolButton:checked {{ background: #3b4350; }}
QStatusBar {{ background: {PANEL.name()}; color: {MUTED.name()}; border-top: 1px solid {BORDER.name()}; }}
QStatusBar QLabel {{ color: {MUTED.name()}; padding: 0 6px; }}
QListView {{ background: {BASE.name()}; border: none; }}
QComboBox, QSpinBox, QDoubleSpinBox, QLineEdit {{ background: #2d333d; color: {TEXT.name()};
    border: 1px solid {BORDER.name()}; border-radius: 4px; padding: 3px 6px; min-height: 20px; }}
QComboBox QAbstractItemView {{ background: #2d333d; color: {TEXT.name()}; selection-background-color: {ACCENT.name()}; }}
QPushButton {{ background: #2f3540; color: {TEXT.name()}; border: 1px solid {BORDER.name()}; border-radius: 4px;
               padding: 5px 14px; }}
QPushButton:hover {{ background: #38404c; }}
QPushButton[primary="true"] {{ background: {ACCENT.name()}; border-color: {ACCENT.name()}; }}
QPushButton:disabled {{ color: #6b7380; }}
QProgressBar {{ background: #2d333d; border: 1px solid {BORDER.name()}; border-radius: 4px; color: {TEXT.name()};
                text-align: center; max-height: 14px; }}
QProgressBar::chunk {{ background: {ACCENT.name()}; border-radius: 3px; }}
QTableWidget, QTextBrowser, QPlainTextEdit, QListWidget {{ background: {BASE.name()}; color: {TEXT.name()};
    border: 1px solid {BORDER.name()}; gridline-color: {BORDER.name()}; }}
QHeaderView::section {{ background: {PANEL.name()}; color: {MUTED.name()}; border: none;
    border-bottom: 1px solid {BORDER.name()}; padding: 4px; }}
QGroupBox {{ color: {MUTED.name()}; border: 1px solid {BORDER.name()}; border-radius: 6px; margin-top: 14px;
             padding-top: 8px; }}
QGroupBox::title {{ subcontrol-origin: margin; left: 10px; padding: 0 4px; }}
QLabel {{ color: {TEXT.name()}; }}
QLabel[muted="true"] {{ color: {MUTED.name()}; }}
QLabel[error="true"] {{ color: #ffb4a1; background: #4a2620; border: 1px solid {CRACK.name()};
                        border-radius: 4px; padding: 6px; }}
QSlider::groove:horizontal {{ height: 4px; background: {BORDER.name()}; border-radius: 2px; }}
QSlider::handle:horizontal {{ background: {TEXT.name()}; width: 12px; margin: -5px 0; border-radius: 6px; }}
QMenuBar {{ background: {PANEL.name()}; color: {TEXT.name()}; }}
QMenuBar::item:selected {{ background: #3b4350; }}
QMenu {{ background: {PANEL.name()}; color: {TEXT.name()}; border: 1px solid {BORDER.name()}; }}
QMenu::item:selected {{ background: {ACCENT.name()}; }}
QSplitter::handle {{ background: {BORDER.name()}; }}
QCheckBox, QRadioButton {{ color: {TEXT.name()}; }}
"""


def apply_theme(app: QApplication) -> None:
    app.setStyle("Fusion")
    palette = QPalette()
    for role, color in ((QPalette.Window, WINDOW), (QPalette.Base, BASE), (QPalette.AlternateBase, PANEL),
                        (QPalette.Text, TEXT), (QPalette.WindowText, TEXT), (QPalette.Button, PANEL),
                        (QPalette.ButtonText, TEXT), (QPalette.Highlight, ACCENT),
                        (QPalette.HighlightedText, QColor("white")), (QPalette.ToolTipBase, PANEL),
                        (QPalette.ToolTipText, TEXT), (QPalette.PlaceholderText, MUTED)):
        palette.setColor(role, color)
    app.setPalette(palette)
    font = QFont(app.font())
    font.setPointSizeF(max(9.5, font.pointSizeF()))
    app.setFont(font)
    app.setStyleSheet(STYLESHEET)

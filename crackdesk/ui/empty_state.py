"""What the window shows before a folder is open: how to start, and the recent folders."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QPushButton, QVBoxLayout, QWidget

from . import theme


class EmptyState(QWidget):
    def __init__(self, window):
        super().__init__()
        self.window = window
        self.layout_ = QVBoxLayout(self)
        self.layout_.setAlignment(Qt.AlignCenter)
        title = QLabel("Open a folder of concrete photos")
        font = title.font()
        font.setPointSizeF(font.pointSizeF() + 6)
        font.setBold(True)
        title.setFont(font)
        hint = QLabel("Drop a folder here, or press Ctrl+O. Every image is classified crack / no crack;\n"
                      "correct the labels with C and N, and retrain the model on your corrections.")
        hint.setProperty("muted", True)
        hint.setAlignment(Qt.AlignCenter)
        button = QPushButton("Open folder…")
        button.setProperty("primary", True)
        button.clicked.connect(lambda: window.actions.open_dialog())
        for w in (title, hint):
            self.layout_.addWidget(w, 0, Qt.AlignHCenter)
        self.layout_.addSpacing(12)
        self.layout_.addWidget(button, 0, Qt.AlignHCenter)
        self.recent_box = QVBoxLayout()
        self.layout_.addSpacing(18)
        self.layout_.addLayout(self.recent_box)

    def set_recent(self, folders: list[str]) -> None:
        while self.recent_box.count():
            self.recent_box.takeAt(0).widget().deleteLater()
        if folders:
            heading = QLabel("RECENT")
            heading.setProperty("muted", True)
            self.recent_box.addWidget(heading, 0, Qt.AlignHCenter)
        for folder in folders[:5]:
            link = QPushButton(f"{Path(folder).name}   —   {folder}")
            link.setFlat(True)
            link.setStyleSheet(f"color: {theme.ACCENT.name()}; border: none; text-align: center;")
            link.clicked.connect(lambda _=False, f=folder: self.window.open_folder(f))
            self.recent_box.addWidget(link, 0, Qt.AlignHCenter)

"""Preferences kept between sessions (QSettings): window geometry, thumbnail size,
uncertainty band, filter and sort, recent folders. Tests and the benchmark pass their own file."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings

MAX_RECENT = 8


class Settings:
    def __init__(self, path: str | Path | None = None):
        if path is not None:
            self.qt = QSettings(str(path), QSettings.IniFormat)
        else:
            self.qt = QSettings(QSettings.IniFormat, QSettings.UserScope, "CrackDesk", "CrackDesk")

    def _get(self, key: str, default, kind):
        value = self.qt.value(key, default)
        try:
            return kind(value)
        except (TypeError, ValueError):
            return default

    def _set(self, key: str, value) -> None:
        self.qt.setValue(key, value)
        self.qt.sync()

    @property
    def thumb_size(self) -> int:
        return min(320, max(80, self._get("view/thumb_size", 144, int)))

    @thumb_size.setter
    def thumb_size(self, px: int) -> None:
        self._set("view/thumb_size", int(px))

    @property
    def band(self) -> float:
        return min(0.5, max(0.01, self._get("triage/uncertainty_band", 0.15, float)))

    @band.setter
    def band(self, value: float) -> None:
        self._set("triage/uncertainty_band", float(value))

    @property
    def filter(self) -> str:
        return str(self.qt.value("triage/filter", "all"))

    @filter.setter
    def filter(self, name: str) -> None:
        self._set("triage/filter", name)

    @property
    def sort(self) -> str:
        return str(self.qt.value("triage/sort", "name"))

    @sort.setter
    def sort(self, name: str) -> None:
        self._set("triage/sort", name)

    @property
    def geometry(self):
        return self.qt.value("window/geometry")

    @geometry.setter
    def geometry(self, data) -> None:
        self._set("window/geometry", data)

    def recent_folders(self) -> list[str]:
        value = self.qt.value("files/recent", [])
        if isinstance(value, str):
            value = [value]
        return [v for v in (value or []) if v]

    def add_recent_folder(self, folder: str | Path) -> None:
        folder = str(Path(folder).resolve())
        items = [folder] + [f for f in self.recent_folders() if f != folder]
        self._set("files/recent", items[:MAX_RECENT])

    @property
    def inspector(self) -> str:
        """The name last put on a report: the same person exports most reports."""
        return str(self.qt.value("report/inspector", "") or "")

    @inspector.setter
    def inspector(self, name: str) -> None:
        self._set("report/inspector", name)

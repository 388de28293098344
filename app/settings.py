"""What the window remembers between sessions (QSettings): geometry, last folders, recent models."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings

MAX_RECENT = 8


class Settings:
    """A thin typed layer over QSettings; `path` gives an isolated INI file (tests, the self-test)."""

    def __init__(self, path: str | None = None):
        if path:
            self._q = QSettings(path, QSettings.Format.IniFormat)
        else:
            self._q = QSettings("qdq-studio", "qdq-studio")

    def recent_models(self) -> list[str]:
        value = self._q.value("recent_models", [])
        items = [value] if isinstance(value, str) else list(value or [])
        return [p for p in items if p]

    def add_recent_model(self, path: str) -> list[str]:
        items = [path] + [p for p in self.recent_models() if p != path]
        self._q.setValue("recent_models", items[:MAX_RECENT])
        return items[:MAX_RECENT]

    def last_folder(self, kind: str) -> str:
        """The folder a file dialog of this kind last used, or the home folder."""
        folder = self._q.value(f"folders/{kind}", "")
        return folder if folder and Path(folder).is_dir() else str(Path.home())

    def set_last_folder(self, kind: str, path: str) -> None:
        p = Path(path)
        self._q.setValue(f"folders/{kind}", str(p if p.is_dir() else p.parent))

    def geometry(self) -> QByteArray | None:
        value = self._q.value("window/geometry")
        return value if isinstance(value, QByteArray) else None

    def save_geometry(self, geometry: QByteArray) -> None:
        self._q.setValue("window/geometry", geometry)

    def sync(self) -> None:
        self._q.sync()

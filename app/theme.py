"""Follow the system's light or dark scheme with the Fusion style and one templated style sheet."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

from app import PACKAGE_DIR

TONES = {
    "light": {
        "ok": "#1a7f37",
        "warn": "#9a6700",
        "bad": "#cf222e",
        "ok_bg": "#dafbe1",
        "warn_bg": "#fff8c5",
        "bad_bg": "#ffebe9",
        "muted": "#57606a",
        "border": "#d0d7de",
        "nav_bg": "#f3f4f6",
        "text": "#1f2328",
    },
    "dark": {
        "ok": "#3fb950",
        "warn": "#d29922",
        "bad": "#f85149",
        "ok_bg": "#12261e",
        "warn_bg": "#272115",
        "bad_bg": "#2d1517",
        "muted": "#8b949e",
        "border": "#3d444d",
        "nav_bg": "#161b22",
        "text": "#e6edf3",
    },
}


def is_dark() -> bool:
    return QGuiApplication.styleHints().colorScheme() == Qt.ColorScheme.Dark


def tone(name: str) -> QColor:
    """A semantic colour (ok, warn, bad, muted, border) for the current scheme."""
    return QColor(TONES["dark" if is_dark() else "light"][name])


def _dark_palette() -> QPalette:
    p = QPalette()
    colors = {
        QPalette.ColorRole.Window: "#1c2128",
        QPalette.ColorRole.WindowText: "#e6edf3",
        QPalette.ColorRole.Base: "#22272e",
        QPalette.ColorRole.AlternateBase: "#2d333b",
        QPalette.ColorRole.ToolTipBase: "#161b22",
        QPalette.ColorRole.ToolTipText: "#e6edf3",
        QPalette.ColorRole.Text: "#e6edf3",
        QPalette.ColorRole.Button: "#2d333b",
        QPalette.ColorRole.ButtonText: "#e6edf3",
        QPalette.ColorRole.Highlight: "#2f81f7",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.Link: "#58a6ff",
        QPalette.ColorRole.PlaceholderText: "#8b949e",
        QPalette.ColorRole.Mid: "#3d444d",
    }
    for role, value in colors.items():
        p.setColor(role, QColor(value))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor("#6e7681"))
    return p


def _light_palette() -> QPalette:
    p = QApplication.style().standardPalette()
    p.setColor(QPalette.ColorRole.Highlight, QColor("#0969da"))
    p.setColor(QPalette.ColorRole.HighlightedText, QColor("#ffffff"))
    return p


def style_sheet() -> str:
    text = (PACKAGE_DIR / "style.qss").read_text(encoding="utf-8")
    for key, value in TONES["dark" if is_dark() else "light"].items():
        text = text.replace(f"@{key}@", value)
    return text


def apply_theme(app: QApplication) -> None:
    """Style the app now and again whenever the system switches between light and dark."""
    app.setStyle("Fusion")

    def update():
        app.setPalette(_dark_palette() if is_dark() else _light_palette())
        app.setStyleSheet(style_sheet())

    update()
    app.styleHints().colorSchemeChanged.connect(lambda _scheme: update())

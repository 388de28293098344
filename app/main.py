"""`qdq-studio`: the desktop window. Starts the worker at once, so PyTorch loads while the window paints."""

from __future__ import annotations

import time

LAUNCHED = time.perf_counter()  # before the Qt imports, so start-up time includes them

import argparse  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402


def launch_time() -> float:
    """When this process was created, on the perf_counter clock (Linux: from /proc, else at import)."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        age = uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return LAUNCHED
    return min(LAUNCHED, time.perf_counter() - max(age, 0.0))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="qdq-studio",
        description="QDQ Studio: quantize a PyTorch model to int8, review what changed, export ONNX.",
    )
    parser.add_argument("model", nargs="?", help="a .pt2 or .py model to open")
    parser.add_argument("--demo", action="store_true", help="open with the bundled demo model preloaded")
    parser.add_argument(
        "--self-test",
        metavar="DIR",
        help="drive the window through the demo flow, save page screenshots and selftest.json into DIR, "
        "exit non-zero on failure",
    )
    parser.add_argument(
        "--db", metavar="PATH", help="history database (default: $QDQ_STUDIO_DB or the per-user file)"
    )
    return parser.parse_args(argv)


def run_bundled_worker() -> int:
    """In the PyInstaller bundle sys.executable is this program, so `-m core.jobs.worker` lands here."""
    import runpy

    sys.argv = sys.argv[:1]
    runpy.run_module("core.jobs.worker", run_name="__main__", alter_sys=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    if getattr(sys, "frozen", False) and sys.argv[1:3] == ["-m", "core.jobs.worker"]:
        return run_bundled_worker()
    launched = launch_time() if argv is None else time.perf_counter()
    args = parse_args(argv)
    from PySide6.QtWidgets import QApplication

    from app.job_client import JobClient
    from app.settings import Settings
    from app.theme import apply_theme
    from app.window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("QDQ Studio")
    app.setOrganizationName("qdq-studio")
    app.setDesktopFileName("qdq-studio")
    apply_theme(app)

    if args.self_test:
        from app.selftest import SelfTest

        return SelfTest(app, Path(args.self_test), db=args.db, launched=launched).run()

    window = MainWindow(JobClient(), Settings(), db_path=args.db)
    if args.model or args.demo:
        window.firstPainted.connect(
            lambda: window.open_path(args.model) if args.model else window.open_demo()
        )
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())

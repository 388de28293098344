"""`make package`: build the one-folder bundle with PyInstaller, then start it once and report.

The check runs the bundle's own self-test (window, worker, demo flow), so a bundle that is missing a
module fails here instead of on a user's machine. Prints the folder size and the start-up time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DIST = ROOT / "dist"
WORK = ROOT / "build" / "pyinstaller"


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def build() -> Path:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "PyInstaller",
            "--noconfirm",
            "--clean",
            "--distpath",
            str(DIST),
            "--workpath",
            str(WORK),
            str(ROOT / "packaging" / "qdq-studio.spec"),
        ],
        check=True,
        cwd=ROOT,
    )
    bundle = DIST / "qdq-studio"
    (bundle / "qdq-studio.desktop").write_bytes((ROOT / "packaging" / "qdq-studio.desktop").read_bytes())
    return bundle


def smoke(bundle: Path) -> dict:
    out = ROOT / "build" / "package-selftest"
    env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
    started = time.monotonic()
    proc = subprocess.run([str(bundle / "qdq-studio"), "--self-test", str(out)], env=env, timeout=1200)
    report = json.loads((out / "selftest.json").read_text()) if (out / "selftest.json").is_file() else {}
    report["returncode"] = proc.returncode
    report["wall_s"] = round(time.monotonic() - started, 1)
    return report


def main() -> int:
    bundle = build()
    size_mb = folder_size(bundle) / 2**20
    report = smoke(bundle)
    print(f"bundle: {bundle} ({size_mb:.0f} MB)")
    print(
        f"self-test: ok={report.get('ok')} startup_ms={report.get('startup_ms')} "
        f"ui_stall_p99_ms={report.get('ui_stall_p99_ms')} in {report['wall_s']} s"
    )
    return 0 if report.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())

"""Removing a run's files without ever removing anything else.

A run's out_dir is whatever the user typed after --out, possibly their home or a folder of their own
files. So we never delete a tree: we delete the files a run writes (and their temporary or external
data twins such as report.json.tmp or model.int8.onnx.data), then the folder only if that left it empty.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

ARTIFACT_NAMES = (
    "model.int8.onnx",
    "model.int8.pt2",
    "model.float.onnx",
    "report.json",
    "graph.json",
    "tensors.npz",
    "report.html",
)


def _is_run_file(name: str, known: set[str]) -> bool:
    base = name.lstrip(".")
    return any(base == k or base.startswith(k + ".") for k in known)


def _protected(folder: Path) -> bool:
    """The file-system root, the home folder and anything above it are never touched."""
    home = Path.home().resolve()
    return folder == Path(folder.anchor) or folder == home or folder in home.parents


def remove_run_files(out_dir: str | None, artifact_paths: Iterable[str] = ()) -> list[str]:
    """Delete a run's files from out_dir; return the paths left in place because they are not ours.

    artifact_paths are the run's recorded artifacts: those directly inside out_dir count as its files
    too. Artifacts elsewhere (say, an ONNX exported for a deployment team) are the user's and stay.
    """
    if not out_dir:
        return []
    folder = Path(out_dir).expanduser()
    if not folder.is_dir():
        return []
    if folder.is_symlink() or _protected(folder.resolve()):
        return [str(folder)]
    known = set(ARTIFACT_NAMES)
    known.update(
        Path(p).name for p in artifact_paths if Path(p).expanduser().resolve().parent == folder.resolve()
    )
    kept = []
    for entry in folder.iterdir():
        if entry.is_file() and not entry.is_symlink() and _is_run_file(entry.name, known):
            entry.unlink(missing_ok=True)
        else:
            kept.append(str(entry))
    if not kept:
        folder.rmdir()
    return sorted(kept)

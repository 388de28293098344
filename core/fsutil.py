"""Atomic file writes: a killed job never leaves a half file under its final name."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(final: str | os.PathLike):
    """Yield a temporary path next to `final`; rename it into place only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=f".part{final.suffix}", dir=final.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(final: str | os.PathLike, data: bytes | str) -> None:
    with atomic_path(final) as tmp:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)


def save_atomic(final: str | os.PathLike, writer: Callable[[Path], None]) -> None:
    """Run `writer(tmp_path)` and move the result into place."""
    with atomic_path(final) as tmp:
        writer(tmp)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def remove_partials(directory: str | os.PathLike) -> None:
    """Remove temporaries a killed writer left behind."""
    for p in Path(directory).glob(".*.part*"):
        p.unlink(missing_ok=True)

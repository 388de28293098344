"""Run one job and keep the project history truthful, whatever happens to it.

The CLI and the worker both call `run_job`; a quantize run is recorded as running before any work,
and finished as succeeded, failed (with the message), or cancelled. A run whose process dies is found
and marked interrupted by `Store.mark_interrupted` at the next start.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import Cancelled, UserError
from core.jobs.spec import JobSpec, QuantizeOptions
from core.progress import Progress

Emit = Callable[[dict[str, Any]], None]
DISK_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


def default_runs_dir(db_path: Path) -> Path:
    return db_path.parent / "runs"


def user_message(e: BaseException) -> str | None:
    """A plain message for errors the user can act on; None for bugs."""
    if isinstance(e, UserError):
        return str(e)
    if isinstance(e, OSError) and e.errno in DISK_ERRNOS:
        where = f" while writing {e.filename}" if e.filename else ""
        return f"the disk is full (or the file size limit was reached){where}; free some space and run again"
    if isinstance(e, PermissionError):
        return f"permission denied: {e.filename or e}"
    if isinstance(e, MemoryError):
        return "the job ran out of memory; use fewer calibration samples or a smaller batch size"
    return None


def run_job(spec: JobSpec, emit: Emit) -> dict:
    kind, params = spec.kind, dict(spec.params)
    if kind == "quantize":
        return run_quantize(QuantizeOptions.from_dict(params), emit)
    if kind == "devices":
        from core.engine.devices import list_devices

        return {"devices": list_devices()}
    if kind == "inspect":
        from core.engine.inspect import inspect_model

        return inspect_model(params["model"], bool(params.get("trust_code")))
    if kind == "preview":
        from core.engine.preview import preview

        return preview(
            params.get("calib"),
            params["model"],
            bool(params.get("trust_code")),
            params.get("normalize", "imagenet"),
            int(params.get("count", 12)),
        )
    if kind == "sensitivity":
        from core.engine.sensitivity import sensitivity

        target = float(params.pop("target_sqnr_db", 30.0))
        return sensitivity(QuantizeOptions.from_dict(params), target, Progress(emit))
    raise UserError(f"unknown job kind '{kind}'")


def run_quantize(opts: QuantizeOptions, emit: Emit) -> dict:
    from core.engine.pipeline import quantize
    from core.store import open_store

    store = open_store(opts.db)
    try:
        store.mark_interrupted()
        model_path = str(Path(opts.model).expanduser().resolve())
        run_id = store.create_run(
            model_path=model_path,
            preset=opts.preset,
            options=opts.to_dict(),
            device=opts.device,
            out_dir=opts.out_dir or None,
            worker_pid=os.getpid(),
        )
        if not opts.out_dir:
            out = default_runs_dir(Path(store.path)) / f"run-{run_id:05d}"
            opts = dataclasses.replace(opts, out_dir=str(out))
        opts = dataclasses.replace(
            opts, out_dir=str(Path(opts.out_dir).expanduser().resolve()), model=model_path
        )
        store.update_run(run_id, out_dir=opts.out_dir)
        emit({"type": "log", "message": f"run {run_id} writes to {opts.out_dir}"})
        try:
            report = quantize(opts, Progress(emit), run_id=run_id)
        except (Cancelled, KeyboardInterrupt):
            store.finish_run(run_id, "cancelled", error="cancelled by the user")
            raise
        except BaseException as e:
            msg = user_message(e) or f"{type(e).__name__}: {e}"
            store.finish_run(
                run_id, "failed", error=msg if user_message(e) else msg + "\n" + traceback.format_exc()
            )
            if user_message(e) and not isinstance(e, UserError):
                raise UserError(msg) from e
            raise
        store.update_run(run_id, device=report["device"])
        store.finish_run(
            run_id,
            "succeeded",
            metrics=report["metrics"],
            layers=report["layers"],
            artifacts=_artifacts(Path(opts.out_dir), report["artifacts"]),
        )
        return {"run_id": run_id, "out_dir": opts.out_dir, "report": report}
    finally:
        store.close()


def _artifacts(out: Path, names: dict[str, str]) -> list[dict]:
    from core.fsutil import sha256_file

    rows = []
    for kind, name in {**names, "report": "report.json"}.items():
        p = out / name
        if p.exists():
            rows.append({"kind": kind, "path": str(p), "size": p.stat().st_size, "sha256": sha256_file(p)})
    return rows

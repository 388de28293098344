"""The repository API over the history file.

Every call is its own short transaction on a pooled connection, so the window, the worker process
and `qdq` in a terminal can all use one file at the same time; a call that still finds the file
locked after SQLite's busy timeout is retried a few times with backoff.
"""

from __future__ import annotations

import functools
import gc
import json
import numbers
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import String, delete, exc, insert, select, type_coerce, update
from sqlalchemy.orm import Session

from core.errors import UserError
from core.store.db import make_engine, resolve_db_path, upgrade
from core.store.models import (
    ACTIVE_STATUSES,
    FINISHED_STATUSES,
    RUN_STATUSES,
    Artifact,
    LayerStat,
    Model,
    Project,
    Run,
    utcnow,
)
from core.store.rundir import remove_run_files

INTERRUPTED_ERROR = "the process running this job stopped unexpectedly"
DEFAULT_PROJECT = "default"
_LOCK_BACKOFF_S = (0.05, 0.1, 0.2, 0.5, 1.0)

# Timestamps and metrics are read as the text SQLite holds and converted here in one pass: per-row
# type processors and Row attribute access took most of the time of listing 10,000 runs.
_SUMMARY_COLUMNS = (
    Run.id,
    Run.status,
    Run.model_path,
    Run.preset,
    type_coerce(Run.started_at, String),
    type_coerce(Run.finished_at, String),
    Run.out_dir,
    type_coerce(Run.metrics, String),
    Run.device,
    Run.error,
    Run.note,
)
_UPDATABLE = frozenset(
    {
        "status",
        "model_path",
        "preset",
        "options",
        "device",
        "out_dir",
        "metrics",
        "error",
        "worker_pid",
        "note",
        "started_at",
        "finished_at",
    }
)
_LAYER_NUMBERS = {
    "act_scale": float,
    "act_zero_point": int,
    "act_min": float,
    "act_max": float,
    "sqnr_db": float,
}
_LAYER_COLUMNS = {"name", "op", "module", "quantized", "weight_scale", *_LAYER_NUMBERS}


class RunNotFound(UserError, LookupError):
    def __init__(self, run_id: int):
        super().__init__(f"there is no run {run_id} in the history")
        self.run_id = run_id


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (on Windows os.kill(pid, 0) would signal it, so ask the kernel)."""
    if pid <= 0:
        return False
    if os.name == "nt":
        import ctypes

        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return ctypes.get_last_error() == 5  # ERROR_ACCESS_DENIED: it exists, it is not ours
        try:
            code = ctypes.c_ulong()
            return not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)) or code.value == 259
        finally:
            kernel32.CloseHandle(handle)
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True
    return True


def _retry_when_locked(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        for delay in (*_LOCK_BACKOFF_S, None):
            try:
                return fn(*args, **kwargs)
            except exc.OperationalError as e:
                busy = "locked" in str(e.orig) or "busy" in str(e.orig)
                if delay is None or not busy:
                    raise
                time.sleep(delay * random.uniform(1.0, 1.5))  # jitter: two waiters should not collide again

    return wrapper


def _check_status(status: str, allowed: Sequence[str] = RUN_STATUSES) -> None:
    if status not in allowed:
        raise ValueError(f"status must be one of {', '.join(allowed)}, not {status!r}")


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Tens of thousands of fresh rows and dicts set off collections of the whole heap (SQLAlchemy's
    included), which doubled the median time of listing 10,000 runs; none of them form cycles."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _iso_utc(stored: str | None) -> str | None:
    """'2026-01-05 09:01:00.000000' as stored (naive UTC, see models.UTCDateTime) -> ISO 8601 with offset."""
    return None if stored is None else stored.replace(" ", "T", 1) + "+00:00"


def _number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _plain(value: Any) -> Any:
    """Path -> str, so callers may pass what they have."""
    return os.fspath(value) if isinstance(value, os.PathLike) else value


def _scale_range(scale: Any) -> tuple[float | None, float | None]:
    if isinstance(scale, dict):
        lo, hi = scale.get("min"), scale.get("max")
        return (float(lo) if _number(lo) else None, float(hi) if _number(hi) else None)
    if _number(scale):
        return float(scale), float(scale)
    if isinstance(scale, (list, tuple)) and scale and all(_number(v) for v in scale):
        return float(min(scale)), float(max(scale))
    return None, None


def _layer_row(run_id: int, idx: int, layer: dict[str, Any]) -> dict[str, Any]:
    """A report `layers` entry as a row; values that do not fit a column go to `extra` unchanged."""
    wmin, wmax = _scale_range(layer.get("weight_scale"))
    extra = {k: v for k, v in layer.items() if k not in _LAYER_COLUMNS}
    row = {
        "run_id": run_id,
        "idx": idx,
        "name": str(layer["name"]),
        "op": layer.get("op"),
        "module": layer.get("module"),
        "quantized": bool(layer.get("quantized", False)),
        "weight_scale_min": wmin,
        "weight_scale_max": wmax,
    }
    for key, cast in _LAYER_NUMBERS.items():
        value = layer.get(key)
        row[key] = cast(value) if _number(value) else None
        if value is not None and row[key] is None:
            extra[key] = value
    row["extra"] = extra or None
    return row


def _layer_dict(row: LayerStat) -> dict[str, Any]:
    has_scale = row.weight_scale_min is not None or row.weight_scale_max is not None
    d = {
        "name": row.name,
        "op": row.op,
        "module": row.module,
        "quantized": row.quantized,
        "weight_scale": {"min": row.weight_scale_min, "max": row.weight_scale_max} if has_scale else None,
        **{key: getattr(row, key) for key in _LAYER_NUMBERS},
    }
    d.update(row.extra or {})
    return d


def _summaries(rows: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
    loads = json.loads
    return [
        {
            "id": run_id,
            "status": status,
            "model_path": model_path,
            "preset": preset,
            "started_at": _iso_utc(started_at),
            "finished_at": _iso_utc(finished_at),
            "out_dir": out_dir,
            "metrics": (loads(metrics) if metrics else None) or {},
            "device": device,
            "error": error,
            "note": note,
        }
        for run_id, status, model_path, preset, started_at, finished_at, out_dir, metrics, device, error, note in rows
    ]


class Store:
    """The project history in one SQLite file; open it with `open_store`."""

    def __init__(self, path: str | os.PathLike[str] | None = None):
        self.path = resolve_db_path(path)
        upgrade(self.path)
        self.engine = make_engine(self.path)
        self._writer = self.engine.execution_options(sqlite_begin="IMMEDIATE")

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[Session]:
        with Session(self._writer) as session, session.begin():
            yield session

    @_retry_when_locked
    def create_run(
        self,
        model_path: str | os.PathLike[str],
        preset: str,
        options: dict[str, Any],
        device: str | None,
        out_dir: str | os.PathLike[str] | None,
        worker_pid: int | None,
        model_sha256: str | None = None,
        model_summary: dict[str, Any] | None = None,
        status: str = "running",
    ) -> int:
        """Record a run that is starting (or queued) and return its id."""
        _check_status(status, ACTIVE_STATUSES)
        model_path = os.fspath(model_path)
        with self._write() as s:
            project_id = s.scalar(select(Project.id).where(Project.name == DEFAULT_PROJECT))
            if project_id is None:
                project = Project(name=DEFAULT_PROJECT)
                s.add(project)
                s.flush()
                project_id = project.id
            model = s.scalar(
                select(Model).where(
                    Model.project_id == project_id,
                    Model.path == model_path,
                    Model.sha256.is_not_distinct_from(model_sha256),
                )
            )
            if model is None:
                model = Model(project_id=project_id, path=model_path, sha256=model_sha256)
                s.add(model)
            if model_summary is not None:
                model.summary = model_summary
            s.flush()
            run = Run(
                project_id=project_id,
                model_id=model.id,
                model_path=model_path,
                preset=preset,
                options=dict(options),
                device=device,
                status=status,
                out_dir=_plain(out_dir),
                worker_pid=worker_pid,
            )
            s.add(run)
            s.flush()
            return run.id

    @_retry_when_locked
    def update_run(self, run_id: int, **fields: Any) -> None:
        """Change some fields of a run, for example out_dir, device, status or note."""
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise TypeError(f"update_run() cannot set {', '.join(sorted(unknown))}")
        if "status" in fields:
            _check_status(fields["status"])
        values = {k: _plain(v) for k, v in fields.items()}
        with self._write() as s:
            self._update(s, run_id, values)

    @staticmethod
    def _update(s: Session, run_id: int, values: dict[str, Any]) -> None:
        stmt = update(Run).where(Run.id == run_id).values(**values)
        if not s.execute(stmt, execution_options={"synchronize_session": False}).rowcount:
            raise RunNotFound(run_id)

    @_retry_when_locked
    def finish_run(
        self,
        run_id: int,
        status: str,
        metrics: dict[str, Any] | None = None,
        error: str | None = None,
        layers: list[dict[str, Any]] | None = None,
        artifacts: list[dict[str, Any]] | None = None,
    ) -> None:
        """Record how a run ended, in one transaction.

        metrics, layers and artifacts left as None keep what the run has (a failed run keeps the
        metrics it got so far); lists replace it. `error` is always written, so success clears it.
        """
        _check_status(status, FINISHED_STATUSES)
        values: dict[str, Any] = {"status": status, "error": error, "finished_at": utcnow()}
        if metrics is not None:
            values["metrics"] = metrics
        with self._write() as s:
            self._update(s, run_id, values)
            if layers is not None:
                s.execute(delete(LayerStat).where(LayerStat.run_id == run_id))
                if layers:
                    s.execute(insert(LayerStat), [_layer_row(run_id, i, x) for i, x in enumerate(layers)])
            if artifacts is not None:
                s.execute(delete(Artifact).where(Artifact.run_id == run_id))
                if artifacts:
                    rows = [
                        {
                            "run_id": run_id,
                            "kind": a["kind"],
                            "path": os.fspath(a["path"]),
                            "size": a.get("size"),
                            "sha256": a.get("sha256"),
                        }
                        for a in artifacts
                    ]
                    s.execute(insert(Artifact), rows)

    @_retry_when_locked
    def list_runs(
        self, model_filter: str | None = None, status: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Newest first. model_filter matches any part of the model path, ignoring ASCII case."""
        query = select(*_SUMMARY_COLUMNS).order_by(Run.started_at.desc(), Run.id.desc())
        if model_filter:
            query = query.where(Run.model_path.contains(model_filter, autoescape=True))
        if status is not None:
            _check_status(status)
            query = query.where(Run.status == status)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn, _gc_paused():
            return _summaries(conn.execute(query).all())

    @_retry_when_locked
    def get_run(self, run_id: int) -> dict[str, Any] | None:
        """The list_runs entry plus options, worker_pid, model_sha256, model_summary, layers, artifacts."""
        query = (
            select(*_SUMMARY_COLUMNS, Run.options, Run.worker_pid, Model.sha256, Model.summary)
            .outerjoin(Model, Run.model_id == Model.id)
            .where(Run.id == run_id)
        )
        with Session(self.engine) as s:
            row = s.execute(query).first()
            if row is None:
                return None
            layers = s.scalars(select(LayerStat).where(LayerStat.run_id == run_id).order_by(LayerStat.idx))
            artifacts = s.scalars(select(Artifact).where(Artifact.run_id == run_id).order_by(Artifact.id))
            run = _summaries([row[: len(_SUMMARY_COLUMNS)]])[0]
            options, worker_pid, model_sha256, model_summary = row[len(_SUMMARY_COLUMNS) :]
            run.update(
                options=options,
                worker_pid=worker_pid,
                model_sha256=model_sha256,
                model_summary=model_summary,
                layers=[_layer_dict(x) for x in layers],
                artifacts=[
                    {"kind": a.kind, "path": a.path, "size": a.size, "sha256": a.sha256} for a in artifacts
                ],
            )
            return run

    @_retry_when_locked
    def delete_run(self, run_id: int, remove_files: bool = True) -> list[str]:
        """Delete a run (its layers and artifacts cascade) and, if asked, the files it wrote.

        Returns what was left on disk because it is not the run's own (see rundir.remove_run_files).
        """
        with self._write() as s:
            run = s.get(Run, run_id)
            if run is None:
                raise RunNotFound(run_id)
            out_dir = run.out_dir
            paths = s.scalars(select(Artifact.path).where(Artifact.run_id == run_id)).all()
            s.delete(run)
        return remove_run_files(out_dir, paths) if remove_files else []

    def compare_runs(self, a: int, b: int) -> dict[str, Any]:
        """Metric deltas (b - a) and per-layer SQNR deltas, layers matched by name."""
        runs = {}
        for run_id in (a, b):
            runs[run_id] = self.get_run(run_id)
            if runs[run_id] is None:
                raise RunNotFound(run_id)
        ra, rb = runs[a], runs[b]
        metrics = {}
        for key in dict.fromkeys([*ra["metrics"], *rb["metrics"]]):
            va, vb = ra["metrics"].get(key), rb["metrics"].get(key)
            metrics[key] = {"a": va, "b": vb, "delta": vb - va if _number(va) and _number(vb) else None}
        la = {x["name"]: x for x in ra["layers"]}
        lb = {x["name"]: x for x in rb["layers"]}
        layers = {}
        for name in la:
            if name not in lb:
                continue
            sa, sb = la[name]["sqnr_db"], lb[name]["sqnr_db"]
            layers[name] = {
                "sqnr_a": sa,
                "sqnr_b": sb,
                "delta": sb - sa if _number(sa) and _number(sb) else None,
                "quantized_a": la[name]["quantized"],
                "quantized_b": lb[name]["quantized"],
            }
        return {
            "a": a,
            "b": b,
            "metrics": metrics,
            "layers": layers,
            "only_in_a": [name for name in la if name not in lb],
            "only_in_b": [name for name in lb if name not in la],
        }

    @_retry_when_locked
    def mark_interrupted(self, is_alive: Callable[[int], bool] = pid_alive) -> list[int]:
        """Mark queued or running runs whose process is gone as interrupted; return their ids.

        A run without a worker_pid has no owner that could still finish it, so it counts as gone.
        The update re-checks status and pid, so a run that finished meanwhile is left alone.
        """
        with self.engine.connect() as conn:
            rows = conn.execute(select(Run.id, Run.worker_pid).where(Run.status.in_(ACTIVE_STATUSES))).all()
        verdict = {pid: is_alive(pid) for pid in {pid for _, pid in rows if pid is not None}}
        dead = [(run_id, pid) for run_id, pid in rows if pid is None or not verdict[pid]]
        if not dead:
            return []
        marked = []
        values = {"status": "interrupted", "error": INTERRUPTED_ERROR, "finished_at": utcnow()}
        with self._write() as s:
            for run_id, pid in dead:
                stmt = (
                    update(Run)
                    .where(
                        Run.id == run_id,
                        Run.status.in_(ACTIVE_STATUSES),
                        Run.worker_pid.is_not_distinct_from(pid),
                    )
                    .values(**values)
                )
                if s.execute(stmt, execution_options={"synchronize_session": False}).rowcount:
                    marked.append(run_id)
        return marked

    def integrity_check(self) -> str:
        """SQLite's own check: 'ok', or one problem per line."""
        with self.engine.connect() as conn:
            return "\n".join(row[0] for row in conn.exec_driver_sql("PRAGMA integrity_check"))


def open_store(path: str | os.PathLike[str] | None = None) -> Store:
    """Open (creating or upgrading) the history: `path`, else $QDQ_STUDIO_DB, else the per-user file."""
    return Store(path)

"""The project history: every run, its metrics, per-layer statistics and files, in one SQLite file.

No Qt and no torch here: the window, the worker and the `qdq` command all use this package.
"""

from core.store.db import default_db_path, head_revision, resolve_db_path
from core.store.models import (
    ACTIVE_STATUSES,
    FINISHED_STATUSES,
    RUN_STATUSES,
    Artifact,
    Base,
    LayerStat,
    Model,
    Project,
    Run,
)
from core.store.repo import INTERRUPTED_ERROR, RunNotFound, Store, open_store, pid_alive
from core.store.rundir import ARTIFACT_NAMES, remove_run_files

__all__ = [
    "ACTIVE_STATUSES",
    "ARTIFACT_NAMES",
    "FINISHED_STATUSES",
    "INTERRUPTED_ERROR",
    "RUN_STATUSES",
    "Artifact",
    "Base",
    "LayerStat",
    "Model",
    "Project",
    "Run",
    "RunNotFound",
    "Store",
    "default_db_path",
    "head_revision",
    "open_store",
    "pid_alive",
    "remove_run_files",
    "resolve_db_path",
]

"""Where the history lives, how connections are set up, and bringing a file up to the current schema."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

import platformdirs
from sqlalchemy import Engine, create_engine, event, exc, text
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from core.errors import UserError

ENV_VAR = "QDQ_STUDIO_DB"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
BUSY_TIMEOUT_MS = 10_000


def default_db_path() -> Path:
    return Path(platformdirs.user_data_dir("qdq-studio", appauthor=False)) / "history.sqlite"


def resolve_db_path(path: str | os.PathLike[str] | None = None) -> Path:
    """An explicit path wins over $QDQ_STUDIO_DB, which wins over the per-user default."""
    chosen = path or os.environ.get(ENV_VAR) or default_db_path()
    return Path(chosen).expanduser().resolve()


def make_engine(path: Path, *, foreign_keys: bool = True, pooled: bool = True) -> Engine:
    """An engine whose connections use WAL and wait for locks instead of failing at once.

    The driver's own transaction handling is switched off so that we emit BEGIN ourselves: writers
    use BEGIN IMMEDIATE (execution option sqlite_begin), which takes the write lock up front; a
    deferred transaction that reads and then writes can fail with SQLITE_BUSY without waiting.
    """
    engine = create_engine(
        URL.create("sqlite+pysqlite", database=str(path)),
        poolclass=None if pooled else NullPool,
        json_serializer=_dump_json,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        _use_wal(cur)
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql(f"BEGIN {conn.get_execution_options().get('sqlite_begin', 'DEFERRED')}")

    return engine


def _use_wal(cur) -> None:
    """Switch the file to WAL once (the mode is stored in the file).

    Changing the journal mode needs an exclusive lock and SQLite may answer "database is locked" at
    once, without the busy handler, while another process is creating the same file: retry briefly.
    """
    if str(cur.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
        return
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _dump_json(value) -> str:
    return json.dumps(value, default=_json_default)


def _json_default(o):
    """numpy scalars and arrays come straight from the engine's analysis; store them as plain numbers."""
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    raise TypeError(f"cannot store {type(o).__name__} in the history: {o!r}")


def _revision_files() -> list[str]:
    """Revision ids, oldest first; files are named <id>_<slug>.py with zero-padded ids (tests check)."""
    return sorted(p.name.split("_", 1)[0] for p in (MIGRATIONS_DIR / "versions").glob("[0-9]*_*.py"))


def head_revision() -> str:
    return _revision_files()[-1]


def upgrade(path: Path) -> None:
    """Bring the file at `path` to the newest schema, creating it if needed.

    A file already at head is recognised without importing Alembic (a noticeable part of start-up).
    Otherwise the upgrade runs in one BEGIN IMMEDIATE transaction, so two processes opening a new
    file at once cannot both create the tables, and with foreign keys off, so a table rebuild in
    batch mode cannot cascade-delete rows; the references are checked before commit instead.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(path, foreign_keys=False, pooled=False)
    try:
        with engine.connect() as conn:
            if _current_revision(conn) == head_revision():
                return
        with engine.execution_options(sqlite_begin="IMMEDIATE").begin() as conn:
            _run_alembic(conn)
            bad = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if bad:
                raise RuntimeError(f"migration left {len(bad)} broken references in {path}: {bad[:5]}")
    except exc.DatabaseError as e:
        if isinstance(e.orig, sqlite3.DatabaseError) and "not a database" in str(e.orig):
            raise UserError(f"{path} is not a QDQ Studio history file (not an SQLite database)") from e
        raise
    finally:
        engine.dispose()


def _current_revision(conn) -> str | None:
    has_table = conn.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='alembic_version'"
    ).first()
    if not has_table:
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _run_alembic(conn) -> None:
    from alembic import command
    from alembic.config import Config

    known = _revision_files()
    current = _current_revision(conn)
    if current is not None and current not in known:
        raise UserError(
            f"this history file was written by a newer QDQ Studio (schema {current}); "
            "update the app, or choose another file with --db or $" + ENV_VAR
        )
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "head")

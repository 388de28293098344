"""Alembic environment.

The store passes its own connection (already inside a BEGIN IMMEDIATE transaction) through
config.attributes. From the command line, for writing new revisions, pass the file with -x db=PATH:
    alembic -c core/store/migrations/alembic.ini -x db=dev.sqlite revision --autogenerate -m "..."
"""

from __future__ import annotations

from alembic import context

from core.store.db import make_engine, resolve_db_path
from core.store.models import Base


def _run(connection) -> None:
    # render_as_batch: SQLite cannot ALTER most things, so autogenerate writes table rebuilds.
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    db = resolve_db_path(context.get_x_argument(as_dictionary=True).get("db"))
    engine = make_engine(db, foreign_keys=False, pooled=False)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()

"""Tables of the project history.

Revision 0001 in migrations/versions spells the first schema out by hand, so these classes may move
on while old files still upgrade; tests check that migrations and models agree.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

RUN_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "interrupted")
ACTIVE_STATUSES = ("queued", "running")
FINISHED_STATUSES = ("succeeded", "failed", "cancelled", "interrupted")

# Named constraints let Alembic's batch mode (SQLite table rebuilds) find them again.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator):
    """SQLite keeps no time zone: store naive UTC, hand back aware UTC so isoformat() is unambiguous."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(none_as_null=True),
        float: Float(),
        str: String(),
    }


class Project(Base):
    __tablename__ = "project"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Model(Base):
    __tablename__ = "model"
    __table_args__ = (Index("ix_model_path_sha256", "project_id", "path", "sha256", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    path: Mapped[str]
    sha256: Mapped[str | None]
    summary: Mapped[dict[str, Any] | None]


class Run(Base):
    __tablename__ = "run"
    __table_args__ = (
        CheckConstraint(f"status IN {RUN_STATUSES!r}", name="status"),
        {"sqlite_autoincrement": True},  # ids name run folders; never hand one out twice
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), index=True)
    model_id: Mapped[int | None] = mapped_column(ForeignKey("model.id", ondelete="SET NULL"), index=True)
    model_path: Mapped[str] = mapped_column(index=True)
    preset: Mapped[str]
    options: Mapped[dict[str, Any]]
    device: Mapped[str | None]
    status: Mapped[str] = mapped_column(index=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    finished_at: Mapped[datetime | None]
    out_dir: Mapped[str | None]
    metrics: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    worker_pid: Mapped[int | None]
    note: Mapped[str | None] = mapped_column(Text)  # revision 0002

    # The database cascades (ON DELETE CASCADE); the ORM must not load children just to delete them.
    layers: Mapped[list[LayerStat]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="LayerStat.idx"
    )
    artifacts: Mapped[list[Artifact]] = relationship(cascade="all, delete-orphan", passive_deletes=True)


class LayerStat(Base):
    __tablename__ = "layer_stat"

    run_id: Mapped[int] = mapped_column(ForeignKey("run.id", ondelete="CASCADE"), primary_key=True)
    idx: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    op: Mapped[str | None]
    module: Mapped[str | None]
    quantized: Mapped[bool]
    weight_scale_min: Mapped[float | None]
    weight_scale_max: Mapped[float | None]
    act_scale: Mapped[float | None]
    act_zero_point: Mapped[int | None]
    act_min: Mapped[float | None]
    act_max: Mapped[float | None]
    sqnr_db: Mapped[float | None]
    extra: Mapped[dict[str, Any] | None]  # report keys without a column of their own


class Artifact(Base):
    __tablename__ = "artifact"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("run.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str]
    path: Mapped[str]
    size: Mapped[int | None]
    sha256: Mapped[str | None]

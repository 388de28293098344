"""The first schema: projects, models, runs, per-layer statistics, artifacts.

Written out by hand, not from the models, so it stays what version 1 shipped.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

RUN_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "interrupted")


def upgrade() -> None:
    op.create_table(
        "project",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_project"),
        sa.UniqueConstraint("name", name="uq_project_name"),
    )
    op.create_table(
        "model",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(), nullable=False),
        sa.Column("sha256", sa.String(), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"], ["project.id"], name="fk_model_project_id_project", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_model"),
    )
    op.create_index("ix_model_path_sha256", "model", ["project_id", "path", "sha256"], unique=True)
    op.create_table(
        "run",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=True),
        sa.Column("model_path", sa.String(), nullable=False),
        sa.Column("preset", sa.String(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("device", sa.String(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("out_dir", sa.String(), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("worker_pid", sa.Integer(), nullable=True),
        sa.CheckConstraint(f"status IN {RUN_STATUSES!r}", name=op.f("ck_run_status")),
        sa.ForeignKeyConstraint(
            ["model_id"], ["model.id"], name="fk_run_model_id_model", ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["project.id"], name="fk_run_project_id_project", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_run"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_run_model_id", "run", ["model_id"])
    op.create_index("ix_run_model_path", "run", ["model_path"])
    op.create_index("ix_run_project_id", "run", ["project_id"])
    op.create_index("ix_run_started_at", "run", ["started_at"])
    op.create_index("ix_run_status", "run", ["status"])
    op.create_table(
        "layer_stat",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("op", sa.String(), nullable=True),
        sa.Column("module", sa.String(), nullable=True),
        sa.Column("quantized", sa.Boolean(), nullable=False),
        sa.Column("weight_scale_min", sa.Float(), nullable=True),
        sa.Column("weight_scale_max", sa.Float(), nullable=True),
        sa.Column("act_scale", sa.Float(), nullable=True),
        sa.Column("act_zero_point", sa.Integer(), nullable=True),
        sa.Column("act_min", sa.Float(), nullable=True),
        sa.Column("act_max", sa.Float(), nullable=True),
        sa.Column("sqnr_db", sa.Float(), nullable=True),
        sa.Column("extra", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["run.id"], name="fk_layer_stat_run_id_run", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "idx", name="pk_layer_stat"),
    )
    op.create_table(
        "artifact",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("path", sa.String(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=True),
        sa.Column("sha256", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["run.id"], name="fk_artifact_run_id_run", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_artifact"),
    )
    op.create_index("ix_artifact_run_id", "artifact", ["run_id"])


def downgrade() -> None:
    for table in ("artifact", "layer_stat", "run", "model", "project"):
        op.drop_table(table)

"""The experiment page's tables (experiments, experiment_looks) and a covering log index.

The lifecycle mirrors each live experiment's record and each look here, so the page reads
the router's own database, never MLflow or raw log rows. ``predictions_ts_arm`` covers the
page's per-arm aggregates over a time range (counts, latency) without reading table rows;
``feedback_received_at`` finds the labels received since the last count.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TIME = sa.Float(precision=53)


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("started_at", _TIME),
        sa.Column("ended_at", _TIME),
        sa.Column("outcome", sa.String(32)),
        sa.Column("champion_version", sa.String(64)),
        sa.Column("challenger_version", sa.String(64)),
        sa.Column("mode", sa.String(16)),
        sa.Column("split", sa.Float),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.Column("record", sa.JSON, nullable=False),
        sa.Column("actions", sa.JSON, nullable=False),
        sa.Column("counts", sa.JSON),
    )
    op.create_index("experiments_started_at", "experiments", ["started_at"])
    op.create_table(
        "experiment_looks",
        sa.Column("experiment_id", sa.String(128), primary_key=True),
        sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("time", _TIME, nullable=False),
        sa.Column("phase", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(32)),
        sa.Column("body", sa.JSON, nullable=False),
    )
    op.create_index(
        "predictions_ts_arm",
        "predictions",
        ["ts", "arm", "model_version", "served", "latency_ms"],
    )
    op.create_index("feedback_received_at", "feedback", ["received_at"])


def downgrade() -> None:
    op.drop_index("feedback_received_at", table_name="feedback")
    op.drop_index("predictions_ts_arm", table_name="predictions")
    op.drop_table("experiment_looks")
    op.drop_table("experiments")

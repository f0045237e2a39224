"""Initial schema: config, history, predictions, feedback.

Written out here rather than imported from ``schema.py``: a revision must keep creating the
schema of its own time when ``schema.py`` moves on.

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

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
_TIME = sa.Float(precision=53)


def upgrade() -> None:
    # A file made by the seed-era store (same file name) already has config and history,
    # with these very columns: keep them and the config they hold.
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "config" not in existing:
        op.create_table(
            "config",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("version", sa.Integer, nullable=False),
            sa.Column("body", sa.Text, nullable=False),
            sa.Column("updated_at", sa.String(32), nullable=False),
            sa.CheckConstraint("id = 1", name="config_single_row"),
        )
    if "history" not in existing:
        op.create_table(
            "history",
            sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("at", sa.String(32), nullable=False),
            sa.Column("before", sa.Text, nullable=False),
            sa.Column("after", sa.Text, nullable=False),
        )
    op.create_table(
        "predictions",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("row", sa.Integer, nullable=False),
        sa.Column("arm", sa.String(64), nullable=False),
        sa.Column("served", sa.Boolean, nullable=False),
        sa.Column("unit", sa.String(256)),
        sa.Column("model_name", sa.String(256)),
        sa.Column("model_version", sa.String(64)),
        sa.Column("experiment_id", sa.String(128)),
        sa.Column("champion_version", sa.String(64)),
        sa.Column("challenger_version", sa.String(64)),
        sa.Column("salt", sa.String(128)),
        sa.Column("ts", _TIME, nullable=False),
        sa.Column("prediction", sa.JSON),
        sa.Column("latency_ms", sa.Float),
        sa.Column("features", sa.JSON),
        sa.UniqueConstraint("request_id", "row", "arm", name="predictions_request_row_arm"),
    )
    op.create_index("predictions_ts", "predictions", ["ts"])
    op.create_index("predictions_experiment_ts", "predictions", ["experiment_id", "ts"])
    op.create_table(
        "feedback",
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("row", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("label", sa.JSON, nullable=False),
        sa.Column("received_at", _TIME, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_table("predictions")

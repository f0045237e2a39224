"""The drift monitor's results (``monitor_results``).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "monitor_results",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("time", sa.Float(precision=53), nullable=False),
        sa.Column("champion_version", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("drifted", sa.Boolean, nullable=False),
        sa.Column("consecutive", sa.Integer, nullable=False),
        sa.Column("run_id", sa.String(64)),
        sa.Column("result", sa.JSON, nullable=False),
    )
    op.create_index("monitor_results_time", "monitor_results", ["time"])


def downgrade() -> None:
    op.drop_index("monitor_results_time", table_name="monitor_results")
    op.drop_table("monitor_results")

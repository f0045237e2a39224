"""The per-unit sums kept between a live experiment's looks (``look_scopes``,
``look_units``): a look reads them and reduces only the rows served since.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
_SUMS = ("rows", "errors", "eligible", "labelled", "latencies", "tested", "slow")
_FIRSTS = (
    "t",
    "tie",
    "t_eligible",
    "tie_eligible",
    "t_labelled",
    "tie_labelled",
    "t_tested",
    "tie_tested",
)


def upgrade() -> None:
    op.create_table(
        "look_scopes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("served_until", sa.Float(precision=53), nullable=False),
        sa.Column("closed_until", sa.Float(precision=53), nullable=False),
        sa.Column("last_id", _ID, nullable=False),
        sa.Column("requests", sa.BigInteger, nullable=False),
        sa.Column("caps", sa.JSON, nullable=False),
        sa.Column("tail", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.Float(precision=53), nullable=False),
        sa.UniqueConstraint("key", name="look_scopes_key"),
    )
    op.create_table(
        "look_units",
        sa.Column("scope_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("k", sa.Text, primary_key=True),
        sa.Column("b", sa.Integer, primary_key=True, autoincrement=False),
        *(sa.Column(name, sa.BigInteger, nullable=False) for name in _SUMS),
        *(sa.Column(name, sa.Float(precision=53)) for name in _FIRSTS),
        sa.Column("loss_sum", sa.Float(precision=53), nullable=False),
    )
    op.create_table(
        "look_tail",
        sa.Column("scope_id", sa.Integer, nullable=False),
        sa.Column("b", sa.Integer, nullable=False),
        sa.Column("latency_ms", sa.Float(precision=53), nullable=False),
    )
    op.create_index("look_tail_scope", "look_tail", ["scope_id", "b", "latency_ms"])
    if op.get_bind().dialect.name == "postgresql":
        # a cache the next look rebuilds: no WAL for it (PostgreSQL empties unlogged tables
        # after a crash, both together, so the sums never outlive their watermark), and
        # room on each page for a unit's next version (updates then skip the index)
        op.execute("ALTER TABLE look_scopes SET UNLOGGED")
        op.execute("ALTER TABLE look_units SET UNLOGGED")
        op.execute("ALTER TABLE look_tail SET UNLOGGED")
        op.execute("ALTER TABLE look_units SET (fillfactor = 50)")


def downgrade() -> None:
    op.drop_index("look_tail_scope", table_name="look_tail")
    op.drop_table("look_tail")
    op.drop_table("look_units")
    op.drop_table("look_scopes")

"""History rows name who or what made the change: a nullable ``source`` column.

Nullable, so rows written before (and changes made without a source) keep ``NULL``, and the
upgrade is one ``ALTER TABLE ... ADD COLUMN`` on SQLite and PostgreSQL alike. Batch
operations, since SQLite drops a column (the downgrade) only by copying the table.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("history") as batch:
        batch.add_column(sa.Column("source", sa.String(256), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("history") as batch:
        batch.drop_column("source")

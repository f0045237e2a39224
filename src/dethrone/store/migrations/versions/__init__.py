"""Alembic revisions of the router's database (one module per revision)."""

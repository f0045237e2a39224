"""Alembic migrations of the router's database, shipped inside the package.

Applied by :func:`dethrone.store.migrate.upgrade` when a service starts; never by hand.
A new revision goes in ``versions/`` with ``down_revision`` set to the newest one.
"""

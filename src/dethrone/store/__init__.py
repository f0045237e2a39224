"""The router's database: traffic config and history, prediction log, feedback.

One URL (``ROUTER_DATABASE_URL``) picks the database: an SQLite file under
``ROUTER_DATA_DIR`` by default (embedded, no server), PostgreSQL in docker-compose, so that
several router replicas share one config and one log. The schema is created and migrated
by the service itself (:func:`upgrade`, safe when many processes start at once).

>>> from dethrone.store import make_engine, upgrade, SqlConfigStore
>>> engine = make_engine("sqlite://")
>>> SqlConfigStore(engine, {"a": 0.5}).current()
(0, {'a': 0.5})
"""

from __future__ import annotations

import importlib
from typing import Any

# Lazy (PEP 562): Settings imports the light parsers of this package, and must not pull in
# SQLAlchemy and Alembic with them.
_EXPORTS = {
    "SqlConfigStore": "config_store",
    "database_url": "engine",
    "default_url": "engine",
    "make_engine": "engine",
    "write_transaction": "engine",
    "StoreUnavailable": "errors",
    "VersionConflict": "errors",
    "current_revision": "migrate",
    "head_revision": "migrate",
    "upgrade": "migrate",
    "LogHealth": "prediction_log",
    "PredictionLogWriter": "prediction_log",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'dethrone.store' has no attribute {name!r}")
    return getattr(importlib.import_module(f"dethrone.store.{_EXPORTS[name]}"), name)

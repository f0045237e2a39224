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

from dethrone.store.config_store import SqlConfigStore
from dethrone.store.engine import database_url, default_url, make_engine, write_transaction
from dethrone.store.errors import StoreUnavailable, VersionConflict
from dethrone.store.migrate import current_revision, head_revision, upgrade
from dethrone.store.prediction_log import LogHealth, PredictionLogWriter

__all__ = ["LogHealth", "PredictionLogWriter", "SqlConfigStore", "StoreUnavailable",
           "VersionConflict", "current_revision", "database_url", "default_url", "head_revision",
           "make_engine", "upgrade", "write_transaction"]

"""The WSGI entry point: ``gunicorn dethrone_router.wsgi:app``."""

import logging
import sys

from dethrone_router import create_app

# The server process owns logging: one stderr line per record, the access lines
# being JSON objects. Tests use create_app() directly and keep pytest's handlers.
_log = logging.getLogger("dethrone_router")
if not _log.handlers:
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    _log.addHandler(_handler)
    _log.propagate = False

app = create_app()
# Each gunicorn worker imports this module after the fork (no preload), so every worker
# gets its own model-watcher thread.
if "dethrone_serving" in app.extensions:
    app.extensions["dethrone_serving"].start()

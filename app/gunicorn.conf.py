"""gunicorn config of the router for ``gunicorn -c app/gunicorn.conf.py dethrone_router.wsgi:app``.

The settings live in the installed package (``dethrone_router.gunicorn_conf``) so that
``dethrone router`` and the container use the same ones; this file re-exports them.
"""

from dethrone_router.gunicorn_conf import *  # noqa: F401,F403
from dethrone_router.gunicorn_conf import (  # noqa: F401
    child_exit,
    on_exit,
    on_starting,
    worker_exit,
)

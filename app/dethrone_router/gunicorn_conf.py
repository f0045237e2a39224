"""gunicorn settings of the router (``gunicorn -c python:dethrone_router.gunicorn_conf``).

Values come from :class:`dethrone.settings.Settings` and may be overridden on the
command line (``--bind``, ``--workers``). gthread workers keep client connections
alive, so a pipeline pulling many slices does not pay a TCP handshake each time.
"""

import os
import shutil
from pathlib import Path

from dethrone.settings import Settings

_settings = Settings.from_env()

bind = _settings.router_bind
workers = _settings.router_workers or (os.cpu_count() or 1)
worker_class = "gthread"
threads = _settings.router_threads
keepalive = 5
timeout = max(30, int(_settings.router_timeout) * 2)
graceful_timeout = 10
# gunicorn's control socket defaults to one path per user; several routers (tests,
# benchmark) on one host would fight over it, and nothing here uses it.
control_socket_disable = True
# The router logs one structured line per request itself; gunicorn's would double it.
accesslog = None
errorlog = "-"
loglevel = _settings.router_log_level

# Multiprocess metrics: every worker writes its counters into this folder and any
# worker's /metrics sums them. Set before a worker imports prometheus_client.
_metrics_dir = Path(os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", str(Path(_settings.router_data_dir).resolve() / "metrics")))


def on_starting(server):
    """Start every server run with empty counters (stale files would be summed)."""
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    _metrics_dir.mkdir(parents=True, exist_ok=True)


def child_exit(server, worker):
    """Let the live-gauge files of a dead worker go."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, str(_metrics_dir))

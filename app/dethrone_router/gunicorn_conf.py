"""gunicorn settings of the router (``gunicorn -c python:dethrone_router.gunicorn_conf``).

Values come from :class:`dethrone.settings.Settings` and may be overridden on the
command line (``--bind``, ``--workers``). gthread workers keep client connections
alive, so a pipeline pulling many slices does not pay a TCP handshake each time.
"""

import json
import os
import sys
import tempfile
from pathlib import Path

from gunicorn import util

from dethrone.settings import Settings

_settings = Settings.from_env()

bind = _settings.router_bind
workers = _settings.router_workers or (os.cpu_count() or 1)
# gthread that closes idle keep-alive connections when a stop begins (dethrone_router.worker)
worker_class = "dethrone_router.worker.RouterWorker"
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

# Requests gunicorn refuses itself (request line over limit_request_line = 4094 bytes,
# too many or too large headers, bad HTTP) get the app's one JSON error shape, not
# gunicorn's HTML page. Behind nginx most of these are answered by nginx first.
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190


def _json_error(sock, status_int, reason, mesg):
    body = json.dumps(
        {
            "error": {
                "code": reason.lower().replace(" ", "_"),
                "message": mesg or reason,
                "field": None,
                "status": status_int,
            }
        }
    ).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin1") + body)


# gunicorn's workers call util.write_error for these; the workers fork from the
# master that loaded this file, so they inherit the replacement.
util.write_error = _json_error

# Multiprocess metrics: every worker writes its counters into this folder and any
# worker's /metrics sums them. It is never the config store's folder: a full store
# disk must not touch the metrics (and the reverse). Default: a RAM-backed folder per
# port, /dev/shm/dethrone-router-<port> (the system temp folder without /dev/shm).
_metrics_dir: Path | None = None


def _default_metrics_dir(server) -> Path:
    port = (
        str(server.address[0][1])
        if server.address and isinstance(server.address[0], tuple)
        else str(os.getpid())
    )
    base = Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else Path(tempfile.gettempdir())
    return base / f"dethrone-router-{port}"


_own_metrics_dir = False


def on_starting(server):
    """Choose the metrics folder and start every server run with empty counters
    (stale files would be summed). Workers inherit the variable."""
    global _metrics_dir, _own_metrics_dir
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    _own_metrics_dir = not given
    _metrics_dir = Path(given or _default_metrics_dir(server))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_metrics_dir)
    try:
        for stale in _metrics_dir.glob("*.db"):
            stale.unlink()
        _metrics_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        # The workers then count nothing and say so in /health; they still serve.
        server.log.warning("metrics folder %s unusable: %s", _metrics_dir, exc)


def worker_exit(server, worker):
    """Flush the worker's prediction log before it goes (SIGTERM, max_requests, reload):
    an acknowledged prediction is then never lost by a graceful stop."""
    wsgi = sys.modules.get("dethrone_router.wsgi")
    serving = wsgi.app.extensions.get("dethrone_serving") if wsgi is not None else None
    if serving is not None and serving.writer is not None:
        lost = serving.writer.close(timeout=graceful_timeout / 2)
        if lost:
            server.log.warning("prediction log: %d rows could not be written at exit", lost)


def child_exit(server, worker):
    """Let the live-gauge files of a dead worker go."""
    # lazy: prometheus_client must load after this file set PROMETHEUS_MULTIPROC_DIR
    from prometheus_client import multiprocess

    if _metrics_dir is not None:
        try:
            multiprocess.mark_process_dead(worker.pid, str(_metrics_dir))
        except OSError:
            pass


def on_exit(server):
    """Free the RAM of the metric files (2 MiB per worker) when the server stops."""
    if _metrics_dir is None:
        return
    for path in _metrics_dir.glob("*.db"):
        path.unlink(missing_ok=True)
    if _own_metrics_dir:
        try:
            _metrics_dir.rmdir()
        except OSError:
            pass

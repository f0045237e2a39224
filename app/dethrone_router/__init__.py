"""The dethrone traffic router: a Flask app serving data slices and A/B slices.

Use :func:`create_app` (the Flask application factory); ``dethrone_router.wsgi:app``
is the instance gunicorn serves.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from flask import Flask, g, request

from dethrone.settings import Settings
from dethrone.slices.datasets import load_dataset
from dethrone.slices.slicing import Slicer
from dethrone.store import SqlConfigStore, database_url, make_engine
from dethrone_router.errors import register_error_handler
from dethrone_router.state import RouterState, state
from dethrone_router.validation import DEFAULTS

access_log = logging.getLogger("dethrone_router.access")


def create_app(settings: Settings | None = None, *, model_source: Any = None) -> Flask:
    """Build the router app: load the data set, open the config store, register routes.

    Parameters
    ----------
    settings : Settings, optional
        Defaults to ``Settings.from_env()`` read now.
    model_source : ModelSource, optional
        Where the gateway gets its models (default: the MLflow registry). The watcher
        thread is not started here: ``wsgi`` starts it in each worker, tests call
        ``refresh()`` themselves.

    Returns
    -------
    flask.Flask
    """
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    # Configs are tiny; a cap keeps a wrong client from streaming megabytes into us.
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    logging.getLogger("dethrone_router").setLevel(settings.router_log_level.upper())
    router_state = _router_state(settings)
    app.extensions["dethrone_router"] = router_state

    # lazy, like Metrics in _router_state: these load prometheus_client (dethrone_router.metrics)
    from dethrone_router.api import data, feedback, ops, serving, traffic, ui

    if settings.serving_enabled:
        app.extensions["dethrone_serving"] = _serving(settings, router_state, model_source)
    app.register_blueprint(traffic.bp)
    app.register_blueprint(feedback.bp)
    app.register_blueprint(data.bp)
    app.register_blueprint(ops.bp)
    app.register_blueprint(serving.bp)
    app.register_blueprint(ui.bp)  # the experiment page, /ui/
    register_error_handler(app)
    app.before_request(_start_timer)
    app.after_request(_log_request)
    return app


def _router_state(settings: Settings) -> RouterState:
    """The data set and its slicer, the config store and the metrics, on one database."""
    frame = load_dataset(settings.dataset_path)
    if settings.target not in frame.columns:
        logging.getLogger("dethrone_router").warning(
            "TARGET %r is not a column of the data set", settings.target
        )
    # Imported here, not at the top: the gunicorn config imports this package in the
    # master and must set PROMETHEUS_MULTIPROC_DIR before prometheus_client loads.
    from dethrone_router.metrics.registry import Metrics

    slicer = Slicer(frame)
    defaults = {**DEFAULTS, "data_size": min(DEFAULTS["data_size"], settings.router_max_data_size)}

    engine = make_engine(database_url(settings))
    store = SqlConfigStore(engine, defaults)
    return RouterState(
        settings=settings,
        slicer=slicer,
        columns={c: slicer.frame[c] for c in slicer.columns},
        store=store,
        metrics=Metrics(store),
        engine=engine,
    )


def _serving(settings: Settings, router_state: RouterState, model_source: Any) -> Any:
    """The gateway's serving state, with its prediction log and metric collectors."""
    # lazy, like Metrics in _router_state: prometheus_client loads after PROMETHEUS_MULTIPROC_DIR
    from dethrone_router.api import serving
    from dethrone_router.gateway import predlog
    from dethrone_router.metrics import experiment as experiment_metrics
    from dethrone_router.metrics.monitor import MonitorCollector
    from dethrone_router.metrics.serving import NullServingMetrics, ServingMetrics

    metrics, engine = router_state.metrics, router_state.engine
    # Unlabelled metrics write their file at creation: not where the worker's metric
    # files could not be allocated (a full disk would SIGBUS the worker).
    log_metrics = predlog.LogMetrics(metrics.registry) if metrics.problem is None else None
    metrics.add_collector(predlog.CoverageCollector(engine))
    metrics.add_collector(experiment_metrics.ExperimentCollector(engine, router_state.store))
    metrics.add_collector(MonitorCollector(engine))
    return serving.build_serving(
        settings,
        ServingMetrics(metrics.registry) if metrics.problem is None else NullServingMetrics(),
        model_source,
        writer=predlog.build_writer(engine, settings, log_metrics)
        if settings.serving_log
        else None,
        log_metrics=log_metrics,
    )


def _start_timer() -> None:
    g.started = time.perf_counter()


def _log_request(response):
    seconds = time.perf_counter() - g.get("started", time.perf_counter())
    rows = g.get("rows", 0)
    # The rule, not the path, labels metrics: fuzzed 404 paths must not explode them.
    endpoint = request.url_rule.rule if request.url_rule else "unmatched"
    state().metrics.observe(endpoint, request.method, response.status_code, seconds, rows)
    if access_log.isEnabledFor(logging.INFO):
        access_log.info(
            json.dumps(
                {
                    "event": "request",
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round(seconds * 1000, 3),
                    "rows": rows,
                    "version": g.get("version"),
                    "seed": g.get("seed"),
                }
            )
        )
    return response

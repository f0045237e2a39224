"""Metrics of the prediction gateway: per arm, version and alias (never per request id).

Multiprocess-safe like :mod:`dethrone_router.metrics.registry`, whose registry they are created in.
A worker whose metric files could not be allocated gets :class:`NullServingMetrics`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from dethrone_router.metrics.registry import LATENCY_BUCKETS

_ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
_VALUE_BUCKETS = (
    -1000.0,
    -100.0,
    -10.0,
    -1.0,
    0.0,
    0.1,
    0.5,
    1.0,
    2.0,
    5.0,
    10.0,
    50.0,
    100.0,
    500.0,
    1000.0,
    2500.0,
    5000.0,
    10000.0,
    20000.0,
    50000.0,
    1e6,
)


class ServingMetrics:
    """Metrics of the prediction gateway (labels are arms, versions, aliases: no ids).

    ``dethrone_model_info`` is a per-worker gauge (``liveall``: one series per live
    worker pid in multiprocess mode): 1 for the version a worker serves under an alias,
    0 for one it served before.
    """

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.predictions = Counter(
            "dethrone_predictions", "rows predicted", ["arm", "model_version"], registry=registry
        )
        self.requests = Counter(
            "dethrone_prediction_requests",
            "prediction requests scored",
            ["arm", "model_version", "mode"],
            registry=registry,
        )
        self.duration = Histogram(
            "dethrone_prediction_duration_seconds",
            "time to score one request (validation, batching, model)",
            ["arm"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.value = Histogram(
            "dethrone_prediction_value",
            "regression outputs",
            ["arm"],
            buckets=_VALUE_BUCKETS,
            registry=registry,
        )
        self.classes = Counter(
            "dethrone_prediction_classes",
            "predicted class labels",
            ["arm", "label"],
            registry=registry,
        )
        self.batch_rows = Histogram(
            "dethrone_prediction_batch_rows",
            "rows per model call (micro-batching)",
            ["arm"],
            buckets=_ROW_BUCKETS,
            registry=registry,
        )
        self.batch_requests = Histogram(
            "dethrone_prediction_batch_requests",
            "requests per model call (micro-batching)",
            ["arm"],
            buckets=_ROW_BUCKETS,
            registry=registry,
        )
        self.reloads = Counter(
            "dethrone_model_reloads",
            "alias checks that changed a model",
            ["alias", "outcome"],
            registry=registry,
        )
        self.shadow_failures = Counter(
            "dethrone_shadow_failures",
            "shadow scorings that failed or were dropped",
            ["reason"],
            registry=registry,
        )
        self.info = Gauge(
            "dethrone_model_info",
            "1 for each alias and version a worker serves",
            ["alias", "version"],
            multiprocess_mode="liveall",
            registry=registry,
        )
        self.compiled_info = Gauge(
            "dethrone_serving_model_compiled",
            "1 when a worker scores the version compiled (verified), 0 with the model's own "
            "methods (see /health serving.scoring for why); join with dethrone_model_info",
            ["alias", "version"],
            multiprocess_mode="liveall",
            registry=registry,
        )
        self.delegated_calls = Counter(
            "dethrone_serving_delegated_calls",
            "model calls of a compiled version handed to the model itself (an input the "
            "compiled path was not verified for)",
            ["alias", "version"],
            registry=registry,
        )
        self.failures = Counter(
            "dethrone_prediction_failures",
            "requests whose scoring failed on an arm, logged with a null prediction "
            "(kind: rejected = 422, error = 5xx, shadow_error, shadow_dropped)",
            ["arm", "model_version", "kind"],
            registry=registry,
        )

    # --- events of the model watcher ---------------------------------------------------
    def reload(self, alias: str, outcome: str) -> None:
        self.reloads.labels(alias, outcome).inc()

    def served(self, alias: str, version: str, on: bool) -> None:
        # 0, not a removed series: in multiprocess mode a removed child's last value
        # would stay in the worker's file and still read 1.
        self.info.labels(alias, version).set(1 if on else 0)

    def compiled(self, alias: str, version: str, compiled: bool) -> None:
        self.compiled_info.labels(alias, version).set(1 if compiled else 0)

    def delegated(self, alias: str, version: str) -> None:
        self.delegated_calls.labels(alias, version).inc()

    def failed(self, arm: str, version: str, kind: str) -> None:
        """Count one request whose scoring failed on ``arm``."""
        self.failures.labels(arm, version, kind).inc()

    def batch(self, arm: str) -> Callable[[int, int], None]:
        """The ``observe(requests, rows)`` callback of an arm's batcher."""

        def observe(n_requests: int, n_rows: int) -> None:
            # Children are made on first use: in multiprocess mode a child is a file, and
            # `gunicorn --check-config` builds the app before the metrics folder exists.
            self.batch_requests.labels(arm).observe(n_requests)
            self.batch_rows.labels(arm).observe(n_rows)

        return observe

    def scored(
        self, arm: str, version: str, mode: str, seconds: float, labels: Any, task: str
    ) -> None:
        """Count one scored request and its outputs."""
        self.requests.labels(arm, version, mode).inc()
        self.predictions.labels(arm, version).inc(len(labels))
        self.duration.labels(arm).observe(seconds)
        if task == "regression":
            hist = self.value.labels(arm)
            for v in np.asarray(labels, dtype=float).ravel():
                hist.observe(float(v))
        else:
            values, counts = np.unique(np.asarray(labels).astype(str), return_counts=True)
            for v, c in zip(values, counts, strict=True):
                self.classes.labels(arm, str(v)[:60]).inc(int(c))


class _NullMetric:
    """A metric (and each of its children) that counts nothing."""

    def labels(self, *_: Any, **__: Any) -> _NullMetric:
        return self

    def inc(self, *_: Any) -> None:
        pass

    def set(self, *_: Any) -> None:
        pass

    def observe(self, *_: Any) -> None:
        pass


class NullServingMetrics(ServingMetrics):
    """The gateway's metrics in a worker whose metric files could not be allocated.

    In multiprocess mode every value lives in a memory-mapped file; growing one on a full
    disk kills the worker with SIGBUS. Such a worker serves and counts nothing (its
    ``/health`` says why) rather than die on its first model reload.
    """

    def __init__(self) -> None:  # no super().__init__: that would create the files
        null = _NullMetric()
        for name in (
            "predictions",
            "requests",
            "duration",
            "value",
            "classes",
            "batch_rows",
            "batch_requests",
            "reloads",
            "shadow_failures",
            "info",
            "compiled_info",
            "delegated_calls",
            "failures",
        ):
            setattr(self, name, null)

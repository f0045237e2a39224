"""Prometheus metrics that stay correct with several gunicorn workers.

Counters and the latency histogram use prometheus_client's multiprocess mode when
``PROMETHEUS_MULTIPROC_DIR`` is set (the gunicorn config points it at a folder of
its own, by default ``/dev/shm/dethrone-router-<port>``, never the config store's,
and wipes it at start): each worker writes its own memory-mapped file and a scrape
on any worker sums them. The config gauges are not per-worker state at all: they
are read from the shared config store at scrape time, so every worker reports the
same values.

Metrics must never take the service down. prometheus_client grows its files
sparsely and writes them through ``mmap``; on a full file system that write is a
SIGBUS, which kills the worker. So each worker allocates its files for real first
(``posix_fallocate``): when that fails the worker counts nothing, says so in
``/health`` and the log, and serves on.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

log = logging.getLogger("dethrone_router")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Bytes allocated per metric file; the label sets of this app need a few dozen KiB.
FILE_BYTES = 1 << 20
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _ConfigCollector:
    """Gauges of the current config, read from the store on every scrape."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            version, cfg = self.store.current()
        except Exception:  # an unreadable store must not fail the scrape
            return
        for name, doc, value in (
            ("dethrone_router_traffic_a", "share of traffic routed to A", cfg["a"]),
            ("dethrone_router_traffic_b", "share of traffic routed to B", cfg["b"]),
            ("dethrone_router_data_size", "rows per slice", cfg["data_size"]),
            ("dethrone_router_drift_columns", "number of drifted columns", len(cfg["drift_cols"])),
            ("dethrone_router_config_version", "version of the stored config", version),
        ):
            yield GaugeMetricFamily(name, doc, value=float(value))


class Metrics:
    """Request metrics of one app.

    Parameters
    ----------
    store : SqlConfigStore
        Source of the config gauges.
    """

    def __init__(self, store: Any) -> None:
        self.multiprocess_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
        #: Why this worker counts nothing (None: it counts).
        self.problem: str | None = None
        if self.multiprocess_dir:
            self.problem = _allocate(self.multiprocess_dir)
        # Multiprocess values live in files, not in a registry; a private registry
        # otherwise keeps several apps in one process (tests) from colliding.
        self.registry = None if self.multiprocess_dir else CollectorRegistry()
        self.store = store
        #: scrape-time collectors beyond the config gauges (e.g. label coverage)
        self.collectors: list[Any] = [_ConfigCollector(store)]
        self.requests = Counter(
            "dethrone_router_requests",
            "HTTP requests answered",
            ["endpoint", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "dethrone_router_request_duration_seconds",
            "time from request to response",
            ["endpoint"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.rows = Counter(
            "dethrone_router_rows_served",
            "data rows sent in slices",
            ["endpoint"],
            registry=self.registry,
        )
        if self.registry is not None:
            self.registry.register(_ConfigCollector(store))

    def add_collector(self, collector: Any) -> None:
        """Register a collector read at every scrape (on every worker)."""
        self.collectors.append(collector)
        if self.registry is not None:
            self.registry.register(collector)

    def observe(self, endpoint: str, method: str, status: int, seconds: float, rows: int) -> None:
        """Count one answered request (never raises: a metric is not worth a request)."""
        if self.problem is not None:
            return
        try:
            self.requests.labels(endpoint, method, str(status)).inc()
            self.latency.labels(endpoint).observe(seconds)
            if rows:
                self.rows.labels(endpoint).inc(rows)
        except Exception as exc:
            self.problem = f"metrics disabled in worker {os.getpid()}: {exc}"
            log.warning("%s", self.problem)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        if self.registry is not None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        for collector in self.collectors:
            registry.register(collector)
        try:
            MultiProcessCollector(registry, path=self.multiprocess_dir)
            return generate_latest(registry)
        except Exception as exc:
            # The request counters are lost for this scrape; the config gauges are not.
            log.warning("metrics folder %s unreadable: %s", self.multiprocess_dir, exc)
            registry = CollectorRegistry()
            registry.register(_ConfigCollector(self.store))
            return generate_latest(registry)


def _allocate(directory: str) -> str | None:
    """Reserve this process's metric files (see the module docstring); the problem or None."""
    pid = os.getpid()
    paths = [os.path.join(directory, f"{kind}_{pid}.db") for kind in ("counter", "histogram")]
    try:
        for path in paths:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                if os.fstat(fd).st_size < FILE_BYTES:
                    os.posix_fallocate(fd, 0, FILE_BYTES)
            finally:
                os.close(fd)
    except OSError as exc:
        for path in paths:
            # A half-made file would break every scrape's sum; none is better.
            with contextlib.suppress(OSError):
                os.remove(path)
        problem = f"metrics disabled in worker {pid}: cannot allocate files in {directory}: {exc}"
        log.warning("%s", problem)
        return problem
    return None


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
        from prometheus_client import Gauge

        reg = {"registry": registry}
        self.predictions = Counter(
            "dethrone_predictions", "rows predicted", ["arm", "model_version"], **reg
        )
        self.requests = Counter(
            "dethrone_prediction_requests",
            "prediction requests scored",
            ["arm", "model_version", "mode"],
            **reg,
        )
        self.duration = Histogram(
            "dethrone_prediction_duration_seconds",
            "time to score one request (validation, batching, model)",
            ["arm"],
            buckets=_BUCKETS,
            **reg,
        )
        self.value = Histogram(
            "dethrone_prediction_value",
            "regression outputs",
            ["arm"],
            buckets=_VALUE_BUCKETS,
            **reg,
        )
        self.classes = Counter(
            "dethrone_prediction_classes", "predicted class labels", ["arm", "label"], **reg
        )
        self.batch_rows = Histogram(
            "dethrone_prediction_batch_rows",
            "rows per model call (micro-batching)",
            ["arm"],
            buckets=_ROW_BUCKETS,
            **reg,
        )
        self.batch_requests = Histogram(
            "dethrone_prediction_batch_requests",
            "requests per model call (micro-batching)",
            ["arm"],
            buckets=_ROW_BUCKETS,
            **reg,
        )
        self.reloads = Counter(
            "dethrone_model_reloads",
            "alias checks that changed a model",
            ["alias", "outcome"],
            **reg,
        )
        self.shadow_failures = Counter(
            "dethrone_shadow_failures",
            "shadow scorings that failed or were dropped",
            ["reason"],
            **reg,
        )
        self.info = Gauge(
            "dethrone_model_info",
            "1 for each alias and version a worker serves",
            ["alias", "version"],
            multiprocess_mode="liveall",
            **reg,
        )

    # --- events of the model watcher ---------------------------------------------------
    def reload(self, alias: str, outcome: str) -> None:
        self.reloads.labels(alias, outcome).inc()

    def served(self, alias: str, version: str, on: bool) -> None:
        # 0, not a removed series: in multiprocess mode a removed child's last value
        # would stay in the worker's file and still read 1.
        self.info.labels(alias, version).set(1 if on else 0)

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
        import numpy as np

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
        ):
            setattr(self, name, null)

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
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

log = logging.getLogger("dethrone_router")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Bytes allocated per metric file; the label sets of this app need a few dozen KiB.
FILE_BYTES = 1 << 20
#: request latency buckets (seconds), shared with the gateway's metrics
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


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
            buckets=LATENCY_BUCKETS,
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

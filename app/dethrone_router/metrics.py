"""Prometheus metrics that stay correct with several gunicorn workers.

Counters and the latency histogram use prometheus_client's multiprocess mode when
``PROMETHEUS_MULTIPROC_DIR`` is set (the gunicorn config points it at
``<ROUTER_DATA_DIR>/metrics`` and wipes it at start): each worker writes its own
memory-mapped file and a scrape on any worker sums them. The config gauges are not
per-worker state at all: they are read from the shared config store at scrape
time, so every worker reports the same values.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from dethrone_router.store import ConfigStore

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _ConfigCollector:
    """Gauges of the current config, read from the store on every scrape."""

    def __init__(self, store: ConfigStore) -> None:
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        version, cfg = self.store.current()
        for name, doc, value in (
                ("dethrone_router_traffic_a", "share of traffic routed to A", cfg["a"]),
                ("dethrone_router_traffic_b", "share of traffic routed to B", cfg["b"]),
                ("dethrone_router_data_size", "rows per slice", cfg["data_size"]),
                ("dethrone_router_drift_columns", "number of drifted columns",
                 len(cfg["drift_cols"])),
                ("dethrone_router_config_version", "version of the stored config", version)):
            yield GaugeMetricFamily(name, doc, value=float(value))


class Metrics:
    """Request metrics of one app.

    Parameters
    ----------
    store : ConfigStore
        Source of the config gauges.
    """

    def __init__(self, store: ConfigStore) -> None:
        self.multiprocess_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
        # Multiprocess values live in files, not in a registry; a private registry
        # otherwise keeps several apps in one process (tests) from colliding.
        self.registry = None if self.multiprocess_dir else CollectorRegistry()
        self.store = store
        self.requests = Counter("dethrone_router_requests", "HTTP requests answered",
                                ["endpoint", "method", "status"], registry=self.registry)
        self.latency = Histogram("dethrone_router_request_duration_seconds",
                                 "time from request to response", ["endpoint"],
                                 buckets=_BUCKETS, registry=self.registry)
        self.rows = Counter("dethrone_router_rows_served", "data rows sent in slices",
                            ["endpoint"], registry=self.registry)
        if self.registry is not None:
            self.registry.register(_ConfigCollector(store))

    def observe(self, endpoint: str, method: str, status: int, seconds: float,
                rows: int) -> None:
        """Count one answered request."""
        self.requests.labels(endpoint, method, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)
        if rows:
            self.rows.labels(endpoint).inc(rows)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        if self.registry is not None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.multiprocess_dir)
        registry.register(_ConfigCollector(self.store))
        return generate_latest(registry)

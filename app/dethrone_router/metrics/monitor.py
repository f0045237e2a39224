"""Gauges of the drift monitor's newest check, per feature, read from the shared database.

The ``monitor`` DAG writes each check to ``monitor_results``; every worker and replica
exports the newest one at scrape time (cached like the experiment gauges), so Prometheus
and Grafana see drift on what the champion served without reaching Airflow:

- ``dethrone_drift_feature_statistic{feature,test}``: the test's statistic (KS D, PSI, ...);
  the champion's answers are the feature ``__prediction__``, its live loss ``__loss__``;
- ``dethrone_drift_feature_drifted{feature}``: 1 when that feature drifted;
- ``dethrone_drift_checked_timestamp_seconds`` and ``dethrone_drift_consecutive_windows``.

A database outage leaves these series out instead of failing the scrape.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily

from dethrone.store.monitor import latest

log = logging.getLogger(__name__)

#: seconds a read of the newest result is reused
TTL = 15.0


class MonitorCollector:
    """Exports the newest ``monitor_results`` row as gauges."""

    def __init__(self, engine: Any, *, ttl: float = TTL) -> None:
        self.engine, self.ttl = engine, ttl
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, Any] | None] = (-1e18, None)

    def newest(self) -> dict[str, Any] | None:
        """The newest result (``None``: no check yet, or the database is unreadable)."""
        with self._lock:
            at, cached = self._cached
            if time.monotonic() - at < self.ttl:
                return cached
            try:
                cached = latest(self.engine)
            except Exception as exc:  # noqa: BLE001 - a database outage must not fail the scrape
                log.debug("monitor gauges unavailable: %s", exc)
                cached = None
            self._cached = (time.monotonic(), cached)
            return cached

    def collect(self) -> Iterator[GaugeMetricFamily]:
        row = self.newest()
        if row is None or row.get("status") != "checked":
            return
        result = row.get("result") or {}
        stat = GaugeMetricFamily(
            "dethrone_drift_feature_statistic",
            "statistic of the drift test of each feature in the monitor's newest check",
            labels=["feature", "test"],
        )
        drifted = GaugeMetricFamily(
            "dethrone_drift_feature_drifted",
            "1 when the feature drifted in the monitor's newest check",
            labels=["feature"],
        )
        for name, feature in _features(result):
            if feature.get("statistic") is not None:
                stat.add_metric([name, str(feature.get("method", ""))], feature["statistic"])
            drifted.add_metric([name], 1.0 if feature.get("drifted") else 0.0)
        yield stat
        yield drifted
        yield GaugeMetricFamily(
            "dethrone_drift_checked_timestamp_seconds",
            "when the monitor's newest check ran",
            value=float(row["time"]),
        )
        yield GaugeMetricFamily(
            "dethrone_drift_consecutive_windows",
            "drifted windows in a row ending with the newest check",
            value=float(row["consecutive"]),
        )


def _features(result: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    yield from (result.get("features") or {}).items()
    for key, name in (("prediction", "__prediction__"), ("performance", "__loss__")):
        if isinstance(result.get(key), dict):
            yield name, result[key]

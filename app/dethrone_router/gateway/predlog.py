"""The router's prediction log: one :class:`PredictionLogWriter` per worker, and its metrics.

Every served row of ``/predict`` and ``/invocations`` is appended to the worker's writer
(a shadow prediction with its own arm and ``served=false``); the writer commits in batches
off the request path, so a slow or stopped database never fails or delays a prediction
(:mod:`dethrone.store.prediction_log`). Gunicorn's ``worker_exit`` hook closes the writer,
so a SIGTERM (graceful stop, rolling deploy) loses no acknowledged row.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import Engine, and_, func, select

from dethrone.store import PredictionLogWriter
from dethrone.store.schema import feedback as _fb
from dethrone.store.schema import predictions as _pred

log = logging.getLogger("dethrone_router")
_FLUSH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
#: window of the label-coverage gauge, and how long one computation of it is reused
COVERAGE_WINDOW, COVERAGE_TTL = 3600.0, 15.0
#: newest labelled rows of the window the live loss is computed from (bounds a scrape's work)
LOSS_ROWS = 20_000


class LogMetrics:
    """Counters of the log and of feedback (multiprocess-safe like the other metrics)."""

    def __init__(self, registry: Any) -> None:
        reg = {"registry": registry}
        self.rows = Counter("dethrone_log_rows", "prediction rows committed to the log", **reg)
        self.dropped = Counter(
            "dethrone_log_dropped", "prediction rows dropped, never logged", **reg
        )
        self.flush = Histogram(
            "dethrone_log_flush_seconds",
            "time to commit one batch of rows",
            buckets=_FLUSH_BUCKETS,
            **reg,
        )
        self.duplicates = Counter(
            "dethrone_log_duplicate_rows",
            "rows not written: the log had their (request_id, row, arm) already "
            "(also counted in dethrone_log_dropped_total)",
            **reg,
        )
        self.feedback = Counter(
            "dethrone_feedback", "labels stored or overwritten, by arm", ["arm"], **reg
        )

    def flushed(self, n: int, seconds: float) -> None:
        self.rows.inc(n)
        self.flush.observe(seconds)


def build_writer(engine: Engine, settings: Any, metrics: LogMetrics | None) -> PredictionLogWriter:
    """The worker's writer, set by ``LOG_FLUSH_SECONDS``, ``LOG_BUFFER_ROWS``,
    ``SERVING_LOG_FEATURES``, feeding :class:`LogMetrics` (None: counting nothing)."""
    if metrics is None:
        return PredictionLogWriter.from_settings(engine, settings)
    return PredictionLogWriter.from_settings(
        engine,
        settings,
        on_drop=metrics.dropped.inc,
        on_flush=metrics.flushed,
        on_duplicate=metrics.duplicates.inc,
    )


def served_rows(
    *,
    request_id: str,
    rows: Sequence[dict[str, Any]],
    arm: str,
    served: bool,
    unit: str | None,
    model_name: str,
    model: Any,
    champion: Any,
    challenger: Any,
    salt: str | None,
    labels: Any,
    proba: Any,
    classes: Sequence[Any] | None,
    latency_ms: float | None,
) -> list[dict[str, Any]]:
    """The log rows of one scored request on one arm.

    A classifier's ``prediction`` is ``{class: probability}`` when probabilities were
    computed (the log keeps the full answer), else the label; a regressor's is the number.
    ``labels=None``: the scoring failed on this arm (or a shadow scoring was dropped); each
    row is logged with a null ``prediction``, so a look counts it as an error of the arm.
    """
    chall = challenger.version if challenger is not None else None
    experiment = f"{champion.version}/{chall or '-'}/{salt or '-'}"
    common = {
        "request_id": request_id,
        "arm": arm,
        "served": served,
        "unit": unit,
        "model_name": model_name,
        "model_version": model.version,
        "experiment_id": experiment,
        "champion_version": champion.version,
        "challenger_version": chall,
        "salt": salt,
        "latency_ms": latency_ms,
    }
    if labels is None:
        values: list[Any] = [None] * len(rows)
    else:
        values = labels.tolist() if hasattr(labels, "tolist") else list(labels)
    if labels is not None and proba is not None and classes:
        names = [str(c) for c in classes]
        values = [dict(zip(names, p, strict=True)) for p in proba.tolist()]
    ts = time.time()
    return [
        {**common, "row": i, "ts": ts, "prediction": values[i], "features": row}
        for i, row in enumerate(rows)
    ]


def loss(prediction: Any, label: Any) -> float:
    """Absolute error for a number against a number, else the 0/1 loss of the class (the
    most probable one for probabilities), as in :func:`dethrone.store.export.joined_predictions`.

    >>> loss(3.5, 2), loss({"a": 0.2, "b": 0.8}, "b"), loss("a", "b")
    (1.5, 0.0, 1.0)
    """

    def number(v: Any) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool)

    if number(prediction) and number(label):
        return abs(float(prediction) - float(label))
    if isinstance(prediction, dict) and prediction:
        prediction = max(prediction, key=prediction.__getitem__)
    if number(prediction) and float(prediction).is_integer():
        prediction = int(prediction)
    if number(label) and float(label).is_integer():
        label = int(label)
    return float(str(prediction) != str(label))


class CoverageCollector:
    """``dethrone_label_coverage{arm}`` (labelled / logged served rows of the last hour) and
    ``dethrone_live_loss{arm}`` (mean loss of the newest :data:`LOSS_ROWS` labelled ones).

    Computed from the shared database at scrape time (so every worker and replica reports
    the same) with two indexed queries, reused for :data:`COVERAGE_TTL` seconds.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._cached: tuple[float, list[tuple[str, int, int]], dict[str, float]] = (-1e9, [], {})

    def _rows(self) -> tuple[list[tuple[str, int, int]], dict[str, float]]:
        with self._lock:
            at, rows, losses = self._cached
            if time.monotonic() - at < COVERAGE_TTL:
                return rows, losses
            join = _pred.outerjoin(
                _fb, and_(_fb.c.request_id == _pred.c.request_id, _fb.c.row == _pred.c.row)
            )
            recent = and_(_pred.c.served.is_(True), _pred.c.ts >= time.time() - COVERAGE_WINDOW)
            query = (
                select(_pred.c.arm, func.count(), func.count(_fb.c.label))
                .select_from(join)
                .where(recent)
                .group_by(_pred.c.arm)
            )
            labelled = (
                select(_pred.c.arm, _pred.c.prediction, _fb.c.label)
                .select_from(join)
                .where(recent, _fb.c.label.is_not(None))
                .order_by(_pred.c.ts.desc())
                .limit(LOSS_ROWS)
            )
            sums: dict[str, list[float]] = {}
            with self.engine.connect() as conn:
                rows = [(str(a), int(n), int(k)) for a, n, k in conn.execute(query)]
                for arm, prediction, label in conn.execute(labelled):
                    acc = sums.setdefault(str(arm), [0.0, 0])
                    acc[0] += loss(prediction, label)
                    acc[1] += 1
            losses = {arm: total / n for arm, (total, n) in sums.items()}
            self._cached = (time.monotonic(), rows, losses)
            return rows, losses

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            rows, losses = self._rows()
        except Exception as exc:  # noqa: BLE001 - a database outage must not fail the scrape
            log.debug("label coverage unavailable: %s", exc)
            return
        coverage = GaugeMetricFamily(
            "dethrone_label_coverage",
            "share of served rows of the last hour that have a label",
            labels=["arm"],
        )
        logged = GaugeMetricFamily(
            "dethrone_log_rows_last_hour", "served rows logged in the last hour", labels=["arm"]
        )
        live = GaugeMetricFamily(
            "dethrone_live_loss",
            "mean loss of the newest labelled served "
            "rows of the last hour (absolute error, or 0/1 for classes)",
            labels=["arm"],
        )
        for arm, n, k in rows:
            coverage.add_metric([arm], k / n if n else 0.0)
            logged.add_metric([arm], float(n))
        for arm, value in losses.items():
            live.add_metric([arm], value)
        yield coverage
        yield logged
        yield live

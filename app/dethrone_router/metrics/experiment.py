"""Gauges of the running experiment: its split, and units, rows, labels and live loss per arm.

The running experiment is the ``experiment_id`` (``<champion>/<challenger or ->/<salt or ->``)
of the newest served row of the prediction log, so every worker and replica names the same
one. Its numbers come from the shared database at scrape time: a few queries on the
``predictions_experiment_ts`` index, reused for
:data:`~dethrone_router.gateway.predlog.COVERAGE_TTL` seconds, and a database outage leaves
these series out instead of failing the scrape.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import Engine, and_, func, select

from dethrone.store.schema import feedback as _fb
from dethrone.store.schema import predictions as _pred
from dethrone_router.gateway.assignment import CHALLENGER, CHAMPION
from dethrone_router.gateway.predlog import COVERAGE_TTL, LOSS_ROWS, loss

log = logging.getLogger("dethrone_router")


@dataclass(frozen=True)
class ExperimentView:
    """One computation of the gauges: per-arm dicts keyed by arm name."""

    experiment: str
    mode: str
    champion_version: str
    challenger_version: str
    split: dict[str, float]
    rows: dict[str, int]
    units: dict[str, int]
    labelled: dict[str, int]
    loss: dict[str, float]


def split_of(mode: str, cfg: dict[str, Any], *, has_challenger: bool) -> dict[str, float]:
    """The share of served traffic each arm gets under the config.

    >>> split_of("ab", {"a": 0.7, "b": 0.3}, has_challenger=True)
    {'champion': 0.7, 'challenger': 0.3}
    >>> split_of("shadow", {"a": 0.7, "b": 0.3}, has_challenger=True)
    {'champion': 1.0, 'challenger': 0.0}
    >>> split_of("ab", {"a": 0.7, "b": 0.3}, has_challenger=False)
    {'champion': 1.0}
    """
    if not has_challenger:  # no challenger was loaded: the champion served everything
        return {CHAMPION: 1.0}
    if mode == "ab":
        return {CHAMPION: float(cfg["a"]), CHALLENGER: float(cfg["b"])}
    return {CHAMPION: 1.0, CHALLENGER: 0.0}  # shadow: the challenger only scores, never serves


class ExperimentCollector:
    """The ``dethrone_experiment_*`` gauges of the running experiment.

    Rows, units and labels count every logged row of the experiment per arm, so in shadow
    mode the challenger's are its (unserved) shadow predictions: the rows its live loss
    is computed from. The loss of an arm is the mean :func:`~dethrone_router.gateway.predlog.loss`
    of its newest ``loss_rows`` labelled rows.
    """

    def __init__(
        self, engine: Engine, store: Any, *, ttl: float = COVERAGE_TTL, loss_rows: int = LOSS_ROWS
    ) -> None:
        self.engine, self.store, self.ttl, self.loss_rows = engine, store, ttl, loss_rows
        self._lock = threading.Lock()
        self._cached: tuple[float, ExperimentView | None] = (-1e18, None)

    def view(self) -> ExperimentView | None:
        """The gauges' values (None: no served row yet, or the database is unreadable)."""
        with self._lock:
            at, cached = self._cached
            if time.monotonic() - at < self.ttl:
                return cached
            try:
                cached = self._compute()
            except Exception as exc:  # noqa: BLE001 - a database outage must not fail the scrape
                log.debug("experiment gauges unavailable: %s", exc)
                cached = None
            # A failure is reused too: an unreachable host costs one timeout per TTL.
            self._cached = (time.monotonic(), cached)
            return cached

    def _compute(self) -> ExperimentView | None:
        newest = (
            select(_pred.c.experiment_id)
            .where(_pred.c.served.is_(True), _pred.c.experiment_id.is_not(None))
            .order_by(_pred.c.ts.desc())
            .limit(1)
        )
        join = _pred.outerjoin(
            _fb, and_(_fb.c.request_id == _pred.c.request_id, _fb.c.row == _pred.c.row)
        )
        with self.engine.connect() as conn:
            experiment = conn.execute(newest).scalar()
            if experiment is None:
                return None
            counts = select(
                _pred.c.arm,
                func.count(),
                func.count(_pred.c.unit.distinct()),
                func.count(_fb.c.label),
            )
            counts = counts.select_from(join).where(_pred.c.experiment_id == experiment)
            per_arm = {
                str(a): (int(n), int(u), int(k))
                for a, n, u, k in conn.execute(counts.group_by(_pred.c.arm))
            }
            losses = {arm: self._loss(conn, join, experiment, arm) for arm in per_arm}
        _, cfg = self.store.current()
        champion, challenger, _salt = (experiment.split("/", 2) + ["-", "-"])[:3]
        mode = str(cfg.get("mode", "ab"))
        return ExperimentView(
            experiment=experiment,
            mode=mode,
            champion_version=champion,
            challenger_version=challenger,
            split=split_of(mode, cfg, has_challenger=challenger != "-"),
            rows={arm: v[0] for arm, v in per_arm.items()},
            units={arm: v[1] for arm, v in per_arm.items()},
            labelled={arm: v[2] for arm, v in per_arm.items()},
            loss={arm: v for arm, v in losses.items() if v is not None},
        )

    def _loss(self, conn: Any, join: Any, experiment: str, arm: str) -> float | None:
        # Newest first on (experiment_id, ts): the scan stops after loss_rows labelled rows.
        labelled = (
            select(_pred.c.prediction, _fb.c.label)
            .select_from(join)
            .where(_pred.c.experiment_id == experiment, _pred.c.arm == arm)
            .where(_fb.c.label.is_not(None))
            .order_by(_pred.c.ts.desc())
            .limit(self.loss_rows)
        )
        values = [loss(p, y) for p, y in conn.execute(labelled)]
        return sum(values) / len(values) if values else None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        found = self.view()
        if found is None:
            return
        keys = ["experiment", "mode", "champion_version", "challenger_version"]
        info = GaugeMetricFamily(
            "dethrone_experiment_info", "the running experiment (always 1)", labels=keys
        )
        info.add_metric(
            [found.experiment, found.mode, found.champion_version, found.challenger_version], 1.0
        )
        yield info
        for name, doc, values in (
            ("split", "configured share of served traffic per arm", found.split),
            ("units", "distinct units with a logged row, per arm", found.units),
            ("rows", "rows logged per arm (shadow predictions included)", found.rows),
            ("labelled_rows", "logged rows that have a label, per arm", found.labelled),
            ("loss", "mean loss of the newest labelled rows per arm", found.loss),
        ):
            family = GaugeMetricFamily(
                f"dethrone_experiment_{name}",
                f"running experiment: {doc}",
                labels=["experiment", "arm"],
            )
            for arm, value in sorted(values.items()):
                family.add_metric([found.experiment, arm], float(value))
            yield family

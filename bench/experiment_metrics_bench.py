"""Scrape-time cost of the running-experiment gauges, on SQLite and PostgreSQL.

Fills a log with an older experiment and the running one (``--rows`` each, all within the
last hour, 30% labelled), then times one uncached computation of
:class:`~dethrone_router.metrics.experiment.ExperimentCollector` (newest experiment, counts
and distinct units per arm, live loss of the newest labelled rows per arm); peer: one
uncached computation of the label-coverage gauges (:class:`CoverageCollector`) on the same
database, in the same run. Median of ``--repeat`` runs; prints seconds and the ratio.

Usage: ``python bench/experiment_metrics_bench.py [--rows 200000] [--no-postgres]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from predlog_bench import make_rows, start_postgres

from dethrone.store import make_engine, upgrade
from dethrone.store.schema import feedback, predictions
from dethrone_router.gateway import predlog
from dethrone_router.metrics.experiment import ExperimentCollector


class _Store:
    def current(self):
        return 1, {"mode": "ab", "a": 0.5, "b": 0.5}


def fill(engine, n: int) -> None:
    now = time.time() - 600
    for name, start in (("3/-/-", 0), ("3/4/s1:v4", n)):
        for chunk in range(0, n, 50_000):
            rows = make_rows(min(50_000, n - chunk), start=start + chunk)
            for i, row in enumerate(rows):
                row.update(experiment_id=name, ts=now + (start + chunk + i) * 1e-3, features=None)
            labels = [
                {"request_id": r["request_id"], "row": r["row"], "label": 1.0, "received_at": 0.0}
                for r in rows[::10] + rows[3::10] + rows[7::10]
            ]
            with engine.begin() as conn:
                conn.execute(predictions.insert(), rows)
                conn.execute(feedback.insert(), labels)


def median_seconds(compute, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        compute()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def bench(url: str, n: int, repeat: int) -> dict:
    engine = make_engine(url)
    upgrade(engine)
    fill(engine, n)
    experiment = ExperimentCollector(engine, _Store(), ttl=0)
    view = experiment.view()
    assert view is not None and view.experiment == "3/4/s1:v4", view
    assert sum(view.rows.values()) == n, view
    coverage = predlog.CoverageCollector(engine)
    predlog.COVERAGE_TTL = 0  # the peer uncached too
    out = {
        "experiment s": median_seconds(experiment.view, repeat),
        "coverage s": median_seconds(coverage._rows, repeat),
    }
    out["ratio"] = out["experiment s"] / out["coverage s"]
    engine.dispose()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000, help="rows per experiment")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-postgres", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="experiment-metrics-bench-") as tmp:
        work = Path(tmp)
        dbs = {"sqlite": lambda name: f"sqlite:///{work / name}.sqlite3"}
        stack = None
        if not args.no_postgres:
            stack, dbs["postgresql"] = start_postgres(work)
        try:
            print(f"{'database':<12}{'experiment s':>14}{'coverage s':>12}{'ratio':>8}")
            for kind, new_db in dbs.items():
                r = bench(new_db("log"), args.rows, args.repeat)
                print(
                    f"{kind:<12}{r['experiment s']:>14.3f}{r['coverage s']:>12.3f}"
                    f"{r['ratio']:>8.2f}",
                    flush=True,
                )
        finally:
            if stack is not None:
                stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

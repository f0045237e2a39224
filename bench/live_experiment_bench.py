"""Wall time of one live-experiment look on N logged, labelled rows (SQLite file).

Logs N predictions (two arms, 1,000 sticky units per arm, no features, as with
``SERVING_LOG_FEATURES=none``) with a label each, then times

* dethrone   ``evaluate_experiment``: read the experiment's rows of the log (labelled or
             not, by salt, with proper losses), the pure ``look`` (every rule: label
             window and coverage, units, SRM, the betting sequence, guardrails) and its
             record (goal: < 5 s at 1e6)
* peer       ``pandas.read_sql`` of the same join plus a ``groupby`` mean loss per arm
             (no decision at all): what a hand-written notebook check costs

Registry, router and MLflow tracker are the in-memory fakes of the unit tests; only the
database work and the statistics are measured. The challenger is as good as the champion,
so the look ends in ``continue`` and no action is timed.

Usage: ``python bench/live_experiment_bench.py [--rows 1000000] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

T0 = 1_800_000_000.0


def fill(path: Path, n: int) -> None:
    """N labelled rows, written with the driver's executemany (fast set-up)."""
    from dethrone.experiments.modes import experiment_salt
    from dethrone.experiments.state import experiment_id
    from dethrone.store import make_engine, upgrade

    salt = experiment_salt(experiment_id("2", "bench"), "2")  # what the gateway logs
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    rng = np.random.default_rng(0)
    pred = rng.exponential(1.0, n).round(4)
    conn = sqlite3.connect(path)
    chunk = 200_000
    for lo in range(0, n, chunk):
        idx = range(lo, min(n, lo + chunk))
        conn.executemany(
            "INSERT INTO predictions (request_id, row, arm, served, unit, model_version, ts, "
            "prediction, salt) VALUES (?, 0, ?, 1, ?, ?, ?, ?, ?)",
            (
                (
                    f"r{i}",
                    "champion" if i % 2 else "challenger",
                    f"u{i % 2000}",
                    "1" if i % 2 else "2",
                    T0 + i * 1e-3,
                    repr(float(pred[i])),
                    salt,
                )
                for i in idx
            ),
        )
        conn.executemany(
            "INSERT INTO feedback (request_id, row, label, received_at) VALUES (?, 0, '0.0', ?)",
            ((f"r{i}", T0 + 1 + i * 1e-3) for i in idx),
        )
        conn.commit()
    conn.close()


def dethrone_look(path: Path) -> tuple[float, str]:
    import pandas as pd

    from dethrone.experiments import lifecycle as ex
    from dethrone.settings import Settings
    from dethrone.store import make_engine
    from tests.unit.experiments.test_lifecycle import Clock, FakeLiveTracker
    from tests.unit.pipeline_fakes import FakeRouter, InMemoryRegistry

    # labels within a minute, no minimum duration: every logged row enters the look
    settings = Settings(model_name="m", label_window="60s", live_min_duration="1s")
    reg = InMemoryRegistry(settings)
    for i in (1, 2):
        reg.fake.add_version(reg.name, f"run-{i}")
    reg.promote("1")
    engine = make_engine(f"sqlite:///{path}")
    clock = Clock()
    clock.now = T0 - 10
    ctx = ex.ExperimentContext(
        settings=settings,
        registry=reg,
        router=FakeRouter(pd.DataFrame({"x": [1]})),
        engine=engine,
        tracker=FakeLiveTracker(),
        clock=clock,
    )
    ex.start_experiment(ctx, challenger_version="2", key="bench")
    clock.now = T0 + 10_000  # past the label window of the last row
    began = time.perf_counter()
    out = ex.evaluate_experiment(ctx)
    seconds = time.perf_counter() - began
    engine.dispose()
    return seconds, out["action"]


def peer(path: Path) -> float:
    import pandas as pd

    began = time.perf_counter()
    with sqlite3.connect(path) as conn:
        frame = pd.read_sql(
            "SELECT p.arm, p.unit, p.prediction, f.label FROM predictions p JOIN feedback f "
            "ON f.request_id = p.request_id AND f.row = p.row WHERE p.ts >= ?",
            conn,
            params=(T0 - 10,),
        )
    frame["loss"] = (frame["prediction"].astype(float) - frame["label"].astype(float)).abs()
    frame.groupby("arm")["loss"].mean()
    return time.perf_counter() - began


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "router.sqlite3"
        began = time.perf_counter()
        fill(path, args.rows)
        print(f"logged {args.rows:,} labelled rows in {time.perf_counter() - began:.1f} s")
        ours, theirs = [], []
        for _ in range(args.repeat):
            seconds, action = dethrone_look(path)
            ours.append(seconds)
            theirs.append(peer(path))
        d, p = min(ours), min(theirs)
        print("| rows | dethrone look (s) | peer read_sql+groupby (s) | ratio | action |")
        print("|---:|---:|---:|---:|---|")
        print(f"| {args.rows:,} | {d:.2f} | {p:.2f} | {d / p:.2f} | {action} |")


if __name__ == "__main__":
    main()

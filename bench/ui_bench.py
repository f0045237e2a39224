"""Render time of the experiment page with 10^6 logged rows (SQLite, the embedded default).

Fills a fresh SQLite database (migrated to head) with N prediction rows of a running
experiment (two arms, 2 hours, 60% labelled) and its looks, then times the pages through
the Flask test client, the aggregate queries alone, and prints the query plans::

    PYTHONPATH=src:app python bench/ui_bench.py [--rows 1000000] [--repeat 5] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

EXPERIMENT = "live-v2-bench"


def fill(db: Path, rows: int, *, now: float, seed: int = 1) -> float:
    """Insert ``rows`` log rows (and ~60% labels) ending at ``now``; returns the start time."""
    rng = random.Random(seed)
    started = now - 7200.0
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    batch, labels = [], []
    step = 7200.0 / rows

    def flush() -> None:
        con.executemany(
            "INSERT INTO predictions (request_id, row, arm, served, unit, model_name,"
            " model_version, experiment_id, champion_version, challenger_version, salt, ts,"
            " prediction, latency_ms, features) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            batch,
        )
        con.executemany(
            "INSERT INTO feedback (request_id, row, label, received_at) VALUES (?,?,?,?)", labels
        )
        batch.clear()
        labels.clear()

    for i in range(rows):
        challenger = rng.random() < 0.5
        ts = started + i * step
        rid = f"req-{i:08d}"
        batch.append(
            (
                rid,
                0,
                "challenger" if challenger else "champion",
                1,
                f"user-{rng.randrange(rows // 4)}",
                "dethrone-model",
                "2" if challenger else "1",
                f"1/2/{EXPERIMENT}",
                "1",
                "2",
                EXPERIMENT,
                ts,
                json.dumps(round(rng.gauss(3900, 900), 2)),
                rng.expovariate(1 / 4.0),
                '{"carat":0.5,"cut":"Ideal"}',
            )
        )
        if rng.random() < 0.6:
            labels.append((rid, 0, json.dumps(round(rng.gauss(3900, 900), 2)), ts + 30.0))
        if len(batch) >= 50_000:
            flush()
    flush()
    con.commit()
    con.execute("ANALYZE")
    con.close()
    return started


def seed_experiment(engine, started: float, now: float, n_looks: int = 12) -> None:
    """A running experiment with ``n_looks`` looks; the last look (and its count of the
    settled rows, as the lifecycle does) 10 minutes before ``now``."""
    from dethrone.store.experiments import refresh_counts, save_experiment, save_look

    record = {
        "id": EXPERIMENT,
        "champion_version": "1",
        "challenger_version": "2",
        "salt": EXPERIMENT,
        "started_at": started,
        "mode": "ab",
        "split": 0.5,
        "thresholds": {"alpha": 0.05, "margin": 0.0, "min_units_per_arm": 100},
        "dag_run_id": "bench",
        "state": "running",
        "run_id": "0123456789abcdef",
        "looks": n_looks,
        "action": {"action": "start", "by": "bench", "reason": "bench", "at": started},
    }
    save_experiment(engine, record)
    for k in range(1, n_looks + 1):
        width = 400.0 / k**0.5
        save_look(
            engine,
            EXPERIMENT,
            {
                "time": started + k * 600.0,
                "phase": "experiment",
                "units_a": 5000 * k,
                "units_b": 5000 * k,
                "rows_a": 20000 * k,
                "rows_b": 20000 * k,
                "ci_low": 30.0 - width,
                "ci_high": 30.0 + width,
                "pvalue": min(1.0, 0.9 / k),
                "mean_a": 700.0,
                "mean_b": 670.0,
                "outcome": "continue",
            },
            k,
        )
    t0 = time.perf_counter()
    refresh_counts(engine, EXPERIMENT, now=now - 600)
    print(f"count of the settled rows at the last look: {time.perf_counter() - t0:.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--keep", help="folder for the database (default: a temporary one)")
    args = ap.parse_args()

    from dethrone.settings import Settings
    from dethrone.store import make_engine, upgrade
    from dethrone.store.experiments import arm_counts, recent_traffic

    folder = Path(args.keep or tempfile.mkdtemp(prefix="ui-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "router.sqlite3"
    now = time.time()
    if not db.exists():
        engine = make_engine(f"sqlite:///{db}")
        upgrade(engine)
        t0 = time.perf_counter()
        started = fill(db, args.rows, now=now)
        print(f"filled {args.rows:,} rows in {time.perf_counter() - t0:.1f} s ({db})")
        seed_experiment(engine, started, now)
    engine = make_engine(f"sqlite:///{db}")
    started = __import__("dethrone.store.experiments", fromlist=["x"]).experiment(
        engine, EXPERIMENT
    )["started_at"]

    def timed(label: str, fn) -> float:
        fn()  # warm (page cache, templates)
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        best, med = min(times), statistics.median(times)
        print(f"{label:<34} median {med * 1000:8.1f} ms   best {best * 1000:8.1f} ms")
        return med

    from dethrone.store import experiments as store

    def cold_counts():
        store._memo.clear()  # as a fresh worker: only what the last look stored
        return arm_counts(engine, EXPERIMENT, since=started)

    timed("arm_counts (fresh worker)", cold_counts)
    timed("recent_traffic (last 5 minutes)", lambda: recent_traffic(engine, since=now - 300))
    with engine.connect() as conn:
        for label, sql in (
            (
                "served tail",
                "SELECT arm, model_version, served, count(*) FROM predictions "
                f"WHERE ts >= {started} AND ts > {now - 720} GROUP BY arm, model_version, served",
            ),
            (
                "labelled tail",
                "SELECT p.arm, count(*) FROM feedback f JOIN predictions p ON "
                "p.request_id = f.request_id AND p.row = f.row "
                f"WHERE p.ts >= {started} AND f.received_at > {now - 720} GROUP BY p.arm",
            ),
            (
                "recent_traffic",
                "SELECT arm, model_version, count(*), avg(latency_ms) FROM "
                f"predictions WHERE ts >= {now - 300} GROUP BY arm, model_version",
            ),
        ):
            plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql).all()
            print(f"plan {label}: " + " | ".join(r[-1] for r in plan))

    import dethrone_router

    settings = Settings.from_env({}, router_data_dir=str(folder))
    app = dethrone_router.create_app(settings)
    client = app.test_client()
    for path in ("/ui/", f"/ui/experiments/{EXPERIMENT}", "/ui/serving"):
        resp = client.get(path)
        assert resp.status_code == 200, (path, resp.status_code, resp.data[:300])
        timed(f"GET {path}", lambda p=path: client.get(p))
    timed(
        f"GET /ui/experiments/{EXPERIMENT} (fresh worker)",
        lambda: (store._memo.clear(), client.get(f"/ui/experiments/{EXPERIMENT}")),
    )


if __name__ == "__main__":
    main()

"""Prediction log speed: the batched writer, feedback ingest and export, on SQLite and PostgreSQL.

For each database (an SQLite file; a private PostgreSQL started from Debian's binaries the
way the native stack test does, or ``--pg-url``), prints:

* writer      rows/s of PredictionLogWriter (requests of 16 rows with 9 features, from
              the first append to the last commit) and microseconds per ``append`` call
              (the cost on the request path); peer: the driver's own ``executemany`` of the
              same rows in one transaction
* feedback    rows/s of record_feedback in batches of 1,000 (validation, lookup, insert);
              peer: a plain INSERT of the same 1,000 rows per transaction
* export      seconds to export N logged rows (30% labelled) to Parquet, and the peak RSS of
              the exporting process; peer: pandas.read_sql of the same join + to_parquet

Usage: ``python bench/predlog_bench.py [--rows 100000] [--export-rows 1000000] [--no-postgres]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from dethrone.store import PredictionLogWriter, make_engine, upgrade
from dethrone.store.feedback import FeedbackItem, record_feedback
from dethrone.store.schema import feedback, predictions

ROOT = Path(__file__).resolve().parents[1]
FEATURES = ["carat", "cut", "color", "clarity", "depth", "table", "x", "y", "z"]


def make_rows(n: int, *, start: int = 0, ts: float | None = None) -> list[dict]:
    rng = np.random.default_rng(start)
    values = rng.normal(size=(n, len(FEATURES))).round(4)
    now = time.time() if ts is None else ts
    return [
        {
            "request_id": f"q{(start + i) // 16}",
            "row": (start + i) % 16,
            "arm": "champion" if i % 2 else "challenger",
            "served": True,
            "unit": f"u{i % 997}",
            "model_name": "dethrone-model",
            "model_version": "3",
            "experiment_id": "exp-1",
            "champion_version": "3",
            "challenger_version": "4",
            "salt": "s1",
            "ts": now,
            "prediction": float(values[i, 0] * 1000),
            "latency_ms": 1.5,
            "features": dict(zip(FEATURES, values[i].tolist(), strict=True)),
        }
        for i in range(n)
    ]


def bench_writer(url: str, n: int) -> dict:
    engine = make_engine(url)
    upgrade(engine)
    rows = make_rows(n)
    log = PredictionLogWriter(engine, flush_seconds=1.0, buffer_rows=n + 1)
    began, in_append = time.perf_counter(), 0.0
    for i in range(0, n, 16):
        t = time.perf_counter()
        log.append(rows[i : i + 16])
        in_append += time.perf_counter() - t
    log.flush(timeout=600)
    took = time.perf_counter() - began
    log.close()
    peer = _peer_insert(engine, make_rows(n, start=n))
    engine.dispose()
    return {
        "writer rows/s": n / took,
        "append us/call": in_append / (n / 16) * 1e6,
        "peer rows/s": n / peer,
    }


def _peer_insert(engine, rows: list[dict]) -> float:
    # The driver's own executemany, JSON encoded beforehand: what a hand-written insert costs.
    cols = [c for c in rows[0]]
    for r in rows:
        r["prediction"], r["features"] = json.dumps(r["prediction"]), json.dumps(r["features"])
    values = [tuple(r[c] for c in cols) for r in rows]
    raw = engine.raw_connection()
    try:
        mark = "?" if engine.dialect.name == "sqlite" else "%s"
        names = ", ".join(f'"{c}"' for c in cols)
        sql = f"INSERT INTO predictions ({names}) VALUES ({', '.join([mark] * len(cols))})"
        began = time.perf_counter()
        cur = raw.cursor()
        if engine.dialect.name == "sqlite":
            cur.execute("BEGIN")
        cur.executemany(sql, values)
        raw.commit() if engine.dialect.name != "sqlite" else cur.execute("COMMIT")
        return time.perf_counter() - began
    finally:
        raw.close()


def bench_feedback(url: str, n: int) -> dict:
    engine = make_engine(url)
    upgrade(engine)
    _bulk(engine, make_rows(n, start=10_000_000))
    keys = [(f"q{(10_000_000 + i) // 16}", (10_000_000 + i) % 16) for i in range(n)]
    began = time.perf_counter()
    for i in range(0, n, 1000):
        items = [FeedbackItem(k[0], k[1], float(j)) for j, k in enumerate(keys[i : i + 1000])]
        result = record_feedback(engine, items)
        assert result.counts["stored"] == len(items), result.counts
    took = time.perf_counter() - began
    with engine.begin() as conn:
        conn.execute(feedback.delete())
    began = time.perf_counter()
    for i in range(0, n, 1000):
        with engine.begin() as conn:
            conn.execute(
                feedback.insert(),
                [
                    {"request_id": k[0], "row": k[1], "label": 1.0, "received_at": 0.0}
                    for k in keys[i : i + 1000]
                ],
            )
    peer = time.perf_counter() - began
    engine.dispose()
    return {"feedback rows/s": n / took, "peer rows/s": n / peer}


def _bulk(engine, rows: list[dict], chunk: int = 20_000) -> None:
    for i in range(0, len(rows), chunk):
        with engine.begin() as conn:
            conn.execute(predictions.insert(), rows[i : i + chunk])


def fill_for_export(url: str, n: int) -> None:
    engine = make_engine(url)
    upgrade(engine)
    for start in range(0, n, 100_000):
        rows = make_rows(min(100_000, n - start), start=start, ts=1_700_000_000.0 + start)
        _bulk(engine, rows)
        labelled = [
            {"request_id": r["request_id"], "row": r["row"], "label": 1.0, "received_at": 0.0}
            for r in rows[::10] + rows[3::10] + rows[7::10]
        ]
        with engine.begin() as conn:
            conn.execute(feedback.insert(), labelled)
    engine.dispose()


_EXPORT = """
import resource, sys, time, json
from dethrone.store import make_engine
url, out, how = sys.argv[1:4]
engine = make_engine(url)
began = time.perf_counter()
if how == "dethrone":
    from dethrone.store.export import export
    rows = export(engine, out).rows
else:
    import pandas as pd
    sql = ("SELECT p.*, f.label, f.received_at FROM predictions p LEFT JOIN feedback f "
           "ON f.request_id = p.request_id AND f.row = p.row ORDER BY p.id")
    with engine.connect() as conn:
        frame = pd.read_sql(sql, conn)
    frame.to_parquet(out)
    rows = len(frame)
print(json.dumps({"seconds": time.perf_counter() - began, "rows": rows,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def bench_export(url: str, n: int, workdir: Path) -> dict:
    fill_for_export(url, n)
    out = {}
    for how in ("dethrone", "pandas"):
        res = subprocess.run(
            [sys.executable, "-c", _EXPORT, url, str(workdir / f"{how}.parquet"), how],
            capture_output=True,
            text=True,
            check=True,
            timeout=3600,
        )
        got = json.loads(res.stdout)
        assert got["rows"] == n, got
        out[f"{how} s"], out[f"{how} peak MB"] = got["seconds"], got["peak_rss_mb"]
    return out


def start_postgres(workdir: Path):
    sys.path.insert(0, str(ROOT / "scripts" / "stack"))
    from native_stack import Stack

    stack = Stack(workdir / "stack")
    stack.start_postgres()
    base = (
        f"postgresql+psycopg://postgres:{stack.creds.postgres_password}"
        f"@127.0.0.1:{stack.ports.postgres}"
    )
    import psycopg

    def new_db(name: str) -> str:
        with psycopg.connect(
            f"host=127.0.0.1 port={stack.ports.postgres} user=postgres "
            f"password={stack.creds.postgres_password} dbname=postgres",
            autocommit=True,
        ) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return f"{base}/{name}"

    return stack, new_db


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000, help="rows for writer and feedback")
    ap.add_argument("--export-rows", type=int, default=1_000_000)
    ap.add_argument("--no-postgres", action="store_true")
    args = ap.parse_args()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="predlog-bench-") as tmp:
        work = Path(tmp)
        dbs = {"sqlite": lambda name: f"sqlite:///{work / name}.sqlite3"}
        stack = None
        if not args.no_postgres:
            stack, dbs["postgresql"] = start_postgres(work)
        try:
            for kind, new_db in dbs.items():
                results[kind] = {
                    **bench_writer(new_db("writer"), args.rows),
                    **{
                        f"fb {k}": v
                        for k, v in bench_feedback(new_db("feedback"), args.rows).items()
                    },
                    **bench_export(new_db("export"), args.export_rows, work),
                }
                print(kind, json.dumps(results[kind]), flush=True)
        finally:
            if stack is not None:
                stack.stop()
    print_table(results, args)
    return 0


def print_table(results: dict[str, dict], args) -> None:
    print(f"\nrows={args.rows:,} export_rows={args.export_rows:,}")
    print(f"| measure | {' | '.join(results)} |")
    print("|---|" + "---:|" * len(results))
    lines = [
        ("writer rows/s (requests of 16 rows)", "writer rows/s", "{:,.0f}"),
        ("  peer: driver executemany rows/s", "peer rows/s", "{:,.0f}"),
        ("append() on the request path, us/call", "append us/call", "{:.1f}"),
        ("feedback rows/s (batches of 1,000)", "fb feedback rows/s", "{:,.0f}"),
        ("  peer: plain INSERT rows/s", "fb peer rows/s", "{:,.0f}"),
        ("export to Parquet, s", "dethrone s", "{:.1f}"),
        ("  export peak RSS, MB", "dethrone peak MB", "{:.0f}"),
        ("  peer: pandas.read_sql + to_parquet, s", "pandas s", "{:.1f}"),
        ("  peer peak RSS, MB", "pandas peak MB", "{:.0f}"),
    ]
    for label, key, fmt in lines:
        print(f"| {label} | " + " | ".join(fmt.format(r[key]) for r in results.values()) + " |")
    for kind, r in results.items():
        print(
            f"{kind}: writer/peer {r['writer rows/s'] / r['peer rows/s']:.2f}, "
            f"feedback/peer {r['fb feedback rows/s'] / r['fb peer rows/s']:.2f}, "
            f"export/pandas time {r['dethrone s'] / r['pandas s']:.2f}, "
            f"memory {r['dethrone peak MB'] / r['pandas peak MB']:.2f}"
        )


if __name__ == "__main__":
    sys.exit(main())

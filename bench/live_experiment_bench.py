"""Time and peak memory of one live-experiment look on N logged rows in PostgreSQL.

Logs N predictions (two arms at 50/50, ten rows per sticky unit, a latency each, as
with ``SERVING_LOG_FEATURES=none``) and a label for 90% of them, then runs one look per
path, each in a fresh process so its peak resident memory is the look's own:

* database  ``take_look`` as the DAG, the CLI and the page call it: the rows reduced to
            one row per (unit, arm) by a ``GROUP BY`` in PostgreSQL, the loss computed
            there, the latencies streamed in served order (goal: < 10 s and < 500 MB at
            1e7 rows)
* memory    today's path before issue 21: ``read_rows`` (every row into pandas, each
            loss in Python) and the pure ``look`` on the frame; by default only up to
            1e6 rows (``--memory-max``), as 1e7 rows do not fit the goal by far

Both looks must give the same outcome and interval (checked). Peak RSS is the process's
``VmHWM``, imports included (the "idle" line: the same process before the look).

Usage: ``python bench/live_experiment_bench.py [--rows 1000000 10000000] [--url URL]
[--logged]``; without ``--url`` a private PostgreSQL is started (``make ensure-postgres``
installs it); ``--logged``: the rows are there from an earlier run on ``--url``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "scripts" / "stack"))

T0 = 1_800_000_000.0
CHUNK = 1_000_000


def record(rows: int):
    from dethrone.registry.records import LiveExperiment

    return LiveExperiment(
        id=f"bench{rows}",
        champion_version="1",
        challenger_version="2",
        salt=f"bench{rows}",
        started_at=T0,
        state="running",
        split=0.5,
        thresholds={"label_window": "60s", "min_duration": "1s", "loss": "absolute_error"},
    )


def fill(url: str, n: int) -> None:
    """N rows with COPY (fast set-up), in chunks of a million."""
    import psycopg

    from dethrone.experiments.analysis import phase_of
    from dethrone.store import make_engine, upgrade

    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    salt = phase_of(record(n))[1]
    rng = np.random.default_rng(0)
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
        for lo in range(0, n, CHUNK):
            i = np.arange(lo, min(n, lo + CHUNK))
            b = i % 2 == 1
            ts = T0 + i * 1e-3
            pred = rng.exponential(1.0, i.size).round(4)
            label = (pred * rng.lognormal(0, 0.5, i.size)).round(4)
            lat = rng.lognormal(2, 0.4, i.size).round(3)
            _copy(
                conn,
                "predictions (request_id, row, arm, served, unit, model_version, ts, "
                "prediction, latency_ms, salt)",
                (
                    f"{n}-{k}\t0\t{'challenger' if bk else 'champion'}\tt\tu{k % (n // 10)}\t"
                    f"{'2' if bk else '1'}\t{t!r}\t{p!r}\t{la!r}\t{salt}\n"
                    for k, bk, t, p, la in zip(
                        i, b, ts.tolist(), pred.tolist(), lat.tolist(), strict=True
                    )
                ),
            )
            keep = rng.random(i.size) < 0.9
            _copy(
                conn,
                "feedback (request_id, row, label, received_at)",
                (
                    f"{n}-{k}\t0\t{y!r}\t{t + 5.0!r}\n"
                    for k, y, t in zip(
                        i[keep], label[keep].tolist(), ts[keep].tolist(), strict=True
                    )
                ),
            )
            conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE predictions")
        conn.execute("VACUUM ANALYZE feedback")


def _copy(conn, table: str, lines) -> None:
    buf = io.StringIO("".join(lines))
    with conn.cursor().copy(f"COPY {table} FROM STDIN") as copy:
        while data := buf.read(1 << 20):
            copy.write(data)


def child(url: str, rows: int, path: str) -> None:
    """One look in this process; prints time, peak RSS and the result as JSON."""
    from dethrone.experiments import analysis
    from dethrone.experiments.rules import look
    from dethrone.settings import Settings
    from dethrone.store import make_engine

    settings = Settings(model_name="m")
    engine = make_engine(url)
    rec = record(rows)
    now = T0 + rows * 1e-3 + 3600
    idle = _peak_mb()
    began = time.perf_counter()
    if path == "database":
        result, _ = analysis.take_look(engine, rec, settings, now=now)
    else:  # today's path: every row into memory, then the pure look
        arms, salt = analysis.phase_of(rec)
        frame, _ = analysis.read_rows(engine, rec, arms, salts=(salt,), loss="absolute_error")
        view = rec.__class__(**{**rec.__dict__, "salt": salt})
        result = look(frame, view, settings, now=now)
    seconds = time.perf_counter() - began
    peak = _peak_mb()
    out = {"seconds": seconds, "peak_mb": peak, "idle_mb": idle, "outcome": result.outcome}
    out |= {"ci_low": result.ci_low, "ci_high": result.ci_high}
    print(json.dumps(out))


def _peak_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited from
    the parent that filled the database)."""
    status = Path("/proc/self/status").read_text()
    line = next(x for x in status.splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def run(url: str, rows: int, path: str) -> dict:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT / 'app'}"}
    cmd = [sys.executable, __file__, "--child", path, "--url", url, "--rows", str(rows)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench(url: str, sizes: list[int], memory_max: int, *, logged: bool = False) -> None:
    print("| rows | path | look (s) | peak RSS (MB) | idle RSS (MB) | outcome | interval |")
    print("|---:|---|---:|---:|---:|---|---|")
    for n in sizes:
        if not logged:
            began = time.perf_counter()
            fill(url, n)
            print(f"<!-- logged {n:,} rows in {time.perf_counter() - began:.0f} s -->", flush=True)
        res = {"database": run(url, n, "database")}
        if n <= memory_max:
            res["memory"] = run(url, n, "memory")
        for path, r in res.items():
            print(
                f"| {n:,} | {path} | {r['seconds']:.2f} | {r['peak_mb']:.0f} | "
                f"{r['idle_mb']:.0f} | {r['outcome']} | [{r['ci_low']:.5g}, {r['ci_high']:.5g}] |",
                flush=True,
            )
        if "memory" in res:
            d, m = res["database"], res["memory"]
            same = d["outcome"] == m["outcome"] and np.isclose(d["ci_low"], m["ci_low"], rtol=1e-9)
            print(
                f"| {n:,} | memory / database | {m['seconds'] / d['seconds']:.1f}x | "
                f"{m['peak_mb'] / d['peak_mb']:.1f}x | | same outcome and interval: {same} | |",
                flush=True,
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--url", help="an empty PostgreSQL database (else one is started)")
    ap.add_argument("--memory-max", type=int, default=1_000_000)
    ap.add_argument("--logged", action="store_true", help="rows logged by an earlier run on --url")
    ap.add_argument("--child", choices=("database", "memory"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.url, args.rows[0], args.child)
    if args.url:
        return bench(args.url, args.rows, args.memory_max, logged=args.logged)
    from native_stack import Stack  # the stack's private PostgreSQL (scripts/stack)

    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(Path(tmp))
        stack.start_postgres()
        try:
            port, password = stack.ports.postgres, stack.creds.postgres_password
            bench(
                f"postgresql+psycopg://postgres:{password}@127.0.0.1:{port}/postgres",
                args.rows,
                args.memory_max,
            )
        finally:
            stack.stop()


if __name__ == "__main__":
    main()

"""Time and peak memory of one live-experiment look on N logged rows in PostgreSQL.

Logs N predictions (two arms at 50/50, ten rows per sticky unit, a latency each, as
with ``SERVING_LOG_FEATURES=none``; 1,000 requests a second) and a label for 90% of them,
then runs the looks below, each in a fresh process so its peak resident memory is the
look's own:

* first     ``take_look`` as the DAG, the CLI and the page call it, at the end of the
            traffic, with nothing kept yet: it folds every row whose label window has
            closed into the per-unit sums kept in the database, and reduces the rest
* next      five minutes and 300,000 more requests later, the DAG's next look: it folds
            only the rows that became final meanwhile and reads the kept sums (goal of
            issue 21: < 10 s and < 500 MB at 1e7 rows)
* all rows  the same look without the kept sums (``keep=False``: every row reduced by
            one ``GROUP BY``, as before the sums were kept)
* memory    the path before issue 21: ``read_rows`` (every row into pandas, each loss in
            Python) and the pure ``look`` on the frame; by default only up to 1e6 rows
            (``--memory-max``), as 1e7 rows need about 11 GB

The next look, all rows and memory must give the same outcome and interval (checked).
Peak RSS is the process's ``VmHWM``, imports included (the "idle" column: the same
process before the look).

Usage: ``python bench/live_experiment_bench.py [--rows 1000000 10000000] [--url URL]
[--logged] [--label-window 1h]``; without ``--url`` a private PostgreSQL is started
(``make ensure-postgres`` installs it); ``--logged``: the rows (and the next look's) are
there from an earlier run on ``--url``.
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
#: requests a second, and the traffic between two looks (the DAG's default 5 minutes)
RATE = 1000.0
BETWEEN = 300.0


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
        thresholds={
            "label_window": os.environ.get("BENCH_LABEL_WINDOW", "60s"),
            "min_duration": "1s",
            "loss": "absolute_error",
        },
    )


def fill(url: str, n: int, start: int = 0, more: int | None = None) -> None:
    """Rows ``start .. start + more`` (default: the first N) of the experiment of N rows
    with COPY (fast set-up), in chunks of a million."""
    import psycopg

    from dethrone.experiments.analysis import phase_of
    from dethrone.store import make_engine, upgrade

    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    salt = phase_of(record(n))[1]
    rng = np.random.default_rng(start)
    end = start + (n if more is None else more)
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
        for lo in range(start, end, CHUNK):
            i = np.arange(lo, min(end, lo + CHUNK))
            b = i % 2 == 1
            ts = T0 + i / RATE
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
    """One look in this process; prints time, peak RSS and the result as JSON (N rows,
    then the next look's more)."""
    from dethrone.experiments import analysis
    from dethrone.experiments.rules import look
    from dethrone.settings import Settings
    from dethrone.store import make_engine

    settings = Settings(model_name="m")
    engine = make_engine(url)
    rec = record(rows)
    now = T0 + rows / RATE + (0.0 if path == "first" else BETWEEN)
    idle = _peak_mb()
    began = time.perf_counter()
    if path in ("first", "next", "all rows"):
        result, _ = analysis.take_look(engine, rec, settings, now=now, keep=path != "all rows")
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
    print("| rows | look | look (s) | peak RSS (MB) | idle RSS (MB) | outcome | interval |")
    print("|---:|---|---:|---:|---:|---|---|")
    more = int(BETWEEN * RATE)
    for n in sizes:
        if not logged:
            began = time.perf_counter()
            fill(url, n)
            print(f"<!-- logged {n:,} rows in {time.perf_counter() - began:.0f} s -->", flush=True)
        _forget(url)
        res = {"first": run(url, n, "first")}
        if not logged:
            fill(url, n, start=n, more=more)  # the five minutes until the next look
        _autovacuum(url)
        res["next"] = run(url, n, "next")
        res["all rows"] = run(url, n, "all rows")
        if n <= memory_max:
            res["memory"] = run(url, n, "memory")
        for path, r in res.items():
            rows = n if path == "first" else n + more
            print(
                f"| {rows:,} | {path} | {r['seconds']:.2f} | {r['peak_mb']:.0f} | "
                f"{r['idle_mb']:.0f} | {r['outcome']} | [{r['ci_low']:.7g}, {r['ci_high']:.7g}] |",
                flush=True,
            )
        nxt = res["next"]
        for path in ("all rows", "memory"):
            if path in res:
                o = res[path]
                same = nxt["outcome"] == o["outcome"] and all(
                    np.isclose(nxt[c], o[c], rtol=1e-9) for c in ("ci_low", "ci_high")
                )
                print(
                    f"| {n + more:,} | {path} / next | {o['seconds'] / nxt['seconds']:.1f}x | "
                    f"{o['peak_mb'] / nxt['peak_mb']:.1f}x | | same outcome and interval: "
                    f"{same} | |",
                    flush=True,
                )


def _autovacuum(url: str) -> None:
    """What autovacuum does in the five minutes between two looks after the first wrote
    its 10^6 kept units (it starts within a minute of that many inserts): without it the
    next look's scan of them sets their hint bits, a write of every page."""
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as c:
        c.execute("VACUUM ANALYZE look_units")
        c.execute("VACUUM ANALYZE predictions")


def _forget(url: str) -> None:
    """No kept sums: the first look starts from nothing."""
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as c:
        c.execute("TRUNCATE look_units, look_scopes")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--url", help="an empty PostgreSQL database (else one is started)")
    ap.add_argument("--memory-max", type=int, default=1_000_000)
    ap.add_argument(
        "--label-window",
        default="60s",
        help="the experiment's label window (the next look reduces the rows of the last "
        "minute and of the minute before the window afresh, whatever its length)",
    )
    ap.add_argument(
        "--logged",
        action="store_true",
        help="rows logged by an earlier run on --url (with the next look's)",
    )
    ap.add_argument(
        "--child", choices=("first", "next", "all rows", "memory"), help=argparse.SUPPRESS
    )
    args = ap.parse_args()
    if not args.child:  # (the looks' processes inherit it)
        os.environ["BENCH_LABEL_WINDOW"] = args.label_window
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

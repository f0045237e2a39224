"""Drift at scale: Spark (local mode) against the in-memory path, on Parquet files.

Diamonds-like rows (rows of the shipped diamonds data drawn with replacement, a small
continuous jitter on carat, depth, x, y, z and price, so that those columns have millions
of distinct values and are KLL-sketched above the profile's cap), written to Parquet in
chunks of ``--chunk`` rows (never a whole side in memory). The current side gets the
seed's drift in carat and color (each carat with probability 0.5 multiplied by
U(0.1, 2.0); each color with probability 0.5 redrawn uniformly from the categories).

For each ``--rows`` size, each side is checked in its own process (so that peak memory
is that path's alone), sampled every 0.2 s with psutil:

* ``spark``: :func:`dethrone.drift.spark.detect_drift_spark` on ``SPARK_MASTER``
  (default ``local[2]``, driver 1 GB): both profiles built per partition and merged.
  Peak RSS of the driver (the Python process plus its JVM) and of the Python workers.
* ``memory`` (only at ``--memory-max-rows`` and below): today's path,
  ``pd.read_parquet`` of both sides and ``detect_drift(frame, frame)``, which profiles
  exactly (no sketch): its KS statistics are the exact ones.

Prints wall time, peak RSS, columns flagged (must be exactly carat and color) and, where
both ran, the largest |KS from the sketches - exact KS| with the stated bound.

Usage: ``python bench/drift_scale_bench.py [--rows 10000000 100000000] [--dir DIR]``;
the data are deleted at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

NUMERIC = ["carat", "depth", "table", "x", "y", "z", "price"]
CATEGORICAL = ["cut", "color", "clarity"]
FEATURES = NUMERIC + CATEGORICAL
JITTER = {"carat": 0.02, "x": 0.01, "y": 0.01, "z": 0.01, "price": 0.02}  # log-scale sd
DEPTH_SD = 0.1


def generate(folder: Path, side: int, rows: int, chunk: int) -> float:
    """Write ``rows`` diamonds-like rows to ``folder/part-*.parquet``; seconds taken."""
    from dethrone.slices.datasets import load_diamonds
    from dethrone.slices.injection import apply_drift

    began = time.perf_counter()
    d = load_diamonds()
    num = {c: d[c].to_numpy(dtype=np.float64) for c in NUMERIC}
    cats = {c: pd.Categorical(d[c].astype(str)) for c in CATEGORICAL}
    folder.mkdir(parents=True, exist_ok=True)
    for i, start in enumerate(range(0, rows, chunk)):
        n = min(chunk, rows - start)
        g = np.random.default_rng([side, i])
        idx = g.integers(0, len(d), n)
        out = {}
        for c in NUMERIC:
            v = num[c][idx]
            if c in JITTER:
                v = v * np.exp(g.normal(0.0, JITTER[c], n))
            elif c == "depth":
                v = v + g.normal(0.0, DEPTH_SD, n)
            out[c] = v
        for c, cat in cats.items():
            out[c] = pd.Categorical.from_codes(cat.codes[idx], dtype=cat.dtype)
        frame = pd.DataFrame(out)
        if side == 2:  # current data: the seed's drift in carat and color
            frame = apply_drift(frame, ["carat", "color"], g)
        table = pa.Table.from_pandas(frame, preserve_index=False)
        pq.write_table(table, folder / f"part-{i:05d}.parquet")
    return time.perf_counter() - began


def run_path(path: str, ref: str, cur: str) -> dict:
    """One check in this process; its report as a dict (printed as JSON by the child)."""
    from dethrone.drift import detect_drift
    from dethrone.settings import Settings

    began = time.perf_counter()
    settings = Settings(spark_master=os.environ.get("SPARK_MASTER", "local[2]"))
    if path == "spark":
        from dethrone.drift.spark import detect_drift_spark

        report = detect_drift_spark(
            ref, cur, features=FEATURES, categorical=CATEGORICAL, settings=settings
        )
    else:
        reference = pd.read_parquet(ref, columns=FEATURES)
        current = pd.read_parquet(cur, columns=FEATURES)
        report = detect_drift(reference, current, categorical=CATEGORICAL, settings=settings)
    seconds = time.perf_counter() - began
    return {
        "seconds": seconds,
        "flagged": report.drifted_features,
        "n": [report.n_reference, report.n_current],
        "ks": {
            n: [f.statistic, f.statistic_error]
            for n, f in report.features.items()
            if f.kind == "numeric"
        },
    }


class Peak:
    """Peak RSS (MB) of a child process tree, by role, sampled every 0.2 s."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.proc = psutil.Process(pid)
        self.peak = {"driver": 0.0, "jvm": 0.0, "workers": 0.0, "total": 0.0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                now = {"driver": self.proc.memory_info().rss / 1e6, "jvm": 0.0, "workers": 0.0}
                for p in self.proc.children(recursive=True):
                    try:
                        rss = p.memory_info().rss / 1e6
                        role = "jvm" if "java" in p.name() else "workers"
                        now[role] += rss
                    except psutil.Error:
                        pass
            except psutil.Error:
                break
            now["total"] = sum(now.values())
            for k, v in now.items():
                self.peak[k] = max(self.peak[k], v)
            self._stop.wait(0.2)

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        return self.peak


def measure(path: str, ref: Path, cur: Path, timeout: float) -> dict:
    """Run ``path`` in a child process; its report plus wall time and peak RSS."""
    argv = [sys.executable, __file__, "--child", path, str(ref), str(cur)]
    began = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    peak = Peak(child.pid)
    try:
        out, _ = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        import psutil

        for p in psutil.Process(child.pid).children(recursive=True):
            p.kill()
        child.kill()
        child.communicate()
        return {"timeout": timeout, "wall": time.perf_counter() - began, "peak": peak.stop()}
    result = json.loads(out.strip().splitlines()[-1]) if child.returncode == 0 else {}
    result.update(wall=time.perf_counter() - began, peak=peak.stop(), rc=child.returncode)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000_000, 100_000_000])
    parser.add_argument("--chunk", type=int, default=1_000_000)
    parser.add_argument("--memory-max-rows", type=int, default=10_000_000)
    parser.add_argument("--dir", default="/work/tmp/drift_scale_bench")
    parser.add_argument("--timeout", type=float, default=1500.0, help="seconds per check")
    parser.add_argument("--keep", action="store_true", help="keep the generated Parquet")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_path(*args.child)))
        return
    root = Path(args.dir)
    master = os.environ.get("SPARK_MASTER", "local[2]")
    print(f"drift at scale: Spark {master} vs in memory; {os.cpu_count()} cores; data in {root}")
    try:
        for rows in args.rows:
            ref, cur = root / f"{rows}" / "ref", root / f"{rows}" / "cur"
            t = sum(generate(f, side, rows, args.chunk) for side, f in ((1, ref), (2, cur)))
            size = sum(p.stat().st_size for p in (root / f"{rows}").rglob("*.parquet"))
            print(f"\n{rows:,} rows a side: generated in {t:.0f} s, {size / 1e9:.2f} GB Parquet")
            results = {"spark": measure("spark", ref, cur, args.timeout)}
            if rows <= args.memory_max_rows:
                results["memory"] = measure("memory", ref, cur, args.timeout)
            print(
                f"  {'path':<8}{'wall s':>9}{'driver MB':>11}{'(py+jvm)':>17}"
                f"{'workers MB':>12}  flagged"
            )
            for path, r in results.items():
                p = r["peak"]
                driver = p["driver"] + p["jvm"]
                flagged = (
                    f"TIMEOUT after {r['timeout']:.0f} s"
                    if "timeout" in r
                    else (r.get("flagged", f"FAILED rc={r.get('rc')}"))
                )
                parts = f"({p['driver']:.0f}+{p['jvm']:.0f})"
                print(
                    f"  {path:<8}{r['wall']:9.1f}{driver:11.0f}{parts:>17}"
                    f"{p['workers']:12.0f}  {flagged}"
                )
            ok = [r.get("flagged") for r in results.values()]
            print(f"  flagged exactly carat and color: {all(f == ['carat', 'color'] for f in ok)}")
            if "ks" in results["spark"] and "ks" in results.get("memory", {}):
                print(f"  {'column':<8}{'exact D':>10}{'sketch D':>10}{'|diff|':>10}{'bound':>9}")
                worst = 0.0
                for col, (exact, _) in results["memory"]["ks"].items():
                    sk, bound = results["spark"]["ks"][col]
                    worst = max(worst, abs(sk - exact))
                    print(f"  {col:<8}{exact:10.5f}{sk:10.5f}{abs(sk - exact):10.5f}{bound:9.5f}")
                print(f"  largest |sketch KS - exact KS| at {rows:,} rows: {worst:.5f}")
            if not args.keep:
                shutil.rmtree(root / f"{rows}", ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

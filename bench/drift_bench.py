"""Drift-check speed: dethrone vs a plain scipy loop vs a numpy lower bound.

For N rows per side (sampled with replacement from diamonds; seed-style drift in
carat and color), over the 9 diamonds features, prints the median seconds of:

* ``dethrone``          detect_drift(reference_frame, current_frame)
* ``dethrone profile``  detect_drift(saved_profile, current_frame) (profile built once)
* ``scipy loop``        scipy.stats.ks_2samp per numeric column + value_counts PSI
* ``numpy bound``       the least a numpy implementation must do: sort both sides,
                        two searchsorted calls for the KS statistic, bincount for categories

and the ratios. Usage: ``python bench/drift_bench.py [--sizes 10000 100000 1000000] [--repeat 5]``.
Reference figures for Evidently 0.7 and NannyML (not measured here) are in DESIGN.md.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from dethrone.datasets import load_diamonds
from dethrone.drift import ReferenceProfile, detect_drift
from dethrone.injection import apply_drift
from dethrone.settings import Settings

FEATURES = ["carat", "cut", "color", "clarity", "depth", "table", "x", "y", "z"]
NUMERIC = ["carat", "depth", "table", "x", "y", "z"]
CATEGORICAL = ["cut", "color", "clarity"]


def scipy_loop(ref: pd.DataFrame, cur: pd.DataFrame) -> dict:
    out = {}
    for col in NUMERIC:
        out[col] = stats.ks_2samp(ref[col].to_numpy(), cur[col].to_numpy()).pvalue
    for col in CATEGORICAL:
        r = ref[col].value_counts(normalize=True)
        c = cur[col].value_counts(normalize=True).reindex(r.index, fill_value=0)
        r, c = np.maximum(r.to_numpy(), 1e-4), np.maximum(c.to_numpy(), 1e-4)
        out[col] = float(np.sum((c - r) * np.log(c / r)))
    return out


def numpy_bound(ref: pd.DataFrame, cur: pd.DataFrame) -> dict:
    out = {}
    for col in NUMERIC:
        a = np.sort(ref[col].to_numpy())
        b = np.sort(cur[col].to_numpy())
        fa = np.searchsorted(a, b, side="right") / a.size - np.arange(1, b.size + 1) / b.size
        fb = np.searchsorted(b, a, side="right") / b.size - np.arange(1, a.size + 1) / a.size
        out[col] = max(np.abs(fa).max(), np.abs(fb).max())  # ignores ties: a lower bound
    for col in CATEGORICAL:
        k = len(ref[col].cat.categories)
        r = np.bincount(ref[col].cat.codes.to_numpy(), minlength=k) / len(ref)
        c = np.bincount(cur[col].cat.codes.to_numpy(), minlength=k) / len(cur)
        r, c = np.maximum(r, 1e-4), np.maximum(c, 1e-4)
        out[col] = float(np.sum((c - r) * np.log(c / r)))
    return out


def median_time(fn, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    diamonds = load_diamonds()[FEATURES]
    settings = Settings()
    rng = np.random.default_rng(0)
    rows = []
    for n in args.sizes:
        ref = diamonds.iloc[rng.integers(0, len(diamonds), n)].reset_index(drop=True)
        cur = diamonds.iloc[rng.integers(0, len(diamonds), n)].reset_index(drop=True)
        cur = apply_drift(cur, ["carat", "color"], rng)
        with tempfile.TemporaryDirectory() as tmp:
            path = ReferenceProfile.from_frame(ref, settings=settings).save(Path(tmp) / "p.npz")
            profile = ReferenceProfile.load(path)
        report = detect_drift(profile, cur, settings=settings)
        assert report.drifted_features == ["carat", "color"], report.drifted_features
        t = {
            "dethrone": median_time(lambda: detect_drift(ref, cur, settings=settings), args.repeat),
            "profile": median_time(lambda: detect_drift(profile, cur, settings=settings),
                                   args.repeat),
            "scipy": median_time(lambda: scipy_loop(ref, cur), args.repeat),
            "numpy": median_time(lambda: numpy_bound(ref, cur), args.repeat),
        }
        rows.append((n, t))
    print(f"drift check over {len(FEATURES)} diamonds features, seed drift in carat+color, "
          f"median of {args.repeat} runs (seconds)")
    head = (f"{'N':>9} {'dethrone':>9} {'profile':>9} {'scipy':>9} {'numpy':>9} "
            f"{'dethrone/numpy':>15} {'scipy/dethrone':>15} {'dethrone/profile':>17}")
    print(head)
    print("-" * len(head))
    for n, t in rows:
        print(f"{n:>9} {t['dethrone']:>9.4f} {t['profile']:>9.4f} {t['scipy']:>9.4f} "
              f"{t['numpy']:>9.4f} {t['dethrone'] / t['numpy']:>15.2f} "
              f"{t['scipy'] / t['dethrone']:>15.2f} {t['dethrone'] / t['profile']:>17.2f}")
    print("goal at 1M: dethrone/numpy <= 1.5, scipy/dethrone >= 2, profile faster again")


if __name__ == "__main__":
    main()

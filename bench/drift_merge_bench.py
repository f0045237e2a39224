"""Mergeable drift profiles: building in parts and merging vs one pass; sketch KS error.

Diamonds-like rows: rows of the shipped diamonds data drawn with replacement, with a
small continuous jitter on carat, depth, x, y, z and price (so they have millions of
distinct values and are summarised by KLL sketches above the profile's cap; ``table``
stays discrete and exact, as do the categorical cut, color and clarity). The current
data get the seed's drift in carat and color.

Prints, for ``--rows`` (10^7) rows a side in parts of ``--part`` (10^6) rows:

* time and peak traced memory (tracemalloc: numpy and pandas buffers; the sketches'
  C++ memory, ~50 KB each, is not traced) of building the reference profile part by part
  and merging, against one pass over the whole frame, and their ratios;
* how far the merged sketches are from the one-pass sketches (KS between them);
* ``detect_drift(profile, profile)`` on the merged profiles: time, columns flagged;
* the KS statistic from the sketches against scipy's exact ``ks_2samp`` on the raw
  values at one part (10^6) and at all rows (10^7), with the stated bound.

Usage: ``python bench/drift_merge_bench.py [--rows 10000000] [--part 1000000]``.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np
import pandas as pd
from scipy import stats

from dethrone.drift import ReferenceProfile, detect_drift
from dethrone.drift.stattests import ks_between
from dethrone.slices.datasets import load_diamonds
from dethrone.slices.injection import apply_drift

NUMERIC = ["carat", "depth", "table", "x", "y", "z", "price"]
CATEGORICAL = ["cut", "color", "clarity"]
JITTER = {"carat": 0.02, "x": 0.01, "y": 0.01, "z": 0.01, "price": 0.02}  # log-scale sd
DEPTH_SD = 0.1


class Source:
    """Deterministic diamonds-like parts: part ``i`` of a side is the same on every call."""

    def __init__(self) -> None:
        d = load_diamonds()
        self.num = {c: d[c].to_numpy(dtype=np.float64) for c in NUMERIC}
        self.cats = {c: pd.Categorical(d[c]) for c in CATEGORICAL}
        self.n = len(d)

    def part(self, side: int, i: int, rows: int) -> pd.DataFrame:
        g = np.random.default_rng([side, i])
        idx = g.integers(0, self.n, rows)
        out = {}
        for c in NUMERIC:
            v = self.num[c][idx]
            if c in JITTER:
                v = v * np.exp(g.normal(0.0, JITTER[c], rows))
            elif c == "depth":
                v = v + g.normal(0.0, DEPTH_SD, rows)
            out[c] = v
        for c, cat in self.cats.items():
            out[c] = pd.Categorical.from_codes(cat.codes[idx], dtype=cat.dtype)
        frame = pd.DataFrame(out)
        if side == 2:  # current data: the seed's drift in carat and color
            frame = apply_drift(frame, ["carat", "color"], g)
        return frame

    def parts(self, side: int, rows: int, part: int):
        for i in range(rows // part):
            yield self.part(side, i, part)


def measured(fn):
    """(result, seconds, peak traced MB) of ``fn()``."""
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - t0
    peak = (tracemalloc.get_traced_memory()[1] - base) / 1e6
    return result, seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--part", type=int, default=1_000_000)
    args = parser.parse_args()
    src = Source()
    rows, part = args.rows, args.part
    k = ReferenceProfile.__dataclass_fields__["sketch_k"].default
    cap = ReferenceProfile.__dataclass_fields__["exact_max_unique"].default
    print(f"{rows:,} diamonds-like rows a side, parts of {part:,}; cap {cap:,} distinct, KLL k={k}")
    tracemalloc.start()

    merged, t_parts, m_parts = measured(
        lambda: ReferenceProfile.from_parts(src.parts(1, rows, part))
    )

    def one_pass():
        frame = pd.concat(list(src.parts(1, rows, part)), ignore_index=True)
        return ReferenceProfile.from_frame(frame)

    whole, t_whole, m_whole = measured(one_pass)
    print("\nreference profile        seconds   peak MB")
    print(f"  parts + merge       {t_parts:11.2f} {m_parts:9.0f}")
    print(f"  one pass            {t_whole:11.2f} {m_whole:9.0f}")
    print(f"  ratio parts/one     {t_parts / t_whole:11.2f} {m_parts / m_whole:9.2f}")
    size = len(merged.to_bytes())
    print(
        f"  saved profile: {size / 1e3:.0f} kB; sketched columns: "
        + ", ".join(n for n, f in merged.features.items() if not f.exact)
    )

    print("\nmerged vs one-pass profile (KS between the two summaries, and the bound):")
    for name, f in merged.features.items():
        g = whole.features[name]
        if f.exact and g.exact:
            same = np.array_equal(f.unique, g.unique) and np.array_equal(f.cum, g.cum)
            same = same and np.array_equal(f.counts, g.counts)
            print(f"  {name:<8} exact, identical: {same}")
        else:
            d = ks_between(f, g)
            print(f"  {name:<8} KS {d:.5f} <= bound {f.rank_error + g.rank_error:.5f}")
    del whole

    current, t_cur, m_cur = measured(lambda: ReferenceProfile.from_parts(src.parts(2, rows, part)))
    report, t_detect, _ = measured(lambda: detect_drift(merged, current))
    print(f"\ncurrent profile in parts: {t_cur:.2f} s, peak {m_cur:.0f} MB")
    print(
        f"detect_drift(profile, profile): {t_detect * 1e3:.1f} ms; "
        f"flagged: {report.drifted_features}"
    )
    tracemalloc.stop()

    print("\nKS from sketches vs scipy ks_2samp on the raw values")
    print(f"  {'rows':>10} {'column':<7} {'exact D':>9} {'sketch D':>9} {'|diff|':>8} {'bound':>8}")
    worst = {}
    one_ref = ReferenceProfile.from_frame(src.part(1, 0, part))
    one_cur = ReferenceProfile.from_frame(src.part(2, 0, part))
    for size_rows, p_ref, p_cur, cols in (
        (part, one_ref, one_cur, ["carat", "depth", "x", "price"]),
        (rows, merged, current, ["carat", "depth", "price"]),
    ):
        for col in cols:
            a = np.concatenate([p[col].to_numpy() for p in src.parts(1, size_rows, part)])
            b = np.concatenate([p[col].to_numpy() for p in src.parts(2, size_rows, part)])
            exact = stats.ks_2samp(a, b).statistic
            del a, b
            f = detect_drift(p_ref, p_cur, features=[col]).features[col]
            diff = abs(f.statistic - exact)
            worst[size_rows] = max(worst.get(size_rows, 0.0), diff)
            print(
                f"  {size_rows:>10,} {col:<7} {exact:9.5f} {f.statistic:9.5f} "
                f"{diff:8.5f} {f.statistic_error:8.5f}"
            )
    for n, w in worst.items():
        print(f"  largest |sketch D - exact D| at {n:,} rows: {w:.5f}")


if __name__ == "__main__":
    main()

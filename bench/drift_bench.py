"""Drift-check speed: dethrone vs a plain scipy loop vs a numpy lower bound.

For N rows per side (sampled with replacement from diamonds; seed-style drift in
carat and color), over the 9 diamonds features, prints the median seconds of:

* ``dethrone``          detect_drift(reference_frame, current_frame)
* ``dethrone profile``  detect_drift(saved_profile, current_frame) (profile built once)
* ``scipy loop``        scipy.stats.ks_2samp per numeric column + value_counts PSI
* ``numpy bound``       the least a numpy implementation must do: sort both sides,
                        two searchsorted calls for the KS statistic, bincount for categories

and the ratios. Usage: ``python bench/drift_bench.py [--sizes 10000 100000 1000000] [--repeat 5]``.

With ``--compare-python PY`` (a Python that has evidently 0.7 and nannyml installed, which
need pandas < 3 and so cannot share dethrone's venv), the same frames are written to
Parquet and timed by ``bench/third_party_drift.py`` under PY, in the same run:
Evidently's default ``DataDriftPreset`` and NannyML's univariate KS/chi2 calculator with its
default 10 chunks (see ``third_party_drift.py``); their configuration and the columns each
flags are printed with the times.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from dethrone.drift import ReferenceProfile, detect_drift
from dethrone.settings import Settings
from dethrone.slices.datasets import load_diamonds
from dethrone.slices.injection import apply_drift

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


def third_party(python: str, ref: pd.DataFrame, cur: pd.DataFrame, *, repeat: int) -> dict:
    """Time Evidently and NannyML on the same frames in a separate interpreter."""
    with tempfile.TemporaryDirectory() as tmp:
        ref.to_parquet(Path(tmp) / "ref.parquet")
        cur.to_parquet(Path(tmp) / "cur.parquet")
        script = Path(__file__).with_name("third_party_drift.py")
        proc = subprocess.run(
            [
                python,
                str(script),
                str(Path(tmp) / "ref.parquet"),
                str(Path(tmp) / "cur.parquet"),
                "--repeat",
                str(repeat),
            ],
            capture_output=True,
            text=True,
            timeout=1800,
        )
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"evidently_error": proc.stderr[-300:], "nannyml_error": proc.stderr[-300:]}


def _f(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def _ratio(value, base) -> str:
    return "-" if value is None else f"{value / base:.1f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--compare-python",
        metavar="PY",
        help="Python with evidently and nannyml for the third-party columns",
    )
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
        t: dict = {"dethrone_drifted": report.drifted_features}
        t.update(
            {
                "dethrone": median_time(
                    lambda ref=ref, cur=cur: detect_drift(ref, cur, settings=settings), args.repeat
                ),
                "profile": median_time(
                    lambda p=profile, cur=cur: detect_drift(p, cur, settings=settings), args.repeat
                ),
                "scipy": median_time(lambda ref=ref, cur=cur: scipy_loop(ref, cur), args.repeat),
                "numpy": median_time(lambda ref=ref, cur=cur: numpy_bound(ref, cur), args.repeat),
            }
        )
        if args.compare_python:
            t.update(
                third_party(
                    args.compare_python,
                    ref,
                    cur,
                    repeat=1 if n >= 1_000_000 else min(args.repeat, 3),
                )
            )
        rows.append((n, t))
    print(
        f"drift check over {len(FEATURES)} diamonds features, seed drift in carat+color, "
        f"median of {args.repeat} runs (seconds)"
    )
    head = (
        f"{'N':>9} {'dethrone':>9} {'profile':>9} {'scipy':>9} {'numpy':>9} "
        f"{'dethrone/numpy':>15} {'scipy/dethrone':>15} {'dethrone/profile':>17}"
    )
    print(head)
    print("-" * len(head))
    for n, t in rows:
        print(
            f"{n:>9} {t['dethrone']:>9.4f} {t['profile']:>9.4f} {t['scipy']:>9.4f} "
            f"{t['numpy']:>9.4f} {t['dethrone'] / t['numpy']:>15.2f} "
            f"{t['scipy'] / t['dethrone']:>15.2f} {t['dethrone'] / t['profile']:>17.2f}"
        )
    if args.compare_python:
        print(
            f"\n{'N':>9} {'evidently':>10} {'nannyml':>9} {'evidently/dethrone':>19} "
            f"{'nannyml/dethrone':>17}"
        )
        for n, t in rows:
            ev, nm = t.get("evidently"), t.get("nannyml")
            print(
                f"{n:>9} {_f(ev):>10} {_f(nm):>9} {_ratio(ev, t['dethrone']):>19} "
                f"{_ratio(nm, t['dethrone']):>17}"
            )
            for key in ("evidently_error", "nannyml_error"):
                if t.get(key):
                    print(f"   {key}: {t[key]}")
            print(
                f"   flagged: dethrone {t['dethrone_drifted']}, evidently "
                f"{t.get('evidently_drifted')}, nannyml {t.get('nannyml_drifted')}"
            )
        for key in ("evidently_config", "nannyml_config"):
            if rows and rows[0][1].get(key):
                print(f"{key}: {rows[0][1][key]}")
    print("goal at 1M: dethrone/numpy <= 1.5, scipy/dethrone >= 2, profile faster again")


if __name__ == "__main__":
    main()

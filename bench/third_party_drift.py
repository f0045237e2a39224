"""Time Evidently and NannyML drift checks on given reference/current Parquet files.

Run with a Python that has evidently and/or nannyml installed (they are not
dependencies of dethrone); ``bench/drift_bench.py --compare-python PY`` calls this
script with the same data it times dethrone on and prints the results side by side.
Prints one JSON object: {"evidently": seconds|null, "nannyml": seconds|null, ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import warnings

import pandas as pd

warnings.filterwarnings("ignore")
os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")  # no telemetry calls from a benchmark


def median_time(fn, repeat):
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def evidently_check(ref, cur):
    from evidently import Report
    from evidently.presets import DataDriftPreset

    return Report([DataDriftPreset()]).run(current_data=cur, reference_data=ref)


def nannyml_check(ref, cur, numeric, categorical):
    import nannyml as nml

    calc = nml.UnivariateDriftCalculator(
        column_names=numeric + categorical, continuous_methods=["kolmogorov_smirnov"],
        categorical_methods=["chi2"], chunk_number=1)
    calc.fit(ref)
    return calc.calculate(cur)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("reference")
    p.add_argument("current")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--categorical", default="cut,color,clarity")
    args = p.parse_args()
    ref, cur = pd.read_parquet(args.reference), pd.read_parquet(args.current)
    categorical = args.categorical.split(",")
    numeric = [c for c in ref.columns if c not in categorical]
    for frame in (ref, cur):  # both tools expect plain string categories
        for c in categorical:
            frame[c] = frame[c].astype(str)
    out = {}
    for name, fn in (("evidently", lambda: evidently_check(ref, cur)),
                     ("nannyml", lambda: nannyml_check(ref, cur, numeric, categorical))):
        try:
            out[name] = median_time(fn, args.repeat)
        except Exception as exc:  # report why a tool could not run, keep the other
            out[name] = None
            out[name + "_error"] = f"{type(exc).__name__}: {exc}"[:300]
    print(json.dumps(out))


if __name__ == "__main__":
    main()

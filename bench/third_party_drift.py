"""Time Evidently and NannyML drift checks on given reference/current Parquet files.

Run with a Python that has evidently and/or nannyml installed (they are not
dependencies of dethrone); ``bench/drift_bench.py --compare-python PY`` calls this
script with the same data it times dethrone on and prints the results side by side.
Prints one JSON object: {"evidently": seconds|null, "nannyml": seconds|null, ...} with each
tool's configuration (``*_config``) and the columns it flags (``*_drifted``).

Each tool is configured as its documentation recommends:

* Evidently 0.7: ``Report([DataDriftPreset()])`` with its defaults: the per-column test is
  chosen automatically (at more than 1,000 reference rows: Wasserstein distance >= 0.1 for
  numeric, Jensen-Shannon >= 0.1 for categorical columns; K-S / chi-square p < 0.05 below),
  dataset drift when at least half of the columns drift.
* NannyML 0.13: ``UnivariateDriftCalculator`` with KS and chi2 and the default chunker, which
  splits the reference (and the analysed data) into 10 chunks. KS alerts when a chunk's D
  exceeds the mean + 3 standard deviations of D over the 10 reference chunks; chi2 when a
  chunk's p-value is below 0.05. With a single reference chunk (as this script did before)
  that standard deviation is 0 and every D > 0 alerts. Reported per column: how many of the
  analysed chunks alert (each chunk is its own uncorrected test, so same-population columns
  alert in some chunks by chance).
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


EVIDENTLY_CONFIG = (
    "DataDriftPreset() defaults: automatic per-column test (>1,000 reference "
    "rows: Wasserstein >= 0.1 numeric, Jensen-Shannon >= 0.1 categorical), "
    "drift_share=0.5"
)
NANNYML_CONFIG = (
    "UnivariateDriftCalculator(continuous_methods=['kolmogorov_smirnov'], "
    "categorical_methods=['chi2']), default chunker: 10 chunks per side; KS alert "
    "when D > mean + 3 sd of the reference chunks' D, chi2 alert when p < 0.05; "
    "flagged = alerting analysed chunks per column"
)


def evidently_check(ref, cur):
    from evidently import Report
    from evidently.presets import DataDriftPreset

    return Report([DataDriftPreset()]).run(current_data=cur, reference_data=ref)


def evidently_drifted(snapshot) -> list[str]:
    """Columns whose ValueDrift metric crosses its threshold (p-value tests: below it)."""
    drifted = []
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if not str(config.get("type", "")).endswith("ValueDrift"):
            continue
        value, threshold = float(metric["value"]), float(config["threshold"])
        is_pvalue = "p_value" in str(config.get("method", ""))
        if (value < threshold) if is_pvalue else (value >= threshold):
            drifted.append(config["column"])
    return drifted


def nannyml_check(ref, cur, numeric, categorical):
    import nannyml as nml

    calc = nml.UnivariateDriftCalculator(
        column_names=numeric + categorical,
        continuous_methods=["kolmogorov_smirnov"],
        categorical_methods=["chi2"],
    )
    calc.fit(ref)
    return calc.calculate(cur)


def nannyml_drifted(result) -> dict[str, str]:
    """Alerting analysed chunks per column that alerts at all, e.g. {"carat": "10/10"}."""
    frame = result.filter(period="analysis").to_df()
    alerts = frame.xs("alert", axis=1, level=2)
    counts = {col: int(alerts[(col, method)].sum()) for col, method in alerts.columns}
    return {col: f"{k}/{len(alerts)}" for col, k in counts.items() if k}


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
    out = {"evidently_config": EVIDENTLY_CONFIG, "nannyml_config": NANNYML_CONFIG}
    checks = (
        ("evidently", lambda: evidently_check(ref, cur), evidently_drifted),
        ("nannyml", lambda: nannyml_check(ref, cur, numeric, categorical), nannyml_drifted),
    )
    for name, fn, verdict in checks:
        try:
            out[name] = median_time(fn, args.repeat)
            out[name + "_drifted"] = verdict(fn())
        except Exception as exc:  # report why a tool could not run, keep the other
            out[name] = None
            out[name + "_error"] = f"{type(exc).__name__}: {exc}"[:300]
    print(json.dumps(out))


if __name__ == "__main__":
    main()

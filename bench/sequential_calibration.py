"""Calibration of decide_sequential under peeking, next to the fixed-horizon decide.

Prints one table (false promotion of equal models over 20 looks, sequential vs the
fixed-horizon ``decide`` at the same looks; simultaneous coverage; power and units to a
decision for a 10% better MAE) and the time of one decide_sequential call on 1,000,000
rows per arm with unit ids, next to its peers in the same run.

    .venv/bin/python bench/sequential_calibration.py            # ~3-5 min on 2 cores
    .venv/bin/python bench/sequential_calibration.py --reps 500 --decide-reps 200   # quick
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import pandas as pd

from dethrone.abtest import decide, decide_sequential
from dethrone.abtest.confseq import mean_cs, mixture_rho2
from dethrone.abtest.sequential_sim import (
    first_look,
    fixed_horizon_n,
    look_stats,
    sequential_cs,
    welch_pvalue,
)
from dethrone.abtest.sequential_srm import srm_log_bayes_factor

ALPHA, MIN_UNITS = 0.05, 200
LOOKS = np.arange(1, 21) * 250


def _fixed_decide_rate(x_a, x_b, looks, welch, n_exp: int) -> float:
    """Share of the first ``n_exp`` experiments that decide() promotes at some look.

    decide() can only promote where its Welch test is significant, so only those looks
    are run, in order, until one promotes (exactly decide() at every look).
    """
    promoted = 0
    for r in range(n_exp):
        for k in np.flatnonzero(welch[r]):
            m = looks[k]
            if decide(
                x_a[r, :m], x_b[r, :m], expected_share_a=0.5, n_boot=0, random_state=r
            ).promote:
                promoted += 1
                break
    return promoted / n_exp


def calibration_rows(reps: int, decide_reps: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    aa_a = rng.lognormal(0, 1.5, (reps, LOOKS[-1]))
    aa_b = rng.lognormal(0, 1.5, (reps, LOOKS[-1]))
    sa, sb = look_stats(aa_a, LOOKS), look_stats(aa_b, LOOKS)
    welch = welch_pvalue(sa, sb) < ALPHA
    fixed = _fixed_decide_rate(aa_a, aa_b, LOOKS, welch, min(decide_reps, reps))
    pw_a = rng.lognormal(0, 1, (reps, LOOKS[-1]))
    pw_b = 0.9 * rng.lognormal(0, 1, (reps, LOOKS[-1]))
    delta = 0.1 * math.exp(0.5)
    pa, pb = look_stats(pw_a, LOOKS), look_stats(pw_b, LOOKS)
    for tuning_n in (2000, 5000, 10000):
        _, low, high, _ = sequential_cs(sa, sb, alpha=ALPHA, tuning_n=tuning_n)
        _, plow, phigh, _ = sequential_cs(pa, pb, alpha=ALPHA, tuning_n=tuning_n)
        promote = plow > 0
        first = first_look(promote)
        rows.append(
            {
                "tuning_n": tuning_n,
                "fp_seq": (low > 0).any(axis=1).mean(),
                "fp_welch": welch.any(axis=1).mean(),
                "fp_decide": fixed,
                "coverage": ((low <= 0) & (high >= 0)).all(axis=1).mean(),
                "coverage_h1": ((plow <= delta) & (phigh >= delta)).all(axis=1).mean(),
                "power": promote.any(axis=1).mean(),
                "median_units": float(np.median(LOOKS[first[first >= 0]])),
                "mean_units": float(np.where(first >= 0, LOOKS[first], LOOKS[-1]).mean()),
            }
        )
    return rows


def extra_rows(reps: int, seed: int) -> dict[str, float]:
    """Clustering, SRM and paired scenarios (tuning_n 5000)."""
    rng = np.random.default_rng(seed + 1)
    out: dict[str, float] = {}
    looks = np.arange(1, 21) * 50
    ok = looks >= MIN_UNITS
    a = np.exp(rng.normal(0, 1, (reps, 1000, 1)) + 0.5 * rng.normal(0, 1, (reps, 1000, 5)))
    b = np.exp(rng.normal(0, 1, (reps, 1000, 1)) + 0.5 * rng.normal(0, 1, (reps, 1000, 5)))
    _, lu, _, _ = sequential_cs(
        look_stats(a.mean(2), looks), look_stats(b.mean(2), looks), alpha=ALPHA, tuning_n=5000
    )
    _, lr, _, _ = sequential_cs(
        look_stats(a.reshape(reps, -1), looks * 5),
        look_stats(b.reshape(reps, -1), looks * 5),
        alpha=ALPHA,
        tuning_n=5000,
    )
    out["cluster_per_unit"] = (lu[:, ok] > 0).any(axis=1).mean()
    out["cluster_per_row"] = (lr[:, ok] > 0).any(axis=1).mean()
    del a, b
    totals = np.arange(1, 21) * 1000
    for share in (0.52, 0.50):
        n_a = rng.binomial(1000, share, (reps, 20)).cumsum(axis=1)
        flag = srm_log_bayes_factor(n_a, totals - n_a, 0.5) >= math.log(1000)
        out[f"srm_{share:.2f}"] = flag.any(axis=1).mean()
    z = rng.normal(size=(reps, looks[-1]))
    d = np.exp(z) - 0.9 * np.exp(0.9 * z + math.sqrt(0.19) * rng.normal(size=z.shape))
    _, low, _, _ = mean_cs(*look_stats(d, looks), alpha=ALPHA, rho2=mixture_rho2(5000))
    promote = (low > 0) & ok
    first = first_look(promote)
    out["paired_power"] = promote.any(axis=1).mean()
    out["paired_median"] = float(np.median(looks[first[first >= 0]]))
    return out


def _best_of(fn, repeat: int = 3) -> float:
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def timing(rows: int = 1_000_000, rows_per_unit: int = 5) -> dict[str, float]:
    rng = np.random.default_rng(0)
    a, b = rng.lognormal(0, 1, rows), 0.99 * rng.lognormal(0, 1, rows)
    ua = rng.permutation(np.repeat(np.arange(rows // rows_per_unit), rows_per_unit))
    ub = ua + rows

    def pandas_means() -> None:  # the group-by alone, as a caller would write it
        pd.Series(a).groupby(ua).mean()
        pd.Series(b).groupby(ub).mean()

    return {
        "sequential_units": _best_of(
            lambda: decide_sequential(a, b, expected_share_a=0.5, units_a=ua, units_b=ub)
        ),
        "sequential_rows": _best_of(lambda: decide_sequential(a, b, expected_share_a=0.5)),
        "pandas_groupby": _best_of(pandas_means),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=4000, help="experiments per scenario")
    parser.add_argument(
        "--decide-reps",
        type=int,
        default=1000,
        help="A/A experiments run through the fixed-horizon decide()",
    )
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args()
    t0 = time.perf_counter()
    rows = calibration_rows(args.reps, args.decide_reps, args.seed)
    var = (math.e - 1) * math.e
    n_fixed = fixed_horizon_n(var, 0.81 * var, 0.1 * math.exp(0.5), alpha=ALPHA)
    print(
        f"{args.reps} experiments per scenario, 20 looks at 250..5000 units per arm, "
        f"alpha {ALPHA}; A/A: lognormal(0, 1.5) losses; power: lognormal(0, 1) errors, "
        "challenger 10% lower MAE\n"
    )
    print(
        "| looks | alpha | tuning_n | false promotion: sequential | fixed-horizon decide | "
        "Welch alone | coverage A/A | coverage 10% | power | median units/arm at "
        "promotion | mean units/arm used |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| 20 | {ALPHA} | {r['tuning_n']} | {r['fp_seq']:.3f} | {r['fp_decide']:.3f} | "
            f"{r['fp_welch']:.3f} | {r['coverage']:.3f} | {r['coverage_h1']:.3f} | "
            f"{r['power']:.3f} | {r['median_units']:.0f} | {r['mean_units']:.0f} |"
        )
    print(f"\nfixed-horizon n per arm for 80% power (one-sided z, alpha 0.05): {n_fixed:.0f}")
    x = extra_rows(args.reps, args.seed)
    print(
        f"clustered A/A (5 rows/unit, unit random effect): per-unit analysis "
        f"{x['cluster_per_unit']:.3f}, per-row analysis {x['cluster_per_row']:.3f}"
    )
    print(
        f"sequential SRM over 20 looks to 20,000 units: 52/48 flagged {x['srm_0.52']:.3f}, "
        f"50/50 flagged {x['srm_0.50']:.3f}"
    )
    print(
        f"paired (shadow, log-errors correlated 0.9): power {x['paired_power']:.3f} within "
        f"1000 pairs, median pairs at promotion {x['paired_median']:.0f}"
    )
    print(f"simulation time {time.perf_counter() - t0:.0f} s\n")
    t = timing()
    print("one call, 1,000,000 rows per arm (200,000 units per arm), best of 3:")
    print(f"  decide_sequential with units   {t['sequential_units']:.3f} s")
    print(
        f"  decide_sequential per row      {t['sequential_rows']:.3f} s "
        f"(with units: x{t['sequential_units'] / t['sequential_rows']:.1f})"
    )
    print(
        f"  pandas groupby().mean() of both arms alone  {t['pandas_groupby']:.3f} s "
        f"(the call costs x{t['sequential_units'] / t['pandas_groupby']:.2f} of it)"
    )


if __name__ == "__main__":
    main()

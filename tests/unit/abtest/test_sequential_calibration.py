"""Error rates of the Gaussian CS (decide_sequential(test="gaussian")) under peeking (slow).

1,000 experiments per scenario, 20 looks each. The simulations evaluate the same formulas
as decide_sequential (dethrone.abtest.confseq) on all experiments at once; each scenario
also checks that decide_sequential itself gives the same answer on sampled looks.
bench/sequential_calibration.py prints the full table with more experiments.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

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

pytestmark = pytest.mark.slow

R, ALPHA, TUNING_N, MIN_UNITS = 1000, 0.05, 5000, 200
LOOKS = np.arange(1, 21) * 250  # units per arm at each of 20 looks
MC_LIMIT = ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / R)  # alpha + 3 Monte-Carlo SEs


def _check_against_decide(x_a, x_b, looks, low, high, rng, n_checks=5, **kwargs) -> None:
    """decide_sequential on sampled (experiment, look) pairs equals the vectorised CS."""
    for r, k in zip(
        rng.integers(0, x_a.shape[0], n_checks), rng.integers(0, looks.size, n_checks), strict=True
    ):
        m = looks[k]
        d = decide_sequential(
            x_a[r, :m],
            x_b[r, :m],
            expected_share_a=0.5,
            tuning_n=TUNING_N,
            test="gaussian",
            **kwargs,
        )
        assert (d.ci_low, d.ci_high) == pytest.approx((low[r, k], high[r, k]), rel=1e-9)


def test_aa_validity_under_peeking_and_fixed_horizon_inflation() -> None:
    rng = np.random.default_rng(11)
    # Heavy-tailed losses (lognormal sigma 1.5: skewness ~ 33), same law in both arms.
    x_a = rng.lognormal(0, 1.5, (R, LOOKS[-1]))
    x_b = rng.lognormal(0, 1.5, (R, LOOKS[-1]))
    sa, sb = look_stats(x_a, LOOKS), look_stats(x_b, LOOKS)
    _, low, high, _ = sequential_cs(sa, sb, alpha=ALPHA, tuning_n=TUNING_N)
    promoted = (low > 0).any(axis=1).mean()
    covered = ((low <= 0) & (high >= 0)).all(axis=1).mean()
    _check_against_decide(x_a, x_b, LOOKS, low, high, rng)

    # Today's fixed-horizon decide at the same looks. It promotes only when its Welch test
    # is significant, so it is run (seeded, no bootstrap) on the first such look of each
    # experiment: a lower bound of its ever-promoted rate.
    welch = welch_pvalue(sa, sb) < ALPHA
    first = first_look(welch)
    fixed = 0
    for r in np.flatnonzero(first >= 0):
        m = LOOKS[first[r]]
        fixed += decide(
            x_a[r, :m],
            x_b[r, :m],
            expected_share_a=0.5,
            n_boot=0,
            n_permutations=199,
            random_state=0,
        ).promote
    fixed_rate = fixed / R
    print(
        f"\nA/A, 20 looks: sequential promoted {promoted:.3f}, fixed-horizon decide >= "
        f"{fixed_rate:.3f} (Welch alone {welch.any(axis=1).mean():.3f}); "
        f"simultaneous coverage {covered:.3f}"
    )
    assert promoted <= MC_LIMIT
    assert covered >= 0.95
    assert fixed_rate >= 2.5 * ALPHA  # the inflation that the sequential test removes


def test_power_and_coverage_for_a_10_percent_better_mae() -> None:
    rng = np.random.default_rng(12)
    x_a = rng.lognormal(0, 1, (R, LOOKS[-1]))
    x_b = 0.9 * rng.lognormal(0, 1, (R, LOOKS[-1]))
    delta = 0.1 * math.exp(0.5)  # true MAE improvement
    sa, sb = look_stats(x_a, LOOKS), look_stats(x_b, LOOKS)
    _, low, high, _ = sequential_cs(sa, sb, alpha=ALPHA, tuning_n=TUNING_N)
    promote = low > 0
    power = promote.any(axis=1).mean()
    first = first_look(promote)
    median_units = float(np.median(LOOKS[first[first >= 0]]))
    var_a = (math.e - 1) * math.e  # lognormal(0, 1) variance
    n_fixed = fixed_horizon_n(var_a, 0.81 * var_a, delta, alpha=ALPHA)
    covered = ((low <= delta) & (high >= delta)).all(axis=1).mean()
    _check_against_decide(x_a, x_b, LOOKS, low, high, rng)
    print(
        f"\npower {power:.3f} within {LOOKS[-1]} units/arm, median units/arm at promotion "
        f"{median_units:.0f}, fixed-horizon n for 80% power {n_fixed:.0f}, "
        f"coverage {covered:.3f}"
    )
    assert power >= 0.80
    assert covered >= 0.95


def test_clustered_units_need_per_unit_analysis() -> None:
    rng = np.random.default_rng(13)
    rows, units = 5, 1000
    looks = np.arange(1, 21) * 50  # units per arm

    def arm() -> np.ndarray:  # (R, units, rows)
        effect = rng.normal(0, 1, (R, units, 1))  # per-unit random effect
        return np.exp(effect + 0.5 * rng.normal(0, 1, (R, units, rows)))

    a, b = arm(), arm()
    ok = looks >= MIN_UNITS  # the minimum-units gate
    _, low_u, _, _ = sequential_cs(
        look_stats(a.mean(axis=2), looks),
        look_stats(b.mean(axis=2), looks),
        alpha=ALPHA,
        tuning_n=TUNING_N,
    )
    per_unit = (low_u[:, ok] > 0).any(axis=1).mean()
    flat_a, flat_b = a.reshape(R, -1), b.reshape(R, -1)
    _, low_r, _, _ = sequential_cs(
        look_stats(flat_a, looks * rows),
        look_stats(flat_b, looks * rows),
        alpha=ALPHA,
        tuning_n=TUNING_N,
    )
    per_row = (low_r[:, ok] > 0).any(axis=1).mean()
    ids = np.repeat(np.arange(units), rows)
    m = looks[-1] * rows
    d = decide_sequential(
        flat_a[0, :m],
        flat_b[0, :m],
        expected_share_a=0.5,
        tuning_n=TUNING_N,
        units_a=ids[:m],
        units_b=ids[:m] + units,
        test="gaussian",
    )
    assert d.ci_low == pytest.approx(low_u[0, -1], rel=1e-9)
    print(f"\nclustered A/A, 20 looks: per-unit promoted {per_unit:.3f}, per-row {per_row:.3f}")
    assert per_unit <= MC_LIMIT
    assert per_row > MC_LIMIT


@pytest.mark.parametrize(("share", "bound"), [(0.52, 0.90), (0.50, 0.01)])
def test_sequential_srm(share: float, bound: float) -> None:
    rng = np.random.default_rng(14)
    step = 1000
    totals = np.arange(1, 21) * step  # units at each look
    n_a = rng.binomial(step, share, (R, 20)).cumsum(axis=1)
    flagged = srm_log_bayes_factor(n_a, totals - n_a, 0.5) >= math.log(1 / 0.001)
    rate = flagged.any(axis=1).mean()
    print(f"\nsplit {share:.2f}: SRM flagged by 20,000 units in {rate:.3f}")
    if share == 0.5:
        assert rate <= bound
        return
    assert rate >= bound
    r = int(np.argmax(flagged[:, -1]))  # a flagged experiment
    losses = np.ones(int(totals[-1]))
    d = decide_sequential(losses[: n_a[r, -1]], losses[n_a[r, -1] :], expected_share_a=0.5)
    assert d.outcome == "inconclusive" and d.srm.mismatch


def test_paired_reaches_the_power_with_far_fewer_units() -> None:
    rng = np.random.default_rng(15)
    looks = np.arange(1, 21) * 50  # pairs at each look
    z = rng.normal(size=(R, looks[-1]))
    # Both models err on the same rows (log-errors correlated 0.9); challenger 10% better.
    champ = np.exp(z)
    chall = 0.9 * np.exp(0.9 * z + math.sqrt(1 - 0.81) * rng.normal(size=z.shape))
    mean, var, n = look_stats(champ - chall, looks)
    _, low, _, _ = mean_cs(mean, var, n, alpha=ALPHA, rho2=mixture_rho2(TUNING_N, ALPHA))
    promote = (low > 0) & (looks >= MIN_UNITS)
    power = promote.any(axis=1).mean()
    first = first_look(promote)
    median_pairs = float(np.median(looks[first[first >= 0]]))
    check = decide_sequential(
        [],
        [],
        expected_share_a=0.5,
        paired=(champ[0], chall[0]),
        tuning_n=TUNING_N,
        test="gaussian",
    )
    assert check.ci_low == pytest.approx(low[0, -1], rel=1e-9)
    # The same units analysed unpaired (challenger rows of another experiment: independent).
    _, low_u, _, _ = sequential_cs(
        look_stats(champ, looks),
        look_stats(np.roll(chall, 1, axis=0), looks),
        alpha=ALPHA,
        tuning_n=TUNING_N,
    )
    unpaired_power = ((low_u > 0) & (looks >= MIN_UNITS)).any(axis=1).mean()
    print(
        f"\npaired: power {power:.3f} within {looks[-1]} pairs (unpaired with as many "
        f"units per arm: {unpaired_power:.3f}), median pairs at promotion {median_pairs:.0f}"
    )
    assert power >= 0.80  # on a fifth of the unpaired test's 5,000 units
    assert unpaired_power < 0.5

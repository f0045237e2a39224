"""decide_sequential, the confidence sequence and the anytime-valid SRM test (fast tests)."""

from __future__ import annotations

import doctest
import json
import math

import numpy as np
import pytest
from scipy import special

from dethrone.abtest import (
    SequentialDecision,
    confseq,
    decide_sequential,
    sequential,
    sequential_sim,
    sequential_srm,
    sequential_srm_test,
)
from dethrone.abtest.confseq import (
    mean_cs,
    mean_difference_cs,
    mixture_pvalue,
    mixture_radius,
    mixture_rho2,
    unit_means,
)
from dethrone.settings import Settings


def _radius_published(n: float, sigma2: float, alpha: float, tuning_n: float) -> float:
    """Waudby-Smith et al. (2024) eq. 9 with rho from eq. 161, written out independently."""
    rho2 = (-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / tuning_n
    return math.sqrt(sigma2) * math.sqrt(
        2 * (n * rho2 + 1) / (n**2 * rho2) * math.log(math.sqrt(n * rho2 + 1) / alpha)
    )


@pytest.fixture
def arms() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    return rng.lognormal(0, 1, 3000), 0.8 * rng.lognormal(0, 1, 3000)


@pytest.mark.parametrize("module", [confseq, sequential, sequential_srm, sequential_sim])
def test_docstring_examples_run(module) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize(
    ("n", "sigma2", "alpha", "tuning_n"),
    [(5000, 4.0, 0.05, 5000), (137, 0.3, 0.01, 10000), (10**6, 2.5, 0.1, 5000)],
)
def test_radius_equals_published_formula(n, sigma2, alpha, tuning_n) -> None:
    got = float(mixture_radius(n, sigma2, alpha=alpha, rho2=mixture_rho2(tuning_n, alpha)))
    assert got == pytest.approx(_radius_published(n, sigma2, alpha, tuning_n), abs=1e-12, rel=1e-12)


def test_worked_example_two_arms() -> None:
    # Arm A: n=2500, mean 1.0, s^2 4.0; arm B: n=2500, mean 0.8, s^2 4.0. Then
    # N = 5000, sigma^2 = N (4/2500 + 4/2500) = 16, rho^2 = 7.936157/5000,
    # radius = 4 * sqrt(4.50401e-4 * 4.090786) = 0.171697
    est, low, high, _ = mean_difference_cs(
        1.0, 4.0, 2500, 0.8, 4.0, 2500, alpha=0.05, rho2=mixture_rho2(5000, 0.05)
    )
    r = _radius_published(5000, 16.0, 0.05, 5000)
    assert float(high - est) == pytest.approx(r, abs=1e-12)
    assert float(est - low) == pytest.approx(r, abs=1e-12)
    assert r == pytest.approx(0.171697, abs=1e-6)


def test_pvalue_is_below_alpha_exactly_when_null_leaves_the_interval() -> None:
    rho2 = mixture_rho2(5000, 0.05)
    est = np.linspace(-0.3, 0.3, 601)
    _, low, high, p = mean_cs(est, 4.0, 4000, alpha=0.05, rho2=rho2)
    outside = (low > 0) | (high < 0)
    assert np.array_equal(p < 0.05, outside)
    # At the boundary the p-value is alpha itself.
    r = float(mixture_radius(4000, 4.0, alpha=0.05, rho2=rho2))
    assert float(mixture_pvalue(r, 4000, 4.0, rho2=rho2)) == pytest.approx(0.05, rel=1e-10)


def test_zero_variance_pvalue_limits() -> None:
    rho2 = mixture_rho2(100)
    assert float(mixture_pvalue(0.0, 50, 0.0, rho2=rho2)) == 1.0
    assert float(mixture_pvalue(0.5, 50, 0.0, rho2=rho2)) == 0.0


def test_matches_gbstats_sequential_test(arms) -> None:
    tests = pytest.importorskip("gbstats.frequentist.tests")
    stats = pytest.importorskip("gbstats.models.statistics")
    a, b = arms
    b = b[:2100]
    for margin in (0.0, 0.1):
        ours = decide_sequential(
            a,
            b,
            expected_share_a=0.5,
            margin=margin,
            tuning_n=5000,
            settings=Settings(srm_pvalue_threshold=1e-300),
            test="gaussian",
        )
        gb = tests.SequentialTwoSidedTTest(
            stats.SampleMeanStatistic(n=a.size, sum=a.sum(), sum_squares=(a * a).sum()),
            stats.SampleMeanStatistic(n=b.size, sum=b.sum(), sum_squares=(b * b).sum()),
            tests.SequentialConfig(
                alpha=0.05,
                sequential_tuning_parameter=5000,
                difference_type="absolute",
                test_value=-margin,
            ),
        )
        low, high = gb.confidence_interval
        # gbstats reports mean_b - mean_a; ours is the improvement mean_a - mean_b.
        assert ours.ci_low == pytest.approx(-high, rel=1e-9)
        assert ours.ci_high == pytest.approx(-low, rel=1e-9)
        assert ours.pvalue == pytest.approx(gb.p_value, rel=1e-9)


def test_promote_continue_keep(arms) -> None:
    a, b = arms
    assert decide_sequential(a, b, expected_share_a=0.5).outcome == "promote"
    assert decide_sequential(a[:300], b[:300], expected_share_a=0.5).outcome == "continue"
    # The challenger is the worse one: the interval lies below 0.
    kept = decide_sequential(b, a, expected_share_a=0.5)
    assert kept.outcome == "keep" and kept.ci_high < 0
    assert any("worse" in r for r in kept.reasons)


def test_keep_when_the_gain_cannot_reach_the_margin(arms) -> None:
    a, b = arms
    d = decide_sequential(a, b, expected_share_a=0.5, margin=2.0)
    assert d.outcome == "keep" and d.ci_high < 2.0 and d.margin == 2.0


def test_max_units_per_arm_turns_continue_into_keep(arms) -> None:
    a, b = arms
    assert (
        decide_sequential(a[:300], b[:300], expected_share_a=0.5, max_units_per_arm=300).outcome
        == "keep"
    )
    assert (
        decide_sequential(a[:300], b[:300], expected_share_a=0.5, max_units_per_arm=301).outcome
        == "continue"
    )


def test_too_few_units_is_inconclusive(arms) -> None:
    a, b = arms
    d = decide_sequential(a[:150], b[:150], expected_share_a=0.5)
    assert d.outcome == "inconclusive" and "fewer than the minimum of 200" in d.reasons[0]


def test_srm_makes_it_inconclusive(arms) -> None:
    a, b = arms
    d = decide_sequential(a, b[:2500], expected_share_a=0.5)
    assert d.outcome == "inconclusive" and d.srm.mismatch
    assert d.reasons[0].startswith("sample ratio mismatch (SRM)")


def test_per_unit_analysis_uses_unit_means() -> None:
    rng = np.random.default_rng(3)
    loss_a, loss_b = rng.lognormal(size=1500), rng.lognormal(size=1500)
    units_a = rng.integers(0, 300, 1500)
    units_b = rng.integers(0, 300, 1500).astype(str)
    d = decide_sequential(
        loss_a, loss_b, expected_share_a=0.5, units_a=units_a, units_b=units_b, test="gaussian"
    )
    ua, _ = unit_means(loss_a, units_a)
    ub, _ = unit_means(loss_b, units_b)
    _, low, high, p = mean_difference_cs(
        ua.mean(),
        ua.var(ddof=1),
        ua.size,
        ub.mean(),
        ub.var(ddof=1),
        ub.size,
        alpha=0.05,
        rho2=mixture_rho2(5000),
    )
    assert d.per_unit and (d.units_a, d.units_b) == (ua.size, ub.size)
    assert (d.rows_a, d.rows_b) == (1500, 1500)
    assert (d.ci_low, d.ci_high, d.pvalue) == pytest.approx((low, high, p), rel=1e-12)
    assert d.srm.n_a == ua.size  # the SRM test counts units, not rows


def test_paired_shadow_mode_without_arms() -> None:
    rng = np.random.default_rng(4)
    champ = rng.lognormal(size=800)
    chall = 0.9 * champ * rng.lognormal(0, 0.1, 800)
    d = decide_sequential([], [], expected_share_a=0.5, paired=(champ, chall), test="gaussian")
    diff = champ - chall
    _, low, high, _ = mean_cs(
        diff.mean(), diff.var(ddof=1), diff.size, alpha=0.05, rho2=mixture_rho2(5000)
    )
    assert d.method == "paired" and d.srm is None and d.pairs == 800
    assert (d.ci_low, d.ci_high) == pytest.approx((float(low), float(high)), rel=1e-12)
    assert d.outcome == "promote"
    json.dumps(d.to_dict())  # NaN arm means become None


def test_paired_per_unit() -> None:
    rng = np.random.default_rng(5)
    champ = rng.lognormal(size=1000)
    units = np.repeat(np.arange(250), 4)
    d = decide_sequential(
        [], [], expected_share_a=0.5, paired=(champ, champ * 0.95, units), test="gaussian"
    )
    assert d.pairs == 250 and d.per_unit
    assert d.estimate == pytest.approx(0.05 * champ.mean())
    # The betting CS (default) pays a nonasymptotic price of about log(2/alpha) * cap /
    # (0.5 * pairs): 250 pairs cannot show 5%, 2,500 can.
    d = decide_sequential([], [], expected_share_a=0.5, paired=(champ, champ * 0.95, units))
    assert d.pairs == 250 and d.per_unit and d.test == "betting" and d.outcome == "continue"
    champ = rng.lognormal(size=10_000)
    units = np.repeat(np.arange(2500), 4)
    d = decide_sequential([], [], expected_share_a=0.5, paired=(champ, champ * 0.95, units))
    assert d.pairs == 2500 and d.outcome == "promote" and d.loss_cap > 0


def test_guardrail_harm_keeps_the_champion(arms) -> None:
    a, b = arms
    harm_a, harm_b = np.full(3000, 1.0), np.full(3000, 1.5)
    harm_a[::2], harm_b[::2] = 1.1, 1.6
    d = decide_sequential(a, b, expected_share_a=0.5, guardrails={"latency": (harm_a, harm_b)})
    g = d.guardrails["latency"]
    assert g.failed and g.ci_low > g.tolerated and d.outcome == "keep"
    assert "guardrail(s) latency failed" in d.reasons[1]
    ok = decide_sequential(a, b, expected_share_a=0.5, guardrails={"latency": (harm_a, harm_a)})
    assert ok.outcome == "promote" and not ok.guardrails["latency"].failed


def test_to_dict_is_json_and_has_every_threshold(arms) -> None:
    a, b = arms
    d = decide_sequential(a, b, expected_share_a=0.5)
    out = json.loads(json.dumps(d.to_dict()))
    for key in (
        "outcome",
        "reasons",
        "ci_low",
        "ci_high",
        "pvalue",
        "alpha",
        "margin",
        "tuning_n",
        "rho2",
        "srm_threshold",
        "min_units_per_arm",
        "max_units_per_arm",
        "units_a",
        "rows_a",
        "srm",
        "guardrails",
        "expected_share_a",
    ):
        assert key in out
    assert isinstance(d, SequentialDecision)
    with pytest.raises(AttributeError):
        d.outcome = "keep"  # frozen


def test_settings_are_defaults_and_arguments_win(arms) -> None:
    a, b = arms
    s = Settings.from_env(
        {"SEQUENTIAL_TUNING_N": "1000", "AB_MAX_UNITS_PER_ARM": "300", "AB_ALPHA": "0.1"}
    )
    d = decide_sequential(a[:300], b[:300], expected_share_a=0.5, settings=s)
    assert (d.tuning_n, d.max_units_per_arm, d.alpha) == (1000, 300, 0.1)
    d = decide_sequential(
        a[:300], b[:300], expected_share_a=0.5, settings=s, tuning_n=2000, max_units_per_arm=0
    )
    assert (d.tuning_n, d.max_units_per_arm, d.outcome) == (2000, 0, "continue")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"loss_a": []}, "loss_a is empty"),
        ({"loss_b": [1.0, math.nan]}, "loss_b has 1 NaN"),
        ({"expected_share_a": 1.0}, "expected_share_a"),
        ({"alpha": 0.7}, "alpha"),
        ({"margin": math.inf}, "margin"),
        ({"tuning_n": 0}, "tuning_n"),
        ({"max_units_per_arm": -1}, "max_units_per_arm"),
        ({"units_a": [1, 2]}, "units_a and units_b"),
        ({"units_a": [1, 2], "units_b": [1, 2, 3, 4]}, "units_a must be a 1-D array"),
        ({"units_a": [1, 2, None, 4], "units_b": [1, 2, 3, 4]}, "units_a has missing"),
        ({"paired": ([1.0, 2.0], [1.0])}, "same length"),
        ({"paired": ([1.0],)}, "paired must be"),
        ({"guardrails": {"g": ([1.0],)}}, "guardrail 'g'"),
        (
            {"guardrails": {"g": ([1.0], [2.0])}, "units_a": [1, 2, 3, 4], "units_b": [1, 2, 3, 4]},
            "one value per loss row",
        ),
    ],
)
def test_invalid_input_names_the_argument(kwargs, message) -> None:
    args = {"loss_a": [1.0, 2.0, 3.0, 4.0], "loss_b": [1.0, 2.0, 3.0, 4.0], "expected_share_a": 0.5}
    args.update(kwargs)
    loss_a, loss_b = args.pop("loss_a"), args.pop("loss_b")
    with pytest.raises(ValueError, match=message):
        decide_sequential(loss_a, loss_b, **args)


def test_sequential_srm_equals_beta_binomial_bayes_factor() -> None:
    n_a, n_b, p, k = 5230, 4770, 0.5, 1000.0
    log_bf = (
        special.betaln(k * p + n_a, k * (1 - p) + n_b)
        - special.betaln(k * p, k * (1 - p))
        - n_a * math.log(p)
        - n_b * math.log(1 - p)
    )
    r = sequential_srm_test(n_a, n_b, p)
    assert r.log_bayes_factor == pytest.approx(log_bf, rel=1e-12)
    assert r.pvalue == pytest.approx(min(1.0, math.exp(-log_bf)), rel=1e-12)
    assert r.mismatch and "sample ratio mismatch" in r.reason()


@pytest.mark.parametrize(("n_a", "n_b", "share"), [(-1, 5, 0.5), (1, 1, 0.0), (0, 0, 0.5)])
def test_sequential_srm_rejects_bad_counts(n_a, n_b, share) -> None:
    with pytest.raises(ValueError):
        sequential_srm_test(n_a, n_b, share)

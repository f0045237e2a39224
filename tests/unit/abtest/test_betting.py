"""The betting CS (abtest.betting), its use in decide_sequential, and live_checks."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest

from dethrone.abtest import betting, decide_sequential, live_checks
from dethrone.abtest.betting import betting_difference_cs, eb_path, epoch_caps
from dethrone.abtest.live_checks import proportion_difference


@pytest.mark.parametrize("module", [betting, live_checks])
def test_docstring_examples_run(module) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def test_eb_path_equals_the_published_predictable_plug_in_eb_cs() -> None:
    """Waudby-Smith & Ramdas (2024) Thm 2 for x in [0, 1], written out independently:
    centre mu_hat_{t-1}, scale 1, lambda = min(1/2, sqrt(2 log(2/a) / (n* sigma2_{t-1})))."""
    rng = np.random.default_rng(0)
    x = rng.beta(2, 5, 500)
    alpha, n_star = 0.05, 500
    t = np.arange(1, 501)
    mu_prev = np.concatenate([[0.5], (0.5 + np.cumsum(x))[:-1] / t[1:]])  # prior weight 1
    xi = x - mu_prev
    var_prev = np.concatenate([[0.25], (0.25 + np.cumsum(xi * xi))[:-1] / t[1:]])
    lam = np.minimum(0.5, np.sqrt(2 * math.log(2 / alpha) / (np.maximum(t, n_star) * var_prev)))
    psi = xi * xi * (-np.log(1 - lam) - lam)
    low = (np.sum(lam * x) - math.log(2 / alpha) - psi.sum()) / lam.sum()
    high = (np.sum(lam * x) + math.log(2 / alpha) + psi.sum()) / lam.sum()
    path = eb_path(x[None], mu_prev[None], np.ones((1, 500)), [500], alpha=alpha, tuning_n=n_star)
    assert (path.low[0, 0], path.high[0, 0]) == pytest.approx((low, high), rel=1e-12)
    assert float(path.pvalue(low)[0, 0]) == pytest.approx(alpha, rel=1e-9)


def test_difference_cs_needs_the_caps_to_be_predictable() -> None:
    caps = epoch_caps(np.arange(1.0, 129.0)[None], 0.5)
    assert (caps[0, :32] == 0).all() and caps[0, 32] == 17.0 and caps[0, 64] == 33.0


@pytest.mark.slow
@pytest.mark.parametrize(
    ("law", "share_b"),
    [("lognormal2", 0.05), ("lognormal2", 0.9), ("bern", 0.1), ("bern", 0.95)],
)
def test_equal_models_false_decisions_at_most_alpha(law, share_b) -> None:
    """400 A/A experiments, 30 looks to 20,000 units; bound alpha/2 per side + 3 MC SEs."""
    rng = np.random.default_rng(21)
    n, r = 20_000, 400

    def gen(size):
        if law == "bern":
            return (rng.random(size) < 0.02).astype(float)
        return rng.lognormal(0, 2, size)

    z = rng.random((r, n)) < share_b
    y = gen((r, n))
    looks = np.linspace(n / 30, n, 30).astype(int)
    cs = betting_difference_cs(y, z, share_b, looks, caps=epoch_caps(y, 0.995, source=~z))
    limit = 0.05 + 3 * math.sqrt(0.05 * 0.95 / r)
    assert (cs.low > 0).any(1).mean() <= limit
    assert (cs.high < 0).any(1).mean() <= limit


@pytest.mark.slow
def test_power_10_percent_lower_mae_at_50_50_within_6000_units_per_arm() -> None:
    rng = np.random.default_rng(22)
    n, r = 12_000, 300
    z = rng.random((r, n)) < 0.5
    y = rng.lognormal(0, 1, (r, n)) * np.where(z, 0.9, 1.0)
    caps = np.quantile(rng.lognormal(0, 1, (r, 5000)), 0.995, axis=1)[:, None]
    looks = np.linspace(n / 30, n, 30).astype(int)
    cs = betting_difference_cs(y, z, 0.5, looks, caps=caps)
    assert (cs.low > 0).any(1).mean() >= 0.85  # measured ~0.95 (bench)


def test_decide_sequential_betting_is_the_default_and_valid_on_rare_events() -> None:
    rng = np.random.default_rng(3)
    a = (rng.random(9000) < 0.02).astype(float)
    b = (rng.random(1000) < 0.02).astype(float)
    d = decide_sequential(a, b, expected_share_a=0.9)
    assert d.test == "betting" and d.outcome == "continue" and d.ci_low < 0 < d.ci_high
    g = decide_sequential(a, b, expected_share_a=0.9, test="gaussian")
    assert g.test == "gaussian" and (g.ci_high - g.ci_low) < (d.ci_high - d.ci_low)


def test_decide_sequential_fixed_loss_cap_is_used() -> None:
    rng = np.random.default_rng(4)
    a, b = rng.lognormal(0, 1, 3000), 0.7 * rng.lognormal(0, 1, 3000)
    d = decide_sequential(a, b, expected_share_a=0.5, loss_cap=5.0)
    assert d.loss_cap == 5.0 and d.outcome == "promote"
    with pytest.raises(ValueError, match="loss_cap"):
        decide_sequential(a, b, expected_share_a=0.5, loss_cap=-1.0)
    with pytest.raises(ValueError, match="arrival_a"):
        decide_sequential(a, b, expected_share_a=0.5, arrival_a=[1.0], arrival_b=None)


def test_proportion_difference_harm_and_difference() -> None:
    rng = np.random.default_rng(5)
    z = rng.random(20000) < 0.1
    same = rng.random(20000) < 0.02
    t = proportion_difference(same, z, 0.1, name="error rate", margin=0.005)
    assert not t.harm and not t.differs and t.low < 0 < t.high
    worse = rng.random(20000) < np.where(z, 0.06, 0.02)
    assert proportion_difference(worse, z, 0.1, name="error rate", margin=0.005).harm
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        proportion_difference([2.0, 0.0], [True, False], 0.5, name="x")


@pytest.mark.parametrize("block", [1, 7, 64, 1 << 30])
def test_the_sequence_a_block_at_a_time_is_the_same_doubles(monkeypatch, block):
    """Blocks carry their running sums exactly: any block size gives the same doubles as
    one block of every unit (the plain cumulative sums), at every look and experiment."""
    from dethrone.abtest import betting

    rng = np.random.default_rng(block)
    y = rng.lognormal(0, 1, (3, 500))
    z = rng.random((3, 500)) < 0.3
    caps = epoch_caps(y, 0.99, source=~z)
    looks = [1, 31, 32, 250, 499, 500]
    monkeypatch.setattr(betting, "BLOCK", 1 << 30)
    whole = betting_difference_cs(y, z, 0.3, looks, caps=caps)
    monkeypatch.setattr(betting, "BLOCK", block)
    parts = betting_difference_cs(y, z, 0.3, looks, caps=caps)
    for field in ("weighted", "weight", "penalty"):
        assert np.array_equal(getattr(whole, field), getattr(parts, field))

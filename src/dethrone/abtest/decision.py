"""The fixed-horizon champion/challenger decision: promote, keep, or inconclusive."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from dethrone.abtest.bootstrap import make_rng
from dethrone.abtest.compare import ComparisonResult, as_losses, compare_paired, compare_unpaired
from dethrone.abtest.decision_result import ABDecision, Outcome
from dethrone.abtest.guardrails import GuardrailResult, guardrail_test
from dethrone.abtest.permutation import PermutationResult, permutation_welch
from dethrone.abtest.srm import SRMResult, srm_test
from dethrone.settings import Settings

__all__ = ["ABDecision", "decide"]

_Pair = tuple[np.ndarray, np.ndarray]


def decide(
    loss_a: ArrayLike,
    loss_b: ArrayLike,
    *,
    expected_share_a: float,
    alpha: float | None = None,
    margin: float | None = None,
    min_rows_per_arm: int | None = None,
    guardrails: Mapping[str, tuple[ArrayLike, ArrayLike]] | None = None,
    paired: tuple[ArrayLike, ArrayLike] | None = None,
    srm_threshold: float | None = None,
    guardrail_margin: float | None = None,
    n_boot: int | None = None,
    n_permutations: int = 999,
    random_state: int | np.random.Generator | None = None,
    settings: Settings | None = None,
) -> ABDecision:
    """Decide whether the challenger (arm B) replaces the champion (arm A).

    Rules, in order:

    1. **Invalid input** raises ``ValueError``: empty or non-1-D losses, NaN or inf,
       paired arrays of different lengths, ``expected_share_a`` outside (0, 1).
    2. **inconclusive** when the experiment cannot be trusted: the SRM chi-square
       p-value of the arm sizes against ``expected_share_a`` is below
       ``srm_threshold`` (sample ratio mismatch), or an arm (or the paired sample,
       or a guardrail's values) has fewer than ``min_rows_per_arm`` rows. The
       statistics are still computed and reported, but not acted on.
    3. **promote** when the one-sided Welch test shows the challenger's mean loss
       lower than the champion's by more than ``margin`` (p < alpha), AND the
       studentized permutation test of the same hypothesis agrees (p < alpha; see
       :func:`~dethrone.abtest.permutation.permutation_welch`), AND, if
       ``paired`` is given, the paired t-test is significant too (an
       intersection-union rule: each test has level alpha, so requiring all keeps
       false promotion <= alpha), AND no guardrail fails (a guardrail fails on
       significant evidence of worsening by more than ``guardrail_margin``, see
       :func:`~dethrone.abtest.guardrails.guardrail_test`).
    4. **keep** otherwise: a valid experiment in which the challenger was not shown
       better (or is significantly worse, or a guardrail failed). A valid but
       underpowered test is "keep", not "inconclusive": the champion stays until a
       challenger proves itself, and "inconclusive" is reserved for broken
       experiments that should be fixed and rerun. The reasons and the bootstrap CI
       say how large an improvement the data could not rule out.

    Parameters
    ----------
    loss_a, loss_b : array_like
        Per-row losses of the champion on arm A and the challenger on arm B (see
        :mod:`dethrone.abtest.losses`); smaller is better.
    expected_share_a : float
        Configured traffic share of arm A (the router's ``a``).
    alpha : float, optional
        Significance level (settings ``ab_alpha``, 0.05).
    margin : float, optional
        Required improvement of the mean loss, in loss units (``ab_margin``, 0).
    min_rows_per_arm : int, optional
        Minimum rows per arm, >= 2 (``ab_min_rows_per_arm``, 200).
    guardrails : mapping of str to (values_a, values_b), optional
        Secondary per-row metrics where larger is worse.
    paired : (loss_champion, loss_challenger), optional
        Both models' losses on the same held-out rows.
    srm_threshold : float, optional
        SRM p-value threshold (``srm_pvalue_threshold``, 0.001).
    guardrail_margin : float, optional
        Relative worsening tolerated on guardrails (``guardrail_margin``, 0.05).
    n_boot : int, optional
        Bootstrap resamples for the CIs (``ab_n_boot``, 2000); 0 skips them. The
        outcome does not depend on it.
    n_permutations : int, default 999
        Random re-splits of the permutation test.
    random_state : int or numpy.random.Generator, optional
        Seed of the bootstrap and the permutation test (``random_state``, 42). The
        same seed gives the same decision; a borderline permutation p-value (within
        about 0.01 of alpha for 999 re-splits) can flip with another seed.
    settings : Settings, optional
        Defaults for every option left as None; explicit arguments win. ``None``
        means ``Settings()``; pass ``Settings.from_env()`` to honour the environment.

    Returns
    -------
    ABDecision
        ``kind="fixed-horizon"``; the Welch test gives ``estimate``, ``ci_low``,
        ``ci_high`` and ``pvalue``.

    Notes
    -----
    Why two tests: losses are right-skewed, and with unequal arms Welch's t is
    anti-conservative when the challenger's arm is the smaller one (diamonds-model
    absolute errors, skewness 5.7, alpha 5%, 20,000 A/A runs: 7.5% false promotions
    at 4500/500, 8.6% at 1800/200). The permutation test is exact for two equally
    good models at any split (the pair measured 5.2% and 4.6% there, 4,000 runs).
    Keeping Welch in the rule costs little power (88.2% vs 88.6% at 2,500 lognormal
    rows per arm), never makes the decision laxer than Welch alone, and lets the
    O(n_permutations * rows) permutation test run only when Welch is significant.
    """
    s = settings if settings is not None else Settings()
    opts = _options(
        s,
        alpha=alpha,
        margin=margin,
        min_rows_per_arm=min_rows_per_arm,
        srm_threshold=srm_threshold,
        guardrail_margin=guardrail_margin,
        n_boot=n_boot,
        n_permutations=n_permutations,
    )
    data = _data(loss_a, loss_b, paired, guardrails)
    srm = srm_test(data.a.size, data.b.size, expected_share_a, threshold=opts.srm_threshold)
    rng, seed = make_rng(_pick(random_state, s.random_state))
    tests = _run_tests(data, srm, opts, rng)
    gates = _gates(data, srm, opts.min_rows)
    if gates:
        outcome: Outcome = "inconclusive"
        reasons = gates + [
            "the experiment is not valid, so neither model is preferred; fix the cause and rerun"
        ]
    else:
        outcome, reasons = _verdict(data, tests, opts.alpha)
    return _result(outcome, reasons, data, tests, opts, seed, float(expected_share_a))


@dataclass(frozen=True)
class _Options:
    """Every threshold of the decision, after applying settings."""

    alpha: float
    margin: float
    min_rows: int
    srm_threshold: float
    guardrail_margin: float
    n_boot: int
    n_permutations: int


@dataclass(frozen=True)
class _Data:
    """The validated inputs: both arms' losses, the paired sample, guardrail values."""

    a: np.ndarray
    b: np.ndarray
    pair: _Pair | None
    guardrails: dict[str, _Pair]


@dataclass(frozen=True)
class _Tests:
    """Every test the decision reads."""

    srm: SRMResult
    unpaired: ComparisonResult | None
    permutation: PermutationResult | None
    paired: ComparisonResult | None
    guardrails: dict[str, GuardrailResult]


def _pick(value: Any, default: Any) -> Any:
    return default if value is None else value


def _options(
    s: Settings,
    *,
    alpha: float | None,
    margin: float | None,
    min_rows_per_arm: int | None,
    srm_threshold: float | None,
    guardrail_margin: float | None,
    n_boot: int | None,
    n_permutations: int,
) -> _Options:
    """Thresholds: explicit arguments win over the settings ``s``; invalid counts raise."""
    min_rows = _pick(min_rows_per_arm, s.ab_min_rows_per_arm)
    if isinstance(min_rows, bool) or int(min_rows) != min_rows or min_rows < 2:
        raise ValueError(f"min_rows_per_arm must be an integer >= 2, got {min_rows}")
    if (
        isinstance(n_permutations, bool)
        or int(n_permutations) != n_permutations
        or n_permutations < 1
    ):
        raise ValueError(f"n_permutations must be a positive integer, got {n_permutations}")
    return _Options(
        alpha=float(_pick(alpha, s.ab_alpha)),
        margin=float(_pick(margin, s.ab_margin)),
        min_rows=int(min_rows),
        srm_threshold=float(_pick(srm_threshold, s.srm_pvalue_threshold)),
        guardrail_margin=float(_pick(guardrail_margin, s.guardrail_margin)),
        n_boot=int(_pick(n_boot, s.ab_n_boot)),
        n_permutations=int(n_permutations),
    )


def _data(
    loss_a: ArrayLike,
    loss_b: ArrayLike,
    paired: tuple[ArrayLike, ArrayLike] | None,
    guardrails: Mapping[str, tuple[ArrayLike, ArrayLike]] | None,
) -> _Data:
    """Validate every input array (ValueError naming the bad one)."""
    a, b = as_losses(loss_a, "loss_a", min_rows=1), as_losses(loss_b, "loss_b", min_rows=1)
    pair = None
    if paired is not None:
        if len(paired) != 2:
            raise ValueError("paired must be a pair (loss_champion, loss_challenger)")
        pair = (
            as_losses(paired[0], "paired champion losses", min_rows=1),
            as_losses(paired[1], "paired challenger losses", min_rows=1),
        )
        if pair[0].size != pair[1].size:
            raise ValueError(
                f"paired losses must have the same length, got {pair[0].size} and {pair[1].size}"
            )
    g_data: dict[str, _Pair] = {}
    for name, values in (guardrails or {}).items():
        if len(values) != 2:
            raise ValueError(f"guardrail {name!r} must be a pair (values_a, values_b)")
        g_data[str(name)] = (
            as_losses(values[0], f"guardrail {name!r} values_a", min_rows=1),
            as_losses(values[1], f"guardrail {name!r} values_b", min_rows=1),
        )
    return _Data(a=a, b=b, pair=pair, guardrails=g_data)


def _gates(data: _Data, srm: SRMResult, min_rows: int) -> list[str]:
    """Reasons the experiment cannot be trusted: SRM, or too few rows anywhere."""
    gates: list[str] = []
    if srm.mismatch:
        gates.append(srm.reason())
    for arm, n in (("A (champion)", data.a.size), ("B (challenger)", data.b.size)):
        if n < min_rows:
            gates.append(f"arm {arm} has {n} rows, fewer than min_rows_per_arm = {min_rows}")
    if data.pair is not None and data.pair[0].size < min_rows:
        gates.append(
            f"the paired sample has {data.pair[0].size} rows, fewer than "
            f"min_rows_per_arm = {min_rows}"
        )
    for name, (ga, gb) in data.guardrails.items():
        if min(ga.size, gb.size) < min_rows:
            gates.append(
                f"guardrail {name!r} has {ga.size}/{gb.size} rows, fewer than "
                f"min_rows_per_arm = {min_rows}"
            )
    return gates


def _run_tests(data: _Data, srm: SRMResult, opts: _Options, rng: np.random.Generator) -> _Tests:
    """Every test that has enough rows to run, whether or not the gates pass: an
    inconclusive decision still reports its statistics."""
    a, b, pair = data.a, data.b, data.pair
    # Its own stream, so the permutation p-value (and the outcome) does not move with n_boot.
    perm_rng = rng.spawn(1)[0]
    kw: dict[str, Any] = dict(
        alpha=opts.alpha, margin=opts.margin, n_boot=opts.n_boot, random_state=rng
    )
    unpaired = compare_unpaired(a, b, **kw) if min(a.size, b.size) >= 2 else None
    # Only a significant Welch test can lead to promotion, so only then is the
    # O(n_permutations * rows) permutation test worth its cost.
    perm = None
    if unpaired is not None and unpaired.significant:
        perm = permutation_welch(
            a,
            b,
            alpha=opts.alpha,
            margin=opts.margin,
            n_resamples=opts.n_permutations,
            random_state=perm_rng,
        )
    paired = compare_paired(*pair, **kw) if pair is not None and pair[0].size >= 2 else None
    guardrails = {
        name: guardrail_test(ga, gb, name=name, margin=opts.guardrail_margin, alpha=opts.alpha)
        for name, (ga, gb) in data.guardrails.items()
        if min(ga.size, gb.size) >= 2
    }
    return _Tests(
        srm=srm, unpaired=unpaired, permutation=perm, paired=paired, guardrails=guardrails
    )


def _verdict(data: _Data, tests: _Tests, alpha: float) -> tuple[Outcome, list[str]]:
    """Outcome of a valid experiment (rules 3-4 of decide) and its reasons."""
    unpaired, perm, paired = tests.unpaired, tests.permutation, tests.paired
    assert unpaired is not None  # the gates need >= 2 rows per arm
    better = unpaired.significant and perm is not None and perm.significant
    reasons = [tests.srm.reason(), _welch_reason(data, unpaired, perm, alpha)]
    paired_ok = paired is None or paired.significant
    if paired is not None:
        head = (
            "paired test confirms the improvement"
            if paired_ok
            else "paired test does not confirm the improvement"
        )
        reasons.append(f"{head} on {paired.n_a} shared rows: " + _summary(paired, "paired t-test"))
    reasons.extend(g.reason() for g in tests.guardrails.values())
    failed = [g.name for g in tests.guardrails.values() if g.failed]
    return ("promote" if better and paired_ok and not failed else "keep"), reasons


def _welch_reason(
    data: _Data, unpaired: ComparisonResult, perm: PermutationResult | None, alpha: float
) -> str:
    """The sentence on the main comparison: Welch and, when run, permutation."""
    welch = _summary(unpaired, "Welch test")
    if perm is not None and perm.significant:
        return (
            "challenger is significantly better by both the Welch and the "
            "permutation test: " + welch + "; " + _perm_summary(perm)
        )
    if perm is not None:
        return (
            "challenger is not significantly better: the Welch test is "
            "significant but the skewness-robust permutation test, which "
            "decides here, is not: " + welch + "; " + _perm_summary(perm)
        )
    # Not better: say whether the data show it worse, which matters to whoever reads it.
    worse = compare_unpaired(data.a, data.b, alpha=alpha, alternative="less", n_boot=0)
    verdict = (
        f"challenger is significantly worse (champion better, p = {worse.pvalue:.3g})"
        if worse.significant
        else "challenger is not significantly better"
    )
    return f"{verdict}: " + welch


def _result(
    outcome: Outcome,
    reasons: list[str],
    data: _Data,
    tests: _Tests,
    opts: _Options,
    seed: int | None,
    expected_share_a: float,
) -> ABDecision:
    """The decision, with the Welch test as its headline estimate, interval and p-value."""
    u = tests.unpaired
    mean_a, mean_b = (u.mean_a, u.mean_b) if u else (float(data.a.mean()), float(data.b.mean()))
    nan = float("nan")
    return ABDecision(
        outcome=outcome,
        reasons=tuple(reasons),
        kind="fixed-horizon",
        method="unpaired" if data.pair is None else "unpaired+paired",
        test="welch+permutation",
        estimate=u.diff if u else mean_a - mean_b,
        ci_low=nan if u is None or u.ci_low is None else u.ci_low,
        ci_high=nan if u is None or u.ci_high is None else u.ci_high,
        pvalue=u.pvalue if u else nan,
        mean_a=mean_a,
        mean_b=mean_b,
        relative_improvement=u.relative_improvement if u else nan,
        rows_a=int(data.a.size),
        rows_b=int(data.b.size),
        units_a=int(data.a.size),
        units_b=int(data.b.size),
        pairs=0 if data.pair is None else int(data.pair[0].size),
        srm=tests.srm,
        guardrails=tests.guardrails,
        unpaired=u,
        paired=tests.paired,
        permutation=tests.permutation,
        alpha=opts.alpha,
        margin=opts.margin,
        guardrail_margin=opts.guardrail_margin,
        srm_threshold=opts.srm_threshold,
        expected_share_a=expected_share_a,
        min_units_per_arm=opts.min_rows,
        n_boot=opts.n_boot,
        n_permutations=opts.n_permutations,
        random_state=seed,
    )


def _ci(r: ComparisonResult) -> str:
    if r.ci_low is None:
        return ""
    return (
        f"; {100 * r.ci_level:g}% {r.ci_method} bootstrap CI of the improvement "
        f"[{r.ci_low:.4g}, {r.ci_high:.4g}]"
    )


def _summary(r: ComparisonResult, label: str) -> str:
    return (
        f"{label}: mean loss {r.mean_a:.4g} (champion) vs {r.mean_b:.4g} (challenger), "
        f"improvement {r.diff:.4g} ({100 * r.relative_improvement:+.1f}%), "
        f"one-sided p = {r.pvalue:.3g} vs alpha = {r.alpha:g}"
        + (f" for a margin of {r.margin:g}" if r.margin else "")
        + _ci(r)
    )


def _perm_summary(r: PermutationResult) -> str:
    return (
        f"studentized permutation test: one-sided p = {r.pvalue:.3g} vs alpha = "
        f"{r.alpha:g} ({r.n_resamples} random re-splits of the pooled rows)"
    )

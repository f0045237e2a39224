"""The champion/challenger decision: promote, keep, or inconclusive, with reasons."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from dethrone.abtest.bootstrap import make_rng
from dethrone.abtest.compare import ComparisonResult, as_losses, compare_paired, compare_unpaired
from dethrone.abtest.guardrails import GuardrailResult, guardrail_test
from dethrone.abtest.permutation import PermutationResult, permutation_welch
from dethrone.abtest.srm import SRMResult, srm_reason, srm_test
from dethrone.settings import Settings

__all__ = ["ABDecision", "decide"]

Outcome = Literal["promote", "keep", "inconclusive"]


@dataclass(frozen=True)
class ABDecision:
    """Outcome of :func:`decide` with every statistic it used.

    Attributes
    ----------
    outcome : {"promote", "keep", "inconclusive"}
        What to do with the challenger.
    reasons : tuple of str
        Readable sentences, gates first, that justify ``outcome``.
    srm : SRMResult
        Sample-ratio-mismatch test of the arm sizes.
    unpaired : ComparisonResult or None
        One-sided Welch test on the arms (None if an arm has fewer than 2 rows).
    permutation : PermutationResult or None
        Studentized permutation test of the same hypothesis, robust to skewed losses;
        run only when the Welch test is significant (otherwise it cannot change the
        outcome), None when not run.
    paired : ComparisonResult or None
        Paired test on shared rows, when ``paired`` was given.
    guardrails : dict of str to GuardrailResult
        Harm test per guardrail metric.
    alpha, margin, guardrail_margin, srm_threshold : float
        Thresholds used (after applying settings).
    min_rows_per_arm, n_boot, n_permutations : int
        Gate, bootstrap size and permutation re-splits used.
    random_state : int or None
        Seed of the bootstrap and of the permutation test.
    expected_share_a : float
        Configured share of arm A.
    """

    outcome: Outcome
    reasons: tuple[str, ...]
    srm: SRMResult
    unpaired: ComparisonResult | None
    paired: ComparisonResult | None
    guardrails: dict[str, GuardrailResult] = field(default_factory=dict)
    permutation: PermutationResult | None = None
    alpha: float = 0.05
    margin: float = 0.0
    guardrail_margin: float = 0.05
    srm_threshold: float = 0.001
    min_rows_per_arm: int = 200
    n_boot: int = 2000
    n_permutations: int = 999
    random_state: int | None = None
    expected_share_a: float = 0.5

    @property
    def promote(self) -> bool:
        """True when the challenger should replace the champion."""
        return self.outcome == "promote"

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict of the outcome, reasons, thresholds and statistics."""
        return {
            "outcome": self.outcome,
            "reasons": list(self.reasons),
            "srm": self.srm.to_dict(),
            "unpaired": None if self.unpaired is None else self.unpaired.to_dict(),
            "paired": None if self.paired is None else self.paired.to_dict(),
            "permutation": None if self.permutation is None else self.permutation.to_dict(),
            "guardrails": {k: g.to_dict() for k, g in self.guardrails.items()},
            "alpha": self.alpha,
            "margin": self.margin,
            "guardrail_margin": self.guardrail_margin,
            "srm_threshold": self.srm_threshold,
            "min_rows_per_arm": self.min_rows_per_arm,
            "n_boot": self.n_boot,
            "n_permutations": self.n_permutations,
            "random_state": self.random_state,
            "expected_share_a": self.expected_share_a,
        }


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


def _pick(value: Any, default: Any) -> Any:
    return default if value is None else value


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
    alpha = float(_pick(alpha, s.ab_alpha))
    margin = float(_pick(margin, s.ab_margin))
    min_rows = _pick(min_rows_per_arm, s.ab_min_rows_per_arm)
    srm_threshold = float(_pick(srm_threshold, s.srm_pvalue_threshold))
    g_margin = float(_pick(guardrail_margin, s.guardrail_margin))
    n_boot = int(_pick(n_boot, s.ab_n_boot))
    if isinstance(min_rows, bool) or int(min_rows) != min_rows or min_rows < 2:
        raise ValueError(f"min_rows_per_arm must be an integer >= 2, got {min_rows}")
    min_rows = int(min_rows)
    if (
        isinstance(n_permutations, bool)
        or int(n_permutations) != n_permutations
        or n_permutations < 1
    ):
        raise ValueError(f"n_permutations must be a positive integer, got {n_permutations}")

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
    g_data: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, values in (guardrails or {}).items():
        if len(values) != 2:
            raise ValueError(f"guardrail {name!r} must be a pair (values_a, values_b)")
        g_data[str(name)] = (
            as_losses(values[0], f"guardrail {name!r} values_a", min_rows=1),
            as_losses(values[1], f"guardrail {name!r} values_b", min_rows=1),
        )
    srm = srm_test(a.size, b.size, expected_share_a, threshold=srm_threshold)
    rng, seed = make_rng(_pick(random_state, s.random_state))
    # Its own stream, so the permutation p-value (and the outcome) does not move with n_boot.
    perm_rng = rng.spawn(1)[0]

    gates: list[str] = []
    if srm.mismatch:
        gates.append(srm_reason(srm))
    for arm, n in (("A (champion)", a.size), ("B (challenger)", b.size)):
        if n < min_rows:
            gates.append(f"arm {arm} has {n} rows, fewer than min_rows_per_arm = {min_rows}")
    if pair is not None and pair[0].size < min_rows:
        gates.append(
            f"the paired sample has {pair[0].size} rows, fewer than min_rows_per_arm = {min_rows}"
        )
    for name, (ga, gb) in g_data.items():
        if min(ga.size, gb.size) < min_rows:
            gates.append(
                f"guardrail {name!r} has {ga.size}/{gb.size} rows, fewer than "
                f"min_rows_per_arm = {min_rows}"
            )

    opts: dict[str, Any] = dict(alpha=alpha, margin=margin, n_boot=n_boot, random_state=rng)
    unpaired = compare_unpaired(a, b, **opts) if min(a.size, b.size) >= 2 else None
    # Only a significant Welch test can lead to promotion, so only then is the
    # O(n_permutations * rows) permutation test worth its cost.
    perm = (
        permutation_welch(
            a, b, alpha=alpha, margin=margin, n_resamples=n_permutations, random_state=perm_rng
        )
        if unpaired is not None and unpaired.significant
        else None
    )
    paired_res = compare_paired(*pair, **opts) if pair is not None and pair[0].size >= 2 else None
    g_res = {
        name: guardrail_test(ga, gb, name=name, margin=g_margin, alpha=alpha)
        for name, (ga, gb) in g_data.items()
        if min(ga.size, gb.size) >= 2
    }

    reasons: list[str] = []
    if gates:
        outcome: Outcome = "inconclusive"
        reasons = gates + [
            "the experiment is not valid, so neither model is preferred; fix the cause and rerun"
        ]
    else:
        assert unpaired is not None
        reasons.append(srm_reason(srm))
        better = unpaired.significant and perm is not None and perm.significant
        if better:
            assert perm is not None  # better needs a significant permutation test
            reasons.append(
                "challenger is significantly better by both the Welch and the "
                "permutation test: " + _summary(unpaired, "Welch test") + "; " + _perm_summary(perm)
            )
        elif perm is not None:
            reasons.append(
                "challenger is not significantly better: the Welch test is "
                "significant but the skewness-robust permutation test, which "
                "decides here, is not: "
                + _summary(unpaired, "Welch test")
                + "; "
                + _perm_summary(perm)
            )
        else:
            worse = compare_unpaired(a, b, alpha=alpha, alternative="less", n_boot=0)
            verdict = (
                f"challenger is significantly worse (champion better, p = {worse.pvalue:.3g})"
                if worse.significant
                else "challenger is not significantly better"
            )
            reasons.append(f"{verdict}: " + _summary(unpaired, "Welch test"))
        paired_ok = paired_res is None or paired_res.significant
        if paired_res is not None:
            head = (
                "paired test confirms the improvement"
                if paired_ok
                else "paired test does not confirm the improvement"
            )
            reasons.append(
                f"{head} on {paired_res.n_a} shared rows: " + _summary(paired_res, "paired t-test")
            )
        reasons.extend(g.reason() for g in g_res.values())
        failed = [g.name for g in g_res.values() if g.failed]
        outcome = "promote" if better and paired_ok and not failed else "keep"
    return ABDecision(
        outcome=outcome,
        reasons=tuple(reasons),
        srm=srm,
        unpaired=unpaired,
        paired=paired_res,
        guardrails=g_res,
        permutation=perm,
        alpha=alpha,
        margin=margin,
        guardrail_margin=g_margin,
        srm_threshold=srm_threshold,
        min_rows_per_arm=min_rows,
        n_boot=n_boot,
        n_permutations=int(n_permutations),
        random_state=seed,
        expected_share_a=float(expected_share_a),
    )

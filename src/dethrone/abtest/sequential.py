"""Always-valid sequential A/B decision for live experiments: look as often as you like."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from dethrone.abtest.betting import betting_difference_cs, betting_paired_cs, epoch_caps
from dethrone.abtest.compare import as_losses
from dethrone.abtest.confseq import group_index, mean_cs, mean_difference_cs, mixture_rho2
from dethrone.abtest.decision_result import ABDecision, Outcome, relative_improvement
from dethrone.abtest.guardrails import GuardrailResult, relative_change
from dethrone.abtest.sequential_rules import design, gates, verdict
from dethrone.abtest.sequential_srm import sequential_srm_test
from dethrone.abtest.srm import SRMResult
from dethrone.settings import Settings

__all__ = ["SequentialDecision", "SequentialGuardrailResult", "decide_sequential"]

#: The result types are shared with the fixed-horizon test; the old names stay importable.
SequentialDecision = ABDecision
SequentialGuardrailResult = GuardrailResult

_Groups = tuple[np.ndarray, np.ndarray] | None


def _pick(value: Any, default: Any) -> Any:
    return default if value is None else value


def _arm(values: ArrayLike, name: str, allow_empty: bool) -> np.ndarray:
    if allow_empty and np.size(values) == 0:
        return np.zeros(0)
    return as_losses(values, name, min_rows=1)


def _observations(values: np.ndarray, groups: _Groups) -> np.ndarray:
    """Per-unit mean of ``values`` when grouped, else the rows themselves."""
    if groups is None:
        return values
    inverse, rows = groups
    return np.bincount(inverse, weights=values, minlength=rows.size) / rows


def _stats(x: np.ndarray) -> tuple[float, float, int]:
    """Mean, sample variance (NaN below 2 observations) and size."""
    if x.size == 0:
        return math.nan, math.nan, 0
    return float(x.mean()), float(x.var(ddof=1)) if x.size > 1 else math.nan, int(x.size)


def _difference(
    x_a: np.ndarray, x_b: np.ndarray, *, alpha: float, rho2: float, null: float
) -> tuple[float, float, float, float]:
    ma, va, na = _stats(x_a)
    mb, vb, nb = _stats(x_b)
    if min(na, nb) < 2:
        return ma - mb, math.nan, math.nan, math.nan
    est, low, high, p = mean_difference_cs(
        ma, va, na, mb, vb, nb, alpha=alpha, rho2=rho2, null=null
    )
    return float(est), float(low), float(high), float(p)


def _paired(pair: Sequence[Any] | None) -> tuple[Any, ...] | None:
    """Paired differences (per unit when a third element gives unit ids), the champion's
    and the challenger's mean loss per observation, and the paired rows."""
    if pair is None:
        return None
    if len(pair) not in (2, 3):
        raise ValueError(
            "paired must be (loss_champion, loss_challenger) or "
            "(loss_champion, loss_challenger, unit_ids)"
        )
    champ = as_losses(pair[0], "paired champion losses", min_rows=1)
    chall = as_losses(pair[1], "paired challenger losses", min_rows=1)
    if champ.size != chall.size:
        raise ValueError(
            f"paired losses must have the same length, got {champ.size} and {chall.size}"
        )
    groups = group_index(pair[2], champ.size, name="paired unit ids") if len(pair) == 3 else None
    x_champ, x_chall = _observations(champ, groups), _observations(chall, groups)
    return (
        x_champ - x_chall,
        float(x_champ.mean()),
        float(x_chall.mean()),
        champ.size,
        (x_champ, x_chall),
    )


def _guardrails(
    guardrails: Mapping[str, Sequence[ArrayLike]] | None,
    rows: tuple[int, int],
    groups: tuple[_Groups, _Groups],
    *,
    margin: float,
    alpha: float,
    rho2: float,
) -> dict[str, GuardrailResult]:
    out: dict[str, GuardrailResult] = {}
    for name, values in (guardrails or {}).items():
        if len(values) != 2:
            raise ValueError(f"guardrail {name!r} must be a pair (values_a, values_b)")
        arms = []
        for side, v, n, g in zip("ab", values, rows, groups, strict=False):
            arr = as_losses(v, f"guardrail {name!r} values_{side}", min_rows=1)
            if g is not None and arr.size != n:
                raise ValueError(
                    f"guardrail {name!r} values_{side} must have one value per "
                    f"loss row ({n}) when unit ids are given, got {arr.size}"
                )
            arms.append(_observations(arr, g))
        mean_a = float(arms[0].mean())
        tolerated = margin * abs(mean_a)
        harm, low, high, p = _difference(arms[1], arms[0], alpha=alpha, rho2=rho2, null=tolerated)
        mean_b = float(arms[1].mean())
        out[str(name)] = GuardrailResult(
            name=str(name),
            method="confidence-sequence",
            mean_a=mean_a,
            mean_b=mean_b,
            harm=harm,
            relative_change=float(relative_change(mean_a, mean_b)),
            tolerated=tolerated,
            margin=margin,
            alpha=alpha,
            pvalue=p,
            failed=bool(low > tolerated),
            n_a=int(arms[0].size),
            n_b=int(arms[1].size),
            ci_low=low,
            ci_high=high,
        )
    return out


def _arrival(
    arrival: ArrayLike | None, rows: int, groups: _Groups, share: float, name: str
) -> np.ndarray:
    """Arrival time of each observation: its first row's ``arrival`` when given, else its
    expected rank under the split (observation ``j`` of an arm with share ``s`` at ``j / s``),
    which interleaves appended arms the same way at every look."""
    if arrival is None:
        n = rows if groups is None else groups[1].size
        if groups is None:
            return np.arange(n) / share
        first = np.full(n, np.inf)
        np.minimum.at(first, groups[0], np.arange(rows, dtype=float))
        return first / share
    t = np.asarray(arrival, dtype=float)
    if t.shape != (rows,) or not np.isfinite(t).all():
        raise ValueError(f"{name} must hold one finite arrival time per loss row ({rows})")
    if groups is None:
        return t
    first = np.full(groups[1].size, np.inf)
    np.minimum.at(first, groups[0], t)
    return first


def _caps(
    ordered: np.ndarray, champion: np.ndarray, loss_cap: float | None, quantile: float
) -> tuple[np.ndarray | float, float]:
    """Each observation's cap and the last cap used: ``loss_cap`` when fixed, else the
    ``quantile`` of the champion's earlier observations (predictable epochs)."""
    if loss_cap is not None:
        return float(loss_cap), float(loss_cap)
    caps = epoch_caps(ordered, quantile, source=champion)[0]
    return caps, float(caps[-1])


def _betting(
    x_a: np.ndarray,
    x_b: np.ndarray,
    pair: tuple[Any, ...] | None,
    order: tuple[np.ndarray, np.ndarray] | None,
    *,
    share_b: float,
    alpha: float,
    tuning: int,
    margin: float,
    loss_cap: float | None,
    quantile: float,
    paired_losses: tuple[np.ndarray, np.ndarray] | None,
) -> tuple[float, float, float, float, float]:
    """Estimate, interval and p-value of the betting CS, and the cap used."""
    if pair is not None and paired_losses is not None:
        champ, chall = paired_losses
        caps, last = _caps(champ, np.ones(champ.size, bool), loss_cap, quantile)
        cs = betting_paired_cs(
            np.stack([champ, chall], axis=-1),
            [champ.size],
            caps=caps,
            alpha=alpha,
            tuning_n=tuning,
        )
    else:
        assert order is not None
        t = np.concatenate(order)
        ranks = np.argsort(t, kind="stable")
        y = np.concatenate([x_a, x_b])[ranks]
        z = np.concatenate([np.zeros(x_a.size, bool), np.ones(x_b.size, bool)])[ranks]
        caps, last = _caps(y, ~z, loss_cap, quantile)
        cs = betting_difference_cs(y, z, share_b, [y.size], caps=caps, alpha=alpha, tuning_n=tuning)
    return (
        float(cs.estimate[0, 0]),
        float(cs.low[0, 0]),
        float(cs.high[0, 0]),
        float(cs.pvalue(margin)[0, 0]),
        last,
    )


def _primary(
    x_a: np.ndarray,
    x_b: np.ndarray,
    pair: tuple[Any, ...] | None,
    *,
    alpha: float,
    rho2: float,
    margin: float,
) -> _Estimate:
    """The Gaussian mixture's estimate, interval and p-value, the means, and the
    observations analysed (the smaller arm, or the pairs)."""
    if pair is None:
        est, low, high, p = _difference(x_a, x_b, alpha=alpha, rho2=rho2, null=margin)
        mean_a, mean_b, n_obs = float(x_a.mean()), float(x_b.mean()), min(x_a.size, x_b.size)
    else:
        d, mean_a, mean_b = pair[:3]
        var = float(d.var(ddof=1)) if d.size > 1 else math.nan
        est, low, high, p = (
            float(v) for v in mean_cs(d.mean(), var, d.size, alpha=alpha, rho2=rho2, null=margin)
        )
        n_obs = d.size
    return _Estimate(est, low, high, p, mean_a, mean_b, n_obs, cap_used=math.nan)


def _int_option(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or int(value) != value or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def decide_sequential(
    loss_a: ArrayLike,
    loss_b: ArrayLike,
    *,
    expected_share_a: float,
    alpha: float | None = None,
    margin: float | None = None,
    tuning_n: int | None = None,
    units_a: ArrayLike | None = None,
    units_b: ArrayLike | None = None,
    paired: Sequence[ArrayLike] | None = None,
    guardrails: Mapping[str, Sequence[ArrayLike]] | None = None,
    max_units_per_arm: int | None = None,
    settings: Settings | None = None,
    test: str | None = None,
    loss_cap: float | None = None,
    cap_quantile: float | None = None,
    arrival_a: ArrayLike | None = None,
    arrival_b: ArrayLike | None = None,
) -> ABDecision:
    """Always-valid decision between the champion (arm A) and a challenger (arm B).

    Each call is one look at all data so far. The decision is valid however often, and
    whenever, it is called: two equally good models are promoted in at most ``alpha`` of
    experiments over *all* looks, where the fixed-horizon :func:`~dethrone.abtest.decide`
    checked at 20 looks promotes ~20% of them (see ``bench/sequential_calibration.py``).

    Method (``test="betting"``, the default): the betting confidence sequence of
    :mod:`dethrone.abtest.betting` (Waudby-Smith & Ramdas 2024, predictable plug-in
    empirical Bernstein) on the augmented inverse-propensity pseudo-outcomes of units in
    arrival order, with each loss capped at ``loss_cap`` (fixed before the first look,
    e.g. the ``cap_quantile`` of the champion's offline losses) or, when not given, at the
    ``cap_quantile`` of the champion's *earlier* units (recomputed at 32, 64, 128, ...
    units; the first 32 units are not tested). **Proven**: with units exchangeable and
    assigned with the configured split, two equal models are promoted (or kept) in at most
    ``alpha / 2`` of experiments over all looks, at any split and for any loss
    distribution (heavy tails, rare events), because both arms' capped means are equal for
    every cap. **Simulated only** (``bench/sequential_calibration.py``): power, and the
    size of the bias when a challenger is better in the bulk but heavier beyond the cap.
    The estimand is the difference of capped mean losses.

    ``test="gaussian"``: the former default, the asymptotic Gaussian-mixture CS (Howard et
    al. 2021; Waudby-Smith et al. 2024, eq. 9; GrowthBook's sequential test) of
    ``theta = mean_a - mean_b``::

        r_n   = sigma * sqrt(2 (n rho^2 + 1) / (n^2 rho^2) * log(sqrt(n rho^2 + 1) / alpha))
        rho^2 = (-2 log alpha + log(1 - 2 log alpha)) / tuning_n

    with ``n = n_a + n_b`` and ``sigma^2 = n (s_a^2/n_a + s_b^2/n_b)``; only asymptotically
    valid: 10.6% false promotions at 90/10 with lognormal(0, 2) losses, 24% with 0/1
    losses at 2% (issue 17). Guardrails use it in both modes (a harm test).
    An observation is a unit's mean loss when unit ids are given (rows of one sticky
    unit are correlated), else a row.

    Rules, in order:

    1. Invalid input raises ``ValueError`` naming the argument.
    2. **inconclusive**: the anytime-valid SRM test of the unit counts
       (:func:`~dethrone.abtest.sequential_srm.sequential_srm_test`) has p below
       ``srm_pvalue_threshold``, or an arm (the pairs, when paired) has fewer than
       ``ab_min_rows_per_arm`` units.
    3. **keep** if a guardrail's always-valid interval of its worsening lies above
       ``guardrail_margin * |mean_a|`` (harm shown).
    4. **promote** if ``ci_low > margin``.
    5. **keep** if ``ci_high < margin`` (the interval excludes a gain larger than
       ``margin``), or if the smaller arm (the pairs, when paired) reached
       ``max_units_per_arm``.
    6. **continue** otherwise.

    Parameters
    ----------
    loss_a, loss_b : array_like
        Every per-row loss so far of the champion on arm A and the challenger on arm B.
        May be empty when ``paired`` is given (shadow mode: the champion serves all
        traffic); then no SRM test is run.
    expected_share_a : float
        Configured share of arm A, in (0, 1).
    alpha : float, optional
        1 - simultaneous coverage of the interval (``ab_alpha``, 0.05).
    margin : float, optional
        Required improvement of the mean loss in loss units (``ab_margin``, 0).
    tuning_n : int, optional
        Observations (both arms' units, or pairs) at which the interval is tightest
        (``sequential_tuning_n``, 5000; GrowthBook's default). Fix it before the
        experiment: choosing it after seeing data voids the guarantee.
    units_a, units_b : array_like, optional
        Unit id of each row of ``loss_a``/``loss_b`` (both or neither).
    paired : (loss_champion, loss_challenger[, unit_ids]), optional
        Both models' losses on the same rows (shadow mode); the test runs on the
        differences, per unit when unit ids are given.
    guardrails : mapping of str to (values_a, values_b), optional
        Larger-is-worse metrics, row-aligned with ``loss_a``/``loss_b`` when units are
        given; tested for harm beyond ``guardrail_margin`` with the same machinery.
    max_units_per_arm : int, optional
        Units in the smaller arm after which an undecided experiment ends in ``keep``
        (``ab_max_units_per_arm``; 0 means no cap).
    settings : Settings, optional
        Defaults for options left as None (``Settings()`` when None).
    test : {"betting", "gaussian"}, optional
        The confidence sequence (``ab_test``, ``betting``).
    loss_cap : float, optional
        Cap of the losses fixed before the first look (e.g. the ``cap_quantile`` of the
        champion's offline losses, frozen in the experiment's thresholds). None: the
        ``cap_quantile`` of the champion's earlier units.
    cap_quantile : float, optional
        ``ab_loss_cap_quantile`` (0.995).
    arrival_a, arrival_b : array_like, optional
        Arrival time of each row of ``loss_a``/``loss_b`` (a unit arrives with its first
        row); the betting CS takes units in this order. None: rows in the given order,
        arms interleaved by their expected rank under the split.

    Returns
    -------
    ABDecision
        ``kind="sequential"``; the always-valid confidence sequence gives ``estimate``,
        ``ci_low``, ``ci_high`` and ``pvalue``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> a = rng.lognormal(0, 1, 4000)          # champion's absolute errors
    >>> b = 0.8 * rng.lognormal(0, 1, 4000)    # challenger 20% better
    >>> d = decide_sequential(a[:300], b[:300], expected_share_a=0.5)   # an early look
    >>> d.outcome
    'continue'
    >>> d = decide_sequential(a, b, expected_share_a=0.5)               # a later look
    >>> d.outcome, d.ci_low > 0, d.pvalue < 0.05
    ('promote', True, True)

    Per-unit analysis (each of 100 units has 4 correlated rows):

    >>> units = np.repeat(np.arange(100), 4)
    >>> d = decide_sequential(a[:400], b[:400], expected_share_a=0.5,
    ...                       units_a=units, units_b=units + 100)
    >>> d.units_a, d.rows_a, d.outcome
    (100, 400, 'inconclusive')

    Notes
    -----
    The interval and p-value are those of the current look, from all data so far; the
    running intersection of the intervals (running minimum of the p-values) over looks is
    valid too, and a caller may keep it.

    References
    ----------
    Howard, Ramdas, McAuliffe, Sekhon (2021), Time-uniform, nonparametric, nonasymptotic
    confidence sequences, Ann. Statist. 49(2). Waudby-Smith, Arbour, Sinha, Kennedy,
    Ramdas (2024), Time-uniform central limit theory and asymptotic confidence sequences,
    Ann. Statist. 52(6). Lindon, Malek (2022), Anytime-valid inference for multinomial
    count data, NeurIPS. Waudby-Smith, Ramdas (2024), Estimating means of bounded random
    variables by betting, JRSS-B 86(1).
    """
    opts = _options(
        settings if settings is not None else Settings(),
        alpha=alpha,
        margin=margin,
        tuning_n=tuning_n,
        max_units_per_arm=max_units_per_arm,
        expected_share_a=expected_share_a,
        test=test,
        loss_cap=loss_cap,
        cap_quantile=cap_quantile,
        units_given=(units_a is not None, units_b is not None),
    )
    data = _data(loss_a, loss_b, units_a, units_b, paired)
    g_res = _guardrails(
        guardrails,
        (data.a.size, data.b.size),
        data.groups,
        margin=opts.guardrail_margin,
        alpha=opts.alpha,
        rho2=opts.rho2,
    )
    srm = None
    if data.x_a.size and data.x_b.size:  # shadow mode has no split to test
        srm = sequential_srm_test(
            data.x_a.size, data.x_b.size, opts.share, threshold=opts.srm_threshold
        )
    est = _estimate(data, opts, arrival_a, arrival_b)
    outcome, reasons = _look(srm, est, g_res, opts, data.pair is not None, units_a is not None)
    reasons.append(
        design(data.x_a.size, data.x_b.size, data.a.size, data.b.size, data.pair, data.per_unit)
    )
    return _result(outcome, reasons, data, est, srm, g_res, opts)


@dataclass(frozen=True)
class _Options:
    """Every threshold of a look, after applying settings."""

    alpha: float
    margin: float
    tuning: int
    cap: int
    min_units: int
    share: float
    test: str
    quantile: float
    loss_cap: float | None
    rho2: float
    guardrail_margin: float
    srm_threshold: float


@dataclass(frozen=True)
class _Data:
    """Validated losses (``a``, ``b``), their unit groups, the observations (unit means or
    rows) and the paired sample (see :func:`_paired`)."""

    a: np.ndarray
    b: np.ndarray
    groups: tuple[_Groups, _Groups]
    x_a: np.ndarray
    x_b: np.ndarray
    pair: tuple[Any, ...] | None
    per_unit: bool


@dataclass(frozen=True)
class _Estimate:
    """The improvement's estimate, always-valid interval and p-value, the means, the
    observations analysed (the smaller arm, or the pairs) and the loss cap used."""

    est: float
    low: float
    high: float
    p: float
    mean_a: float
    mean_b: float
    n_obs: int
    cap_used: float


def _options(
    s: Settings,
    *,
    alpha: float | None,
    margin: float | None,
    tuning_n: int | None,
    max_units_per_arm: int | None,
    expected_share_a: float,
    test: str | None,
    loss_cap: float | None,
    cap_quantile: float | None,
    units_given: tuple[bool, bool],
) -> _Options:
    """Thresholds: explicit arguments win over the settings ``s``; invalid ones raise."""
    alpha = float(_pick(alpha, s.ab_alpha))
    margin = float(_pick(margin, s.ab_margin))
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha}")
    if not math.isfinite(margin):
        raise ValueError(f"margin must be finite, got {margin}")
    tuning = _int_option(_pick(tuning_n, s.sequential_tuning_n), "tuning_n", 1)
    cap = _int_option(_pick(max_units_per_arm, s.ab_max_units_per_arm), "max_units_per_arm", 0)
    min_units = _int_option(s.ab_min_rows_per_arm, "ab_min_rows_per_arm", 2)
    share = float(expected_share_a)
    if not 0.0 < share < 1.0:
        raise ValueError(f"expected_share_a must be strictly between 0 and 1, got {share}")
    if units_given[0] != units_given[1]:
        raise ValueError("units_a and units_b must be given together")
    test = str(_pick(test, s.ab_test))
    if test not in ("betting", "gaussian"):
        raise ValueError(f"test must be 'betting' or 'gaussian', got {test!r}")
    quantile = float(_pick(cap_quantile, s.ab_loss_cap_quantile))
    if not 0.5 < quantile <= 1.0:
        raise ValueError(f"cap_quantile must be in (0.5, 1], got {quantile}")
    if loss_cap is not None and not (math.isfinite(loss_cap) and loss_cap > 0):
        raise ValueError(f"loss_cap must be a positive number, got {loss_cap!r}")
    return _Options(
        alpha=alpha,
        margin=margin,
        tuning=tuning,
        cap=cap,
        min_units=min_units,
        share=share,
        test=test,
        quantile=quantile,
        loss_cap=loss_cap,
        rho2=mixture_rho2(tuning, alpha),
        guardrail_margin=float(s.guardrail_margin),
        srm_threshold=float(s.srm_pvalue_threshold),
    )


def _data(
    loss_a: ArrayLike,
    loss_b: ArrayLike,
    units_a: ArrayLike | None,
    units_b: ArrayLike | None,
    paired: Sequence[ArrayLike] | None,
) -> _Data:
    """Validate the losses and turn them into observations (unit means, or rows)."""
    a = _arm(loss_a, "loss_a", paired is not None)
    b = _arm(loss_b, "loss_b", paired is not None)
    groups: tuple[_Groups, _Groups] = (None, None)
    if units_a is not None and units_b is not None:  # both or neither (checked before)
        groups = (
            group_index(units_a, a.size, name="units_a"),
            group_index(units_b, b.size, name="units_b"),
        )
    return _Data(
        a=a,
        b=b,
        groups=groups,
        x_a=_observations(a, groups[0]),
        x_b=_observations(b, groups[1]),
        pair=_paired(paired),
        per_unit=units_a is not None or (paired is not None and len(paired) == 3),
    )


def _estimate(
    data: _Data, opts: _Options, arrival_a: ArrayLike | None, arrival_b: ArrayLike | None
) -> _Estimate:
    """The Gaussian-mixture estimate, replaced by the betting CS's when that is the test
    (the means and sizes stay the mixture's, which are the plain ones)."""
    e = _primary(
        data.x_a, data.x_b, data.pair, alpha=opts.alpha, rho2=opts.rho2, margin=opts.margin
    )
    if opts.test != "betting" or e.n_obs < 2:
        return e
    order = None
    if data.pair is None:
        order = (
            _arrival(arrival_a, data.a.size, data.groups[0], opts.share, "arrival_a"),
            _arrival(arrival_b, data.b.size, data.groups[1], 1.0 - opts.share, "arrival_b"),
        )
    est, low, high, p, cap_used = _betting(
        data.x_a,
        data.x_b,
        data.pair,
        order,
        share_b=1.0 - opts.share,
        alpha=opts.alpha,
        tuning=opts.tuning,
        margin=opts.margin,
        loss_cap=opts.loss_cap,
        quantile=opts.quantile,
        paired_losses=None if data.pair is None else data.pair[4],
    )
    return replace(e, est=est, low=low, high=high, p=p, cap_used=cap_used)


def _look(
    srm: SRMResult | None,
    e: _Estimate,
    g_res: dict[str, GuardrailResult],
    opts: _Options,
    paired: bool,
    units_given: bool,
) -> tuple[Outcome, list[str]]:
    """Outcome of this look and its reasons (rules 2-6 of decide_sequential)."""
    what = "units" if units_given else "rows"
    gate_reasons = gates(srm, e.n_obs, opts.min_units, paired=paired, what=what)
    if gate_reasons:
        return "inconclusive", [
            *gate_reasons,
            "the experiment cannot be judged yet (or must be fixed); neither model is preferred",
        ]
    outcome, why = verdict(
        e.est,
        e.low,
        e.high,
        e.p,
        margin=opts.margin,
        alpha=opts.alpha,
        capped=bool(opts.cap) and e.n_obs >= opts.cap,
        failed=[name for name, g in g_res.items() if g.failed],
    )
    split = (
        srm.reason()
        if srm is not None
        else "shadow mode: no traffic split to check for sample ratio mismatch"
    )
    return outcome, [split, why, *(g.reason() for g in g_res.values())]


def _result(
    outcome: Outcome,
    reasons: list[str],
    data: _Data,
    e: _Estimate,
    srm: SRMResult | None,
    g_res: dict[str, GuardrailResult],
    opts: _Options,
) -> ABDecision:
    return ABDecision(
        outcome=outcome,
        reasons=tuple(reasons),
        kind="sequential",
        method="unpaired" if data.pair is None else "paired",
        test=opts.test,
        estimate=float(e.est),
        ci_low=float(e.low),
        ci_high=float(e.high),
        pvalue=float(e.p),
        mean_a=e.mean_a,
        mean_b=e.mean_b,
        relative_improvement=relative_improvement(e.est, e.mean_a),
        rows_a=int(data.a.size),
        rows_b=int(data.b.size),
        units_a=int(data.x_a.size),
        units_b=int(data.x_b.size),
        pairs=0 if data.pair is None else int(e.n_obs),
        per_unit=data.per_unit,
        srm=srm,
        guardrails=g_res,
        alpha=opts.alpha,
        margin=opts.margin,
        guardrail_margin=opts.guardrail_margin,
        srm_threshold=opts.srm_threshold,
        expected_share_a=opts.share,
        min_units_per_arm=opts.min_units,
        rho2=opts.rho2,
        tuning_n=opts.tuning,
        max_units_per_arm=opts.cap,
        loss_cap=e.cap_used,
        cap_quantile=opts.quantile,
    )
